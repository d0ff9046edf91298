import { z } from 'zod';
import { named } from './registry.ts';

/** `POST /v1/admin/catalog/rebuild` (issue 14, restore from the bucket alone: domain/catalog-rebuild.ts). */
export const CatalogRebuildBody = named(
  'CatalogRebuildRequest',
  z
    .object({
      dryRun: z.boolean().default(false).describe('read the bucket and the records, write nothing: what a rebuild would create'),
    })
    .strict(),
);
export type CatalogRebuildBody = z.infer<typeof CatalogRebuildBody>;

const Outcome = z.enum(['created', 'existing', 'skipped']);

const tally = <T extends z.ZodType>(item: T) =>
  z.object({
    created: z.number().int(),
    existing: z.number().int(),
    skipped: z.number().int(),
    items: z.array(item).describe('the created (or, in a dry run, to be created) and skipped ones; existing ones are only counted'),
    truncated: z.boolean(),
  });

export const CatalogRebuildReport = named(
  'CatalogRebuildReport',
  z.object({
    dryRun: z.boolean(),
    objectsScanned: z.number().int(),
    tenants: z.object({ created: z.array(z.string()), existing: z.number().int() }),
    nodes: z.object({ created: z.array(z.string()).describe('node rows created unseen (no heartbeat yet)'), existing: z.number().int() }),
    instances: tally(z.object({ id: z.string(), name: z.string().optional(), tenant: z.string().optional(), outcome: Outcome, reason: z.string().optional() })),
    backups: tally(
      z.object({
        id: z.string(),
        instanceId: z.string(),
        outcome: Outcome,
        source: z.enum(['manifest', 'index', 'kept-archive']).optional(),
        reason: z.string().optional(),
      }),
    ),
    references: z.object({ created: z.number().int() }),
  }),
  'What a catalog rebuild found in the bucket and recreated (never changing a row that exists)',
);
export type CatalogRebuildReport = z.infer<typeof CatalogRebuildReport>;
