import { z } from 'zod';
import {
  Cursor,
  GlobPattern,
  HostPath,
  InstanceName,
  Limit,
  NodeId,
  NullableTimestamp,
  TenantName,
  Timestamp,
  VolumeName,
  pageOf,
  queryFlag,
} from './common.schemas.ts';
import { VOLUME_STATES } from '../domain/volume-state.ts';
import { InstanceHooksBody } from './hooks.schemas.ts';
import { named } from './registry.ts';

export const VolumeSpec = named(
  'VolumeSpec',
  z
    .object({
      name: VolumeName,
      hostPath: HostPath.describe("absolute, normalised, inside one of the node's volumeRoots"),
      excludes: z.array(GlobPattern).max(256).optional().describe('glob patterns relative to the volume'),
    })
    .strict(),
);
export type VolumeSpec = z.infer<typeof VolumeSpec>;

/** Volume names unique, and no volume nested in (or equal to) another: it would be archived twice. */
function checkVolumes(volumes: VolumeSpec[], ctx: z.RefinementCtx, at: string): void {
  volumes.forEach((v, i) => {
    const j = volumes.findIndex((o) => o.name === v.name);
    if (j !== i) ctx.addIssue({ code: 'custom', path: [at, i, 'name'], message: `duplicate volume name ${v.name}` });
    volumes.forEach((o, k) => {
      if (k >= i) return;
      const [a, b] = [v.hostPath, o.hostPath];
      if (a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`)) {
        ctx.addIssue({ code: 'custom', path: [at, i, 'hostPath'], message: `overlaps volume ${o.name} (${b})` });
      }
    });
  });
}

export const CreateInstanceBody = named(
  'CreateInstanceRequest',
  z
    .object({
      name: InstanceName,
      nodeId: NodeId,
      volumes: z.array(VolumeSpec).min(1).max(64),
      tenant: TenantName.optional().describe('admin only: the owning tenant (created when new); members always create in their own'),
      hooks: InstanceHooksBody.optional().describe('pre/post backup and restore hooks; the response then carries the hook secret, once'),
    })
    .strict()
    .superRefine((b, ctx) => checkVolumes(b.volumes, ctx, 'volumes')),
);
export type CreateInstanceBody = z.infer<typeof CreateInstanceBody>;

export const UpdateInstanceBody = named(
  'UpdateInstanceRequest',
  z
    .object({
      name: InstanceName.optional(),
      nodeId: NodeId.optional(),
      volumes: z.array(VolumeSpec).min(1).max(64).optional().describe('replaces the whole set'),
      hooks: InstanceHooksBody.nullable().optional().describe('replaces the whole set of hooks (null: none); the first hooks make the hook secret'),
      rotateHookSecret: z.literal(true).optional().describe('makes a new hook secret; the response carries it, once'),
    })
    .strict()
    .superRefine((b, ctx) => {
      if (b.name === undefined && b.nodeId === undefined && b.volumes === undefined && b.hooks === undefined && b.rotateHookSecret === undefined) {
        ctx.addIssue({ code: 'custom', path: [], message: 'nothing to change: give name, nodeId, volumes, hooks or rotateHookSecret' });
      }
      if (b.volumes) checkVolumes(b.volumes, ctx, 'volumes');
    }),
);
export type UpdateInstanceBody = z.infer<typeof UpdateInstanceBody>;

export const VolumeView = named('Volume', z.object({ name: z.string(), hostPath: z.string(), excludes: z.array(z.string()) }));
export type VolumeView = z.infer<typeof VolumeView>;

export const InstanceView = named(
  'Instance',
  z.object({
    id: z.string(),
    name: z.string(),
    tenantId: z.string(),
    tenant: z.string(),
    nodeId: z.string(),
    volumes: z.array(VolumeView),
    hooks: InstanceHooksBody.nullable().describe('the instance hooks (null: none)'),
    hookSecret: z
      .string()
      .optional()
      .describe('the key of the webhook signatures: only in the response that made it (the first hooks, or rotateHookSecret), never again'),
    createdAt: Timestamp,
    updatedAt: Timestamp,
  }),
);
export type InstanceView = z.infer<typeof InstanceView>;

export const InstanceList = pageOf('InstanceList', InstanceView);
export type InstanceList = z.infer<typeof InstanceList>;

export const ListInstancesQuery = z
  .object({
    tenant: TenantName.optional().describe('admin only: instances of this tenant'),
    node: NodeId.optional(),
    cursor: Cursor.optional(),
    limit: Limit,
  })
  .strict();
export type ListInstancesQuery = z.infer<typeof ListInstancesQuery>;

export const DeleteInstanceQuery = z
  .object({ force: queryFlag(false).describe('also delete every backup of the instance (their objects are removed)') })
  .strict();
export type DeleteInstanceQuery = z.infer<typeof DeleteInstanceQuery>;

export const DeletedInstance = named(
  'DeletedInstance',
  z.object({
    id: z.string(),
    deletedBackups: z.number().int().describe('backup records removed with the instance'),
    cancelledJobs: z.array(z.string()).describe('jobs of the instance that were cancelled or signalled'),
  }),
);
export type DeletedInstance = z.infer<typeof DeletedInstance>;

export const VolumeCoverage = named(
  'VolumeCoverage',
  z.object({
    name: z.string(),
    hostPath: z.string(),
    covered: z.boolean().describe('whether a backup will include this volume'),
    root: z.string().nullable().describe('the node volume root that contains hostPath'),
    freeBytes: z.number().nullable().describe("free bytes of that root, from the node's last heartbeat"),
    totalBytes: z.number().nullable(),
    reason: z.string().nullable().describe('why the volume is skipped'),
    state: z
      .enum(VOLUME_STATES)
      .nullable()
      .describe("what the node worker saw at hostPath at its last check (each heartbeat); null: not checked yet. Anything but 'exists' skips the volume"),
    stateCheckedAt: NullableTimestamp.describe('when the node worker checked hostPath'),
  }),
);
export type VolumeCoverage = z.infer<typeof VolumeCoverage>;

export const Coverage = named(
  'Coverage',
  z.object({
    instanceId: z.string(),
    nodeId: z.string(),
    node: z.object({
      known: z.boolean(),
      online: z.boolean(),
      lastHeartbeatAt: NullableTimestamp,
      heartbeatAgeSeconds: z.number().nullable(),
    }),
    covered: z.array(z.string()),
    skipped: z.array(z.object({ name: z.string(), reason: z.string() })),
    volumes: z.array(VolumeCoverage),
    warnings: z.array(z.string()).describe('conditions that do not skip a volume but may delay a backup (node offline)'),
    lastBackup: z
      .object({ id: z.string(), status: z.string(), createdAt: Timestamp, completedAt: NullableTimestamp, warnings: z.array(z.unknown()) })
      .nullable()
      .describe('the newest backup of the instance, with the warnings it recorded (empty or skipped volumes)'),
  }),
  'Which volumes of the instance can be backed up now, and why the others are skipped.',
);
export type Coverage = z.infer<typeof Coverage>;
