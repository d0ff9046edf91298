import { z } from 'zod';
import { BackupPath, HostPath, Id, NodeId, VolumeName } from './common.schemas.ts';
import { named } from './registry.ts';

/**
 * `POST /v1/instances/:id/migrate` and `POST /v1/backups/:id/migrate` (SPEC §8, issue 12): exactly
 * one target. `targetInstanceId` copies the data into another instance of the tenant (`volumes`,
 * `paths`: merge); `targetNodeId` moves the instance itself to another node (`hostPaths`). What
 * needs the records (volumes on the target, node online, paths inside its roots) is checked by the
 * gateway's MigrateService.
 */

const unique = (what: string) => (items: string[], ctx: z.RefinementCtx) => {
  items.forEach((n, i) => {
    if (items.indexOf(n) !== i) ctx.addIssue({ code: 'custom', path: [i], message: `duplicate ${what} ${n}` });
  });
};

export const MigrateBody = named(
  'MigrateRequest',
  z
    .object({
      targetInstanceId: Id.optional().describe('copy: the instance (same tenant, any node) that receives the data; its volumes of the same names are replaced'),
      volumes: z
        .array(VolumeName)
        .min(1)
        .max(64)
        .superRefine(unique('volume'))
        .optional()
        .describe('copy only: the volumes to copy (default: every volume of the source, or those named by paths); each must exist on the target'),
      paths: z
        .array(BackupPath)
        .min(1)
        .max(1000)
        .superRefine(unique('path'))
        .optional()
        .describe("copy only: '<volume>/<relative path>' files or directories, merged into the target (the rest of it is left as it is)"),
      targetNodeId: NodeId.optional().describe('move: the node the instance moves to (online, not its current node)'),
      hostPaths: z
        .record(VolumeName, HostPath)
        .optional()
        .describe("move only: volume name → absolute path on the target node, inside its volume roots (default: the volume's current path)"),
    })
    .strict()
    .superRefine((b, ctx) => {
      const copy = b.targetInstanceId !== undefined;
      const move = b.targetNodeId !== undefined;
      if (copy && move) {
        ctx.addIssue({ code: 'custom', path: ['targetNodeId'], message: 'give either targetInstanceId (copy) or targetNodeId (move), not both' });
      } else if (!copy && !move) {
        ctx.addIssue({
          code: 'custom',
          path: [],
          message: 'give a target: targetInstanceId (copy into another instance) or targetNodeId (move to another node)',
        });
      }
      if (!copy) {
        for (const field of ['volumes', 'paths'] as const) {
          if (b[field] !== undefined) ctx.addIssue({ code: 'custom', path: [field], message: `only with targetInstanceId (a move takes every volume)` });
        }
      }
      if (!move && b.hostPaths !== undefined) ctx.addIssue({ code: 'custom', path: ['hostPaths'], message: 'only with targetNodeId' });
      if (b.hostPaths) {
        const entries = Object.entries(b.hostPaths);
        entries.forEach(([name, p], i) => {
          const clash = entries.slice(0, i).find(([, o]) => o === p || o.startsWith(`${p}/`) || p.startsWith(`${o}/`));
          if (clash) ctx.addIssue({ code: 'custom', path: ['hostPaths', name], message: `overlaps volume ${clash[0]} (${clash[1]})` });
        });
      }
    }),
);
export type MigrateBody = z.infer<typeof MigrateBody>;
