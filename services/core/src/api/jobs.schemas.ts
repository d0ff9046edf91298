import { z } from 'zod';
import { Cursor, Id, Limit, NodeId, NullableTimestamp, Timestamp, csvOf, pageOf } from './common.schemas.ts';
import { JobHooksView } from './hooks.schemas.ts';
import { named } from './registry.ts';

export const JOB_TYPES = ['backup', 'restore', 'migrate', 'cleanup', 'verify', 'sweep', 'schedule_skip'] as const;
export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted'] as const;
export const TERMINAL_JOB_STATES: readonly JobStatusName[] = ['succeeded', 'failed', 'cancelled', 'interrupted'];

export const JobTypeName = z.enum(JOB_TYPES);
export type JobTypeName = z.infer<typeof JobTypeName>;
export const JobStatusName = z.enum(JOB_STATUSES);
export type JobStatusName = z.infer<typeof JobStatusName>;

export const JobProgress = named(
  'JobProgress',
  z.object({
    stage: z.string(),
    bytesDone: z.number(),
    bytesTotal: z.number(),
    filesDone: z.number(),
    filesTotal: z.number(),
    percent: z.number(),
    etaSeconds: z.number().nullable(),
  }),
);
export type JobProgress = z.infer<typeof JobProgress>;

/** One child of a job (a migrate's backup, restore, ... jobs, linked by `parentJobId`). */
export const JobChild = named(
  'JobChild',
  z.object({
    id: z.string(),
    type: JobTypeName,
    status: JobStatusName,
    nodeId: z.string().nullable(),
    progress: JobProgress.nullable(),
  }),
);
export type JobChild = z.infer<typeof JobChild>;

export const JobView = named(
  'Job',
  z.object({
    id: z.string(),
    type: JobTypeName,
    status: JobStatusName,
    instanceId: z.string().nullable(),
    backupId: z.string().nullable(),
    targetInstanceId: z.string().nullable(),
    nodeId: z.string().nullable(),
    queue: z.string().nullable(),
    params: z.record(z.string(), z.unknown()),
    requestedBy: z.string(),
    progress: JobProgress.nullable(),
    result: z.unknown().nullable(),
    hooks: JobHooksView.nullable().describe("the instance's pre/post hooks around this job (issue 13): status, duration, output tail, quiesced time"),
    attempts: z.number().int(),
    error: z.string().nullable(),
    errorCode: z.string().nullable(),
    createdAt: Timestamp,
    startedAt: NullableTimestamp,
    finishedAt: NullableTimestamp,
    parentJobId: z.string().nullable(),
    children: z.array(JobChild).optional().describe('a migrate job (GET /v1/jobs/:id, its events, cancel): its child jobs, oldest first'),
  }),
  'The history record of one unit of work; `progress` is updated by the worker while it runs.',
);
export type JobView = z.infer<typeof JobView>;

export const JobList = pageOf('JobList', JobView);
export type JobList = z.infer<typeof JobList>;

export const ListJobsQuery = z
  .object({
    instance: Id.optional().describe('jobs of this instance (as source or restore target)'),
    type: csvOf(JOB_TYPES).optional(),
    status: csvOf(JOB_STATUSES).optional(),
    node: NodeId.optional(),
    cursor: Cursor.optional(),
    limit: Limit,
  })
  .strict();
export type ListJobsQuery = z.infer<typeof ListJobsQuery>;

/** `202 {job}` for a restore or a migrate. */
export const JobStarted = named('JobStarted', z.object({ job: JobView }));
export type JobStarted = z.infer<typeof JobStarted>;
