import { z } from 'zod';
import { ErrorBody, apiSchemas } from '@cairn/core/api/index.ts';
import type { OperationDoc } from './api-routes.ts';

const COMPONENT = (id: string) => `#/components/schemas/${id}`;

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'validation failed: `details` names every bad field',
  401: 'missing, invalid or revoked token',
  403: 'the token may not do this',
  404: 'not found (or owned by another tenant)',
  409: 'conflict: already running, duplicate name, wrong state',
  413: 'request body too large',
  422: 'nothing to back up',
  429: 'limit reached',
  431: 'request headers larger than 16 KiB',
  503: 'a dependency (Postgres, Redis, S3) is unavailable',
};

type JsonSchema = Record<string, unknown>;

/**
 * Builds the OpenAPI 3.1 document from the registry: named zod schemas become components and
 * each operation's path/query parameters, body and responses come from the schemas the router
 * validates with.
 */
export function buildOpenApi(operations: readonly OperationDoc[], info: { title: string; version: string; description?: string }): Record<string, unknown> {
  const { schemas } = z.toJSONSchema(apiSchemas, { io: 'input', uri: COMPONENT, unrepresentable: 'any', target: 'draft-2020-12' });
  const components: Record<string, JsonSchema> = {};
  for (const [id, schema] of Object.entries(schemas)) components[id] = strip(schema as JsonSchema);

  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of operations) {
    const oaPath = op.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const item = (paths[oaPath] ??= {});
    const parameters = [...parametersOf(op.params, 'path'), ...parametersOf(op.query, 'query')];
    const responses: Record<string, unknown> = {};
    for (const [status, spec] of Object.entries(op.responses)) {
      const schema = spec.schema ?? (Number(status) >= 400 && !spec.contentType ? ErrorBody : undefined);
      const content = schema
        ? { 'application/json': { schema: schemaRef(schema) } }
        : spec.contentType
          ? { [spec.contentType]: { schema: spec.contentType === 'application/json' ? {} : { type: 'string', format: 'binary' } } }
          : undefined;
      responses[status] = { description: spec.description, ...(content ? { content } : {}) };
    }
    for (const status of errorStatuses(op)) {
      responses[String(status)] ??= { description: ERROR_DESCRIPTIONS[status], content: { 'application/json': { schema: { $ref: COMPONENT('Error') } } } };
    }
    item[op.method] = {
      operationId: op.operationId,
      summary: op.summary,
      ...(op.description ? { description: op.description } : {}),
      tags: [op.tag],
      security: op.access === 'public' ? [] : op.access === 'basic' ? [{ basicAuth: [] }] : [{ bearerAuth: [] }],
      ...(op.access === 'admin' ? { 'x-cairn-access': 'admin' } : {}),
      ...(parameters.length ? { parameters } : {}),
      ...(op.body ? { requestBody: { required: !acceptsEmpty(op.body), content: { 'application/json': { schema: schemaRef(op.body) } } } } : {}),
      responses,
    };
  }

  return {
    openapi: '3.1.0',
    info,
    servers: [{ url: '/' }],
    security: [{ bearerAuth: [] }],
    paths,
    components: {
      schemas: components,
      securitySchemes: {
        bearerAuth: { type: 'http', scheme: 'bearer', description: 'an API token (`cairn_...`)' },
        basicAuth: { type: 'http', scheme: 'basic', description: 'user `admin`, password an admin API token' },
      },
    },
  };
}

function errorStatuses(op: OperationDoc): number[] {
  // Oversized headers are refused before routing, whatever the operation (http/client-error.ts).
  if (op.access === 'public') return [431];
  const out = [401, 431, 503];
  if (op.access === 'admin' || op.access === 'basic') out.push(403);
  if (op.params) out.push(404);
  if (op.query || op.body || op.params) out.push(400);
  if (op.body) out.push(413);
  return out.sort();
}

/** Registered schemas are referenced; anonymous ones are inlined. */
function schemaRef(schema: z.ZodType): JsonSchema {
  const meta = apiSchemas.get(schema);
  if (meta) return { $ref: COMPONENT(meta.id) };
  return inline(schema);
}

/** A schema converted on its own (parameters, unnamed bodies): everything it embeds is inlined. */
function inline(schema: z.ZodType): JsonSchema {
  return strip(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12', reused: 'inline' }) as JsonSchema);
}

function parametersOf(schema: z.ZodType | undefined, where: 'path' | 'query'): unknown[] {
  if (!schema) return [];
  const json = inline(schema);
  const properties = (json.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((json.required ?? []) as string[]);
  return Object.entries(properties).map(([name, prop]) => {
    const { description, ...rest } = prop;
    return {
      name,
      in: where,
      required: where === 'path' || required.has(name),
      ...(description ? { description } : {}),
      schema: strip(rest),
    };
  });
}

function acceptsEmpty(schema: z.ZodType): boolean {
  return schema.safeParse({}).success;
}

/** Drops the per-schema `$schema`/`$id` that zod adds: the document declares the dialect once. */
function strip(schema: JsonSchema): JsonSchema {
  const { $schema: _s, $id: _i, ...rest } = schema;
  return rest;
}
