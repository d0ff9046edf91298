import fs from 'node:fs/promises';
import type { VolumeStateReport, VolumeStateReports } from '@cairn/core';
import type { NodeContext } from './node-context.ts';

/** What this node sees at `hostPath`: a readable directory, nothing, something else, or an error. */
export async function checkVolumeState(hostPath: string, now: Date = new Date()): Promise<VolumeStateReport> {
  const checkedAt = now.toISOString();
  const code = (err: unknown) => (err as NodeJS.ErrnoException).code ?? 'error';
  let isDir: boolean;
  try {
    isDir = (await fs.stat(hostPath)).isDirectory();
  } catch (err) {
    // ENOTDIR: a parent of the path is a file, so the directory is not there either.
    if (code(err) === 'ENOENT' || code(err) === 'ENOTDIR') return { state: 'missing', checkedAt };
    return { state: 'unreadable', checkedAt, error: code(err) };
  }
  if (!isDir) return { state: 'not-a-directory', checkedAt };
  try {
    // Opening it is what a backup does first: a directory we may not list cannot be backed up.
    await (await fs.opendir(hostPath)).close();
  } catch (err) {
    return { state: 'unreadable', checkedAt, error: code(err) };
  }
  return { state: 'exists', checkedAt };
}

/** The state of every volume registered on this node, keyed by host path (the heartbeat's `volumeStates`). */
export async function volumeStateReports(ctx: Pick<NodeContext, 'records' | 'nodeId'>, now: Date = new Date()): Promise<VolumeStateReports> {
  const volumes = await ctx.records.instances.volumes({ nodeId: ctx.nodeId });
  const paths = [...new Set(volumes.map((v) => v.hostPath))];
  const reports = await Promise.all(paths.map((p) => checkVolumeState(p, now)));
  return Object.fromEntries(paths.map((p, i) => [p, reports[i]!]));
}
