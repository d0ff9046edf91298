import fs from 'node:fs/promises';
import path from 'node:path';
import { buffer } from 'node:stream/consumers';
import { z } from 'zod';
import { CairnError, containingRoot, transitionJob } from '@cairn/core';
import { decodeIndex, unpackArchive, type ArchiveIndex } from '@cairn/core/archive/index.ts';
import { classify, recordFailure } from './job-outcome.ts';
import type { JobRun, NodeContext } from './node-context.ts';
import { applyStaged, exists, isMountPoint, rollbackStaged, stagingNames } from './staging.ts';

const restoreParams = z.object({
  volumes: z.array(z.string()).optional(),
  paths: z.array(z.string()).optional(),
  mode: z.enum(['replace', 'merge']).default('replace'),
});

/** Free space a restore needs beyond the data itself. */
const SPACE_MARGIN = 64 * 1024 * 1024;

interface VolumePlan {
  name: string;
  live: string;
  staging: string;
  oldDir: string;
  inPlace: boolean;
  paths?: string[];
  /** Set when a failed swap could not be fully undone: the displaced data stays in oldDir. */
  keepOld?: boolean;
}

/**
 * The restore pipeline of SPEC §7: download and verify into a staging directory on the target's
 * filesystem, then swap it in. On failure or cancel the target is exactly as before.
 */
export async function runRestore(ctx: NodeContext, run: JobRun): Promise<{ status: 'succeeded' | 'skipped'; filesWritten?: number }> {
  const job = await ctx.prisma.job.findUnique({ where: { id: run.jobId }, include: { backup: true } });
  if (!job?.backup) throw new CairnError('not-found', `job ${run.jobId} has no backup record`);
  if (job.status !== 'queued' && job.status !== 'running') return { status: 'skipped' };
  await transitionJob(ctx.prisma, job.id, ['queued', 'running'], 'running', { startedAt: job.startedAt ?? new Date(), attempts: run.attempt, nodeId: ctx.nodeId, error: null });

  const plans: VolumePlan[] = [];
  try {
    const backup = job.backup;
    if (backup.status !== 'completed') throw new CairnError('conflict', `backup ${backup.id} is ${backup.status}, only completed backups can be restored`);
    const params = restoreParams.parse(job.params ?? {});
    const target = await ctx.prisma.instance.findUnique({ where: { id: job.targetInstanceId ?? backup.instanceId }, include: { volumes: true } });
    if (!target) throw new CairnError('not-found', `target instance ${job.targetInstanceId} no longer exists`);

    run.progress('reading-index');
    const index = decodeIndex(await buffer(await ctx.store.get(backup.indexKey, { signal: run.signal })));
    const volumeNames = params.volumes?.length ? params.volumes : backup.volumes.length ? backup.volumes : index.volumes.map((v) => v.name);
    const byVolume = groupPaths(params.paths, volumeNames);

    for (const name of volumeNames) {
      const volume = target.volumes.find((v) => v.name === name);
      if (!volume) throw new CairnError('validation', `target instance ${target.name} has no volume named ${name}`);
      const live = await liveDir(volume.hostPath, ctx.volumeRoots);
      const inPlace = await isMountPoint(live);
      const names = stagingNames(job.id, live);
      const home = inPlace ? live : path.dirname(live);
      plans.push({ name, live, staging: path.join(home, names.staging), oldDir: path.join(home, names.old), inPlace, paths: byVolume.get(name) });
    }

    const needed = bytesNeeded(index, volumeNames, params.paths);
    if (plans[0]) await checkFreeSpace(path.dirname(plans[0].staging), needed);

    for (const plan of plans) await fs.mkdir(plan.staging, { mode: 0o700 });
    run.progress('restoring', { bytesDone: 0, bytesTotal: needed, filesDone: 0, filesTotal: 0 });
    const volumeDirs = Object.fromEntries(plans.map((p) => [p.name, p.staging]));
    const common = {
      target: plans[0]!.staging,
      volumeDirs,
      index,
      signal: run.signal,
      restoreOwnership: process.getuid?.() === 0,
      onProgress: (p: { bytesDone: number; bytesTotal: number; filesDone: number; filesTotal: number }) => run.progress('restoring', p),
    };
    const result = params.paths?.length
      ? await unpackArchive({
          ...common,
          paths: params.paths,
          source: { rangeReader: (start, end) => ctx.store.get(backup.storageKey, { range: { start, end }, signal: run.signal }) },
        })
      : await unpackArchive({ ...common, source: { stream: await ctx.store.get(backup.storageKey, { signal: run.signal }) }, expectedSha256: backup.sha256 ?? undefined });

    // Past this point the target changes: the last chance to honour a cancel.
    if (run.signal.aborted) throw new CairnError('cancelled', 'cancelled before the swap');
    run.progress('swapping');
    const notes: string[] = [];
    for (const plan of plans) {
      await swapIn(plan, params.mode);
      if (plan.inPlace) notes.push(`${plan.name}: ${plan.live} is a mount point, entries were moved into place instead of swapping the directory`);
    }
    await cleanup(plans);
    await transitionJob(ctx.prisma, job.id, ['running'], 'succeeded', {
      result: { filesWritten: result.filesWritten, bytesWritten: result.bytesWritten, warnings: result.warnings.length, notes },
    });
    run.progress('done');
    return { status: 'succeeded', filesWritten: result.filesWritten };
  } catch (err) {
    await cleanup(plans).catch(() => {});
    throw await recordFailure(ctx.prisma, run, classify(err, run));
  }
}

/** Resolves (and creates when missing) a target volume directory, contained in the node's roots. */
async function liveDir(hostPath: string, roots: readonly string[]): Promise<string> {
  await fs.mkdir(hostPath, { recursive: true, mode: 0o755 });
  const real = await fs.realpath(hostPath);
  const realRoots = await Promise.all(roots.map((r) => fs.realpath(r).catch(() => r)));
  if (!containingRoot(real, realRoots)) throw new CairnError('unsafe-path', `${hostPath} resolves to ${real}, outside the node's volume roots`);
  return real;
}

/** Splits '<volume>/<rel>' paths by volume; a path naming the whole volume means all of it. */
function groupPaths(paths: string[] | undefined, volumes: string[]): Map<string, string[] | undefined> {
  const out = new Map<string, string[] | undefined>();
  if (!paths?.length) return out;
  for (const p of paths) {
    const [volume, ...rest] = p.split('/').filter(Boolean);
    if (!volume || !volumes.includes(volume)) throw new CairnError('validation', `path ${p} is not inside a restored volume (${volumes.join(', ')})`);
    if (rest.some((s) => s === '..' || s === '.')) throw new CairnError('unsafe-path', `path ${p} is not a clean relative path`);
    const list = out.has(volume) ? out.get(volume) : [];
    if (list === undefined) continue;
    if (rest.length === 0) out.set(volume, undefined);
    else out.set(volume, [...list, rest.join('/')]);
  }
  return out;
}

function bytesNeeded(index: ArchiveIndex, volumes: string[], paths?: string[]): number {
  const wanted = (p: string) =>
    paths?.length ? paths.some((sel) => p === sel || p.startsWith(`${sel.replace(/\/+$/, '')}/`)) : volumes.some((v) => p === v || p.startsWith(`${v}/`));
  let total = 0;
  for (const e of index.entries) if (e.type === 'file' && wanted(e.path)) total += Number(e.size);
  return total;
}

/** Fails early, before anything is written, when `home` cannot hold `needed` bytes plus a margin. */
export async function checkFreeSpace(home: string, needed: number): Promise<void> {
  const st = await fs.statfs(home);
  const available = st.bavail * st.bsize;
  const want = needed + SPACE_MARGIN;
  if (available < want) {
    throw new CairnError('insufficient-space', `not enough free space in ${home}: need ${formatBytes(want)}, available ${formatBytes(available)}`);
  }
}

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

async function swapIn(plan: VolumePlan, mode: 'replace' | 'merge'): Promise<void> {
  if (mode === 'replace' && !plan.paths && !plan.inPlace) {
    // Whole-directory swap: two renames; the live directory is never half-written.
    await fs.rename(plan.live, plan.oldDir);
    try {
      await fs.rename(plan.staging, plan.live);
    } catch (err) {
      await fs.rename(plan.oldDir, plan.live);
      throw err;
    }
    return;
  }
  const skip = new Set([path.basename(plan.staging), path.basename(plan.oldDir)]);
  try {
    await applyStaged({ staging: plan.staging, live: plan.live, oldDir: plan.oldDir, mode, paths: plan.paths, skip });
  } catch (err) {
    // Put back what was displaced; if that fails too, keep the old copy for the operator.
    if (!(await rollbackStaged(plan.live, plan.oldDir))) plan.keepOld = true;
    throw err;
  }
}

async function cleanup(plans: VolumePlan[]): Promise<void> {
  for (const plan of plans) {
    await fs.rm(plan.staging, { recursive: true, force: true });
    if (!plan.keepOld && (await exists(plan.live))) await fs.rm(plan.oldDir, { recursive: true, force: true });
  }
}
