import { z } from 'zod';
import { NullableTimestamp, Timestamp, pageOf } from './common.schemas.ts';
import { JobView } from './jobs.schemas.ts';
import { named } from './registry.ts';
import { ScheduleView } from './schedules.schemas.ts';

/** How many ended jobs `GET /v1/nodes/:id` shows. */
export const NODE_RECENT_JOBS = 20;

/** A node is online when its worker heartbeated within this many seconds. */
export const NODE_ONLINE_WITHIN_SECONDS = 60;

export const NodeView = named(
  'Node',
  z.object({
    id: z.string(),
    status: z.enum(['online', 'offline']),
    labels: z.record(z.string(), z.unknown()),
    volumeRoots: z.array(z.string()),
    version: z.string().nullable(),
    lastHeartbeatAt: NullableTimestamp,
    heartbeatAgeSeconds: z.number().nullable(),
    runningJobs: z.number().int(),
    queuedJobs: z.number().int(),
    capacity: z.unknown().nullable().describe('free/total bytes per volume root and worker concurrency, from the last heartbeat'),
    hookCommands: z.array(z.string()).describe("the commands of the node worker's hooks file (CAIRN_NODE_HOOKS) that command hooks may name"),
    createdAt: Timestamp,
  }),
);
export type NodeView = z.infer<typeof NodeView>;

/** One node with what runs and ran on it and the schedules of its instances (a member sees its tenant's). */
export const NodeDetail = named(
  'NodeDetail',
  NodeView.extend({
    activeJobs: z.array(JobView).describe('queued and running jobs on the node (or waiting in its queue), newest first'),
    recentJobs: z.array(JobView).describe(`the last ${NODE_RECENT_JOBS} jobs on the node that ended, newest first`),
    schedules: z.array(ScheduleView).describe('schedules of the instances on the node, oldest first'),
  }),
);
export type NodeDetail = z.infer<typeof NodeDetail>;

export const NodeList = pageOf('NodeList', NodeView);
export type NodeList = z.infer<typeof NodeList>;
