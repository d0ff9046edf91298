import { z } from 'zod';
import { named } from './registry.ts';

export const RewrapBody = named(
  'RewrapBody',
  z.object({ dryRun: z.boolean().default(false).describe('report what would be re-wrapped, change nothing') }).strict(),
);
export type RewrapBody = z.infer<typeof RewrapBody>;

export const RewrapReport = named(
  'RewrapReport',
  z.object({
    activeKeyId: z.string(),
    dryRun: z.boolean(),
    rewrapped: z.number().int().describe('backups whose data key is now wrapped under the active key'),
    alreadyActive: z.number().int(),
    skippedRunning: z.array(z.string()).describe('backups still pending or running: re-run once they end'),
    failed: z.array(z.object({ backupId: z.string(), keyId: z.string(), error: z.string() })),
    stillNeeded: z.array(z.string()).describe('master key ids some backup is still wrapped under (besides the active one)'),
  }),
);
export type RewrapReport = z.infer<typeof RewrapReport>;
