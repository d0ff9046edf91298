import { z } from 'zod';

/**
 * Queue contracts shared by the gateway and the workers (SPEC §4). Payloads carry ids only; the
 * state lives in Postgres. BullMQ refuses ':' in queue names, hence `node.<id>`.
 */
export const CONTROL_QUEUE = 'control';
export const nodeQueueName = (nodeId: string): string => `node.${nodeId}`;

/** Redis pub/sub channel on which cancellation requests reach whichever worker holds the job. */
export const cancelChannel = (prefix: string): string => `${prefix}:cancel`;

export const nodeJobPayload = z.object({ jobId: z.string().min(1) }).strict();
export type NodeJobPayload = z.infer<typeof nodeJobPayload>;

export const controlJobPayload = z
  .object({
    jobId: z.string().min(1).optional(),
    backupId: z.string().optional(),
    scheduleId: z.string().optional(),
    fireTime: z.number().optional(),
    /** retention: the manual retention policy of this instance (issue 13). */
    instanceId: z.string().optional(),
  })
  .strict();
export type ControlJobPayload = z.infer<typeof controlJobPayload>;

/**
 * A migrate's node jobs: `apply`, its cutover on the target node (a Job of type restore);
 * `discard`, the removal of what it staged there after a failure, and `thaw`, the post hook that
 * ends its quiesced window on the source node (Jobs of type cleanup).
 */
export const NODE_JOB_NAMES = ['backup', 'restore', 'apply', 'discard', 'thaw'] as const;
export type NodeJobName = (typeof NODE_JOB_NAMES)[number];
// Only names a control worker has a handler for (it refuses to start otherwise).
export const CONTROL_JOB_NAMES = ['cleanup', 'sweep', 'schedule-fire', 'retention', 'migrate', 'verify'] as const;
export type ControlJobName = (typeof CONTROL_JOB_NAMES)[number];

/** Retry policy for transient failures (S3 5xx, connection loss); permanent ones are UnrecoverableError. */
export const DEFAULT_JOB_OPTIONS = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 2000 },
  removeOnComplete: { age: 7 * 24 * 3600, count: 10_000 },
  removeOnFail: { age: 30 * 24 * 3600 },
} as const;
