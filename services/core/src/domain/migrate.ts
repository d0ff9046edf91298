import { z } from 'zod';

/**
 * Migrate (SPEC §8, issue 12): the parameters of a `migrate` Job, written by the gateway and read
 * by the control worker's migrate handler, which runs the operation as child Jobs (backup on the
 * source node, restore on the target node, ...) linked by `parentJobId`.
 *
 * - `copy`: the source's data (or a backup's) into another instance (`targetInstanceId`), any node
 *   of the same tenant; `replace`, or `merge` when `paths` are given.
 * - `move`: the instance itself to another node (`targetNodeId`), its volumes at `hostPaths` there
 *   (volume name → absolute path inside the target node's volume roots; the gateway fills in the
 *   defaults, so the handler gets every volume). Bulk copy while the instance runs, then a short
 *   cutover: final incremental applied on the target, verified, and the instance switched.
 */
export const migrateParams = z
  .object({
    mode: z.enum(['copy', 'move']),
    sourceInstanceId: z.string().min(1),
    targetInstanceId: z.string().min(1).optional(),
    targetNodeId: z.string().min(1).optional(),
    hostPaths: z.record(z.string(), z.string()).optional(),
    volumes: z.array(z.string()).optional(),
    paths: z.array(z.string()).optional(),
    /** `POST /v1/backups/:id/migrate`: start from this completed backup instead of a fresh one. */
    fromBackupId: z.string().min(1).optional(),
  })
  .strict();
export type MigrateParams = z.infer<typeof migrateParams>;

/** Stages of a migrate Job, in order (its progress `stage`). */
export const MIGRATE_STAGES = ['preflight', 'bulk-backup', 'bulk-restore', 'cutover-backup', 'cutover-apply', 'verify', 'switch', 'done'] as const;
export type MigrateStage = (typeof MIGRATE_STAGES)[number];
