import { CairnError, containingRoot, isInside } from '@cairn/core';
import type { NodeContext } from './node-context.ts';
import { resolveReal } from './staging.ts';

export interface RegisteredVolume {
  id: string;
  label: string;
  /** Its host path with symlinks followed. */
  real: string;
}

/** Every volume registered on this node, resolved (symlinks followed). */
export async function registeredVolumes(ctx: Pick<NodeContext, 'records' | 'nodeId'>): Promise<RegisteredVolume[]> {
  const rows = await ctx.records.instances.volumes({ nodeId: ctx.nodeId });
  return Promise.all(rows.map(async (v) => ({ id: v.id, label: `volume ${v.name} of instance ${v.instance.name}`, real: await resolveReal(v.hostPath) })));
}

/**
 * A migrate's own directories on this node (volume name -> host path), resolved: each inside one
 * of the node's volume roots (never a root itself) and neither being, holding nor lying in a
 * registered volume, so no instance's data can be touched through them. `refusal` ends the
 * message of an owned path. All are checked before any is returned.
 */
export async function unownedDirs(
  ctx: Pick<NodeContext, 'records' | 'nodeId' | 'volumeRoots'>,
  hostPaths: Record<string, string>,
  refusal: string,
): Promise<Record<string, string>> {
  const roots = await Promise.all(ctx.volumeRoots.map((r) => resolveReal(r)));
  const volumes = await registeredVolumes(ctx);
  const out: Record<string, string> = {};
  for (const [name, hostPath] of Object.entries(hostPaths)) {
    const real = await resolveReal(hostPath);
    const root = containingRoot(real, roots);
    if (!root || real === root) throw new CairnError('unsafe-path', `${hostPath} (volume ${name}) is not a directory inside this node's volume roots`);
    const owner = volumes.find((v) => isInside(real, v.real) || isInside(v.real, real));
    if (owner) throw new CairnError('unsafe-path', `${hostPath} belongs to ${owner.label} (${owner.real}); ${refusal}`);
    out[name] = real;
  }
  return out;
}
