import { z } from 'zod';
import { NullableTimestamp, Timestamp, pageOf } from './common.schemas.ts';
import { named } from './registry.ts';

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

export const NodeList = pageOf('NodeList', NodeView);
export type NodeList = z.infer<typeof NodeList>;
