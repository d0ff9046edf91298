import fs from 'node:fs/promises';
import { CairnError, containingRoot } from '@cairn/core';

export type VolumeDir = { name: string; status: 'ok'; dir: string; excludes: string[] } | { name: string; status: 'skipped'; reason: string };

/**
 * Resolves a volume's host path at run time (SPEC §6 step 1): it must exist, be a directory and
 * stay inside one of the node's volume roots after resolving symlinks. A symlinked escape is a
 * permanent error (never followed); a missing or non-directory path is reported as skipped.
 */
export async function resolveVolumeDir(volume: { name: string; hostPath: string; excludes: string[] }, roots: readonly string[]): Promise<VolumeDir> {
  let real: string;
  try {
    real = await fs.realpath(volume.hostPath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      name: volume.name,
      status: 'skipped',
      reason: code === 'ENOENT' ? `path ${volume.hostPath} does not exist` : `path ${volume.hostPath} cannot be resolved (${code})`,
    };
  }
  const realRoots = await Promise.all(roots.map((r) => fs.realpath(r).catch(() => r)));
  if (!containingRoot(real, realRoots)) {
    throw new CairnError('unsafe-path', `volume ${volume.name}: ${volume.hostPath} resolves to ${real}, outside the node's volume roots`);
  }
  const stat = await fs.stat(real);
  if (!stat.isDirectory()) return { name: volume.name, status: 'skipped', reason: `path ${volume.hostPath} is not a directory` };
  return { name: volume.name, status: 'ok', dir: real, excludes: volume.excludes };
}

export async function isEmptyDir(dir: string): Promise<boolean> {
  const handle = await fs.opendir(dir);
  try {
    for await (const _ of handle) return false;
    return true;
  } finally {
    await handle.close().catch(() => {});
  }
}
