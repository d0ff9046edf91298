import { z } from 'zod';

/**
 * Every named API schema is registered here; the gateway's OpenAPI document turns this registry
 * into `components.schemas`, so the document and the validators cannot drift apart.
 */
export interface ApiSchemaMeta {
  id: string;
  description?: string;
}

export const apiSchemas = z.registry<ApiSchemaMeta>();

/** Registers `schema` under `id` (the OpenAPI component name) and returns it unchanged. */
export function named<T extends z.ZodType>(id: string, schema: T, description?: string): T {
  apiSchemas.add(schema, description ? { id, description } : { id });
  return schema;
}
