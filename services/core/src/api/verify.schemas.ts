import { z } from 'zod';
import { NullableTimestamp } from './common.schemas.ts';
import { named } from './registry.ts';

/** `POST /v1/backups/:id/verify` (issue 14, verify / scrub). */
export const VerifyBody = named(
  'VerifyRequest',
  z
    .object({
      level: z
        .enum(['quick', 'sample', 'full'])
        .describe(
          'quick: the archive objects exist with the recorded sizes and the index reads and agrees; ' +
            'sample: also a random share of the files read back through their frames, hashes checked; ' +
            "full: every frame decoded, every file hash, and the sha256 of the backup's own archive object",
        ),
      samplePercent: z.number().gt(0).max(100).optional().describe('sample only: percent of the files read back (default 10)'),
    })
    .strict()
    .superRefine((v, ctx) => {
      if (v.samplePercent !== undefined && v.level !== 'sample')
        ctx.addIssue({ code: 'custom', path: ['samplePercent'], message: 'samplePercent applies to level sample only' });
    }),
);
export type VerifyBody = z.infer<typeof VerifyBody>;

/** What a backup's JSON says of its last verification. */
export const VerifyFields = {
  verifiedAt: NullableTimestamp.describe('when the backup was last verified (issue 14)'),
  verifyLevel: z.enum(['quick', 'sample', 'full']).nullable().describe('the level of the last verification'),
  verifyStatus: z.enum(['ok', 'failed']).nullable().describe('the outcome of the last verification; a failed backup is never an incremental parent'),
  verifyError: z.string().nullable().describe('what the last verification found wrong (the object, block or file)'),
};
