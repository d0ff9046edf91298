import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { backupRangeSource, CairnError, containingRoot, isInside, type InstanceWithVolumes } from '@cairn/core';
import { eachEntry, rangeReadsOf, readIndex, unpackArchive, WRITEBACK_MIN_FILE_SIZE, type StreamedIndex } from '@cairn/core/archive/index.ts';
import type { JobRun, JobWork, WorkOutcome } from '../job-lifecycle.ts';
import { amendFailure, type Failure } from '../job-outcome.ts';
import { hookEnvOf } from './hooks/node-hooks.ts';
import { runWithHooks, type Hooked } from './hooks/run-with-hooks.ts';
import { frameOpenerFor, keyringOf, openIndexObject } from '@cairn/core';
import { writeBaseline } from './baseline.ts';
import { FlushAhead, flushFilesystem } from './flush.ts';
import { registeredVolumes, type RegisteredVolume } from './registered-volumes.ts';
import type { NodeContext } from './node-context.ts';
import { restoreChanges, type ChangeScope, type RestoreChanges } from './restore-changes.ts';
import { Journal, applyStaged, exists, isMountPoint, removeEmptyTree, resolveReal, stagingNames } from './staging.ts';

const restoreParams = z.object({
  volumes: z.array(z.string()).optional(),
  paths: z.array(z.string()).optional(),
  mode: z.enum(['replace', 'merge']).default('replace'),
  /**
   * A migrate's move (issue 12): volume name -> directory on this node to restore into instead of
   * the instance's registered host path (which is on its current node).
   */
  hostPaths: z.record(z.string(), z.string()).optional(),
  /** The host paths must be missing or empty (a move's first copy: nothing there may be replaced). */
  requireEmpty: z.boolean().optional(),
  /** A move's cutover: the pending Backup to complete as the target's stat baseline (baseline.ts). */
  baseline: z.string().optional(),
  /** Only report what the restore would create, change and delete: nothing is written, no hook runs. */
  dryRun: z.boolean().optional(),
});
type RestoreParams = z.infer<typeof restoreParams>;

export interface RestoreResult {
  filesWritten: number;
  bytesWritten: number;
  warnings: number;
  notes: string[];
  /** What the swap changed on the target (created, changed, deleted, unchanged, with sample paths). */
  changes: RestoreChanges;
}

/** A dry run's result: what the same request would do, measured on the target as it is now. */
export interface RestoreDryRunResult {
  dryRun: true;
  mode: 'replace' | 'merge';
  changes: RestoreChanges;
  /** Content bytes the restore would write (and need free, plus a margin, beside each volume). */
  bytesToWrite: number;
  notes: string[];
}

/** Free space a restore needs beyond the data itself. */
const SPACE_MARGIN = 64 * 1024 * 1024;
/** A restore of small files flushes its staging data as it goes, at most once per this many bytes written (FlushAhead). */
const FLUSH_AHEAD_BYTES = 64 * 1024 * 1024;

interface VolumePlan {
  name: string;
  live: string;
  staging: string;
  oldDir: string;
  /** Where the displaced data goes when a failed restore cannot be undone. */
  keptDir: string;
  inPlace: boolean;
  paths?: string[];
  /** This run created `staging` (so it may remove it). */
  ownsStaging?: boolean;
  /** This run may have displaced live data into `oldDir`. */
  touched?: boolean;
}

/**
 * The restore pipeline of SPEC §7, as a unit of work of the job lifecycle: download and verify
 * into a staging directory on the target's filesystem, then swap it in. On failure or cancel the
 * target is exactly as before: every change made to live directories is journaled and undone,
 * across all volumes; data that could not be put back is kept (never removed) and named in the
 * job's error.
 */
export class RestoreJob implements JobWork<RestoreResult | RestoreDryRunResult> {
  private readonly plans: VolumePlan[] = [];
  private readonly journal = new Journal();
  /** Displaced data a failed swap could not put back (undone before the post hook ran). */
  private readonly kept: string[] = [];

  constructor(private readonly ctx: NodeContext) {}

  /** `work` between the target instance's preRestore and postRestore hooks (none: just `work`). */
  private async withHooks(target: InstanceWithVolumes | null, run: JobRun, work: () => Promise<void>): Promise<Hooked<void>> {
    if (!target) return { value: await work(), warnings: [], window: null };
    let swapped = false;
    try {
      return await runWithHooks(
        hookEnvOf(this.ctx),
        {
          instance: target,
          stage: 'restore',
          job: { id: run.jobId!, attempt: run.attempt, backupId: run.job?.backupId ?? null },
          signal: run.signal,
          progress: (stage) => run.progress(stage),
        },
        async () => {
          await work();
          swapped = true;
        },
      );
    } catch (err) {
      // A post hook that failed after the swap: the data is restored, the job still fails (onError "fail").
      if (swapped && err instanceof CairnError && err.code === 'hook-failed')
        throw new CairnError('hook-failed', `${err.message}; the restore itself completed: the volumes hold the restored data`, { details: err.details });
      throw err;
    }
  }

  async run(run: JobRun): Promise<WorkOutcome<RestoreResult | RestoreDryRunResult>> {
    const { ctx } = this;
    const job = run.job!;
    const backup = job.backupId ? await ctx.records.backups.get(job.backupId) : null;
    if (!backup) throw new CairnError('not-found', `job ${run.jobId} has no backup record`);
    if (backup.status !== 'completed') throw new CairnError('conflict', `backup ${backup.id} is ${backup.status}, only completed backups can be restored`);
    const params = restoreParams.parse(job.params ?? {});
    const target = await ctx.records.instances.get(job.targetInstanceId ?? backup.instanceId);
    if (!target) throw new CairnError('not-found', `target instance ${job.targetInstanceId} no longer exists`);

    run.progress('reading-index');
    // Entries go to a temporary file as the index is read: memory does not grow with the file count.
    // An encrypted backup's keys first: a master key missing from the ring fails here, naming it.
    const keyring = keyringOf(ctx.config as never);
    const index = await readIndex(openIndexObject(keyring, backup, await ctx.store.get(backup.indexKey, { signal: run.signal })));
    try {
      const volumeNames = params.volumes?.length ? params.volumes : backup.volumes.length ? backup.volumes : index.volumes.map((v) => v.name);
      const plans = await this.plan(job.id, target, volumeNames, params);
      const needed = bytesNeeded(index, plans);
      if (params.dryRun) return { status: 'succeeded', result: await dryRun(run, index, plans, params.mode, needed) };
      await checkFreeSpaceOf(plans.map((p) => ({ home: path.dirname(p.staging), bytes: needed.get(p.name)! })));
      const total = [...needed.values()].reduce((a, b) => a + b, 0);
      await makeStaging(plans);

      run.progress('restoring', { bytesDone: 0, bytesTotal: total, filesDone: 0, filesTotal: 0 });
      const open = await frameOpenerFor(keyring, ctx.records.backups, backup, index);
      const flushAhead = new FlushAhead(() => flushStaging(plans), { every: FLUSH_AHEAD_BYTES, smallBelow: WRITEBACK_MIN_FILE_SIZE });
      const common = {
        ...(open ? { open } : {}),
        target: plans[0]!.staging,
        volumeDirs: Object.fromEntries(plans.map((p) => [p.name, p.staging])),
        index,
        signal: run.signal,
        restoreOwnership: process.getuid?.() === 0,
        onProgress: (p: { bytesDone: number; bytesTotal: number; filesDone: number; filesTotal: number }) => {
          flushAhead.wrote(p);
          run.progress('restoring', p);
        },
      };
      // Range reads of whole frames, several in flight (one sequential GET is the slowest way to
      // read a large object): only the blocks holding the chosen paths, or all of them, in this
      // backup's object and (an incremental) the objects it reads frames from.
      const result = await unpackArchive({
        ...common,
        ...(params.paths?.length ? { paths: params.paths } : {}),
        source: backupRangeSource(ctx.store, backup, index.codec, run.signal, ctx.config.STORE_THREAD ?? true),
        rangeReads: rangeReadsOf(ctx.config),
        expectedSha256: backup.sha256 ?? undefined,
      });

      // The restored data on disk before the swap: once a rename is, the data it brings is too,
      // so a crash can never leave restored files short with the replaced data gone. A stage of
      // its own: on a slow disk this wait is long, and the restore's counters already read 100%.
      run.progress('flushing');
      await flushAhead.settled();
      await flushStaging(plans);
      // Past this point the target changes: the last chance to honour a cancel.
      if (run.signal.aborted) throw new CairnError('cancelled', 'cancelled before the swap');
      const notes: string[] = [];
      // Measured right before the swap, by the comparison a dry run reports (restore-changes.ts).
      run.progress('comparing');
      const changes = await restoreChanges(index.entries, await scopesOf(plans), params.mode);
      // The target instance's preRestore hook runs right before its data changes, its postRestore
      // hook once the restored data is in place, or the previous data is back (issue 13).
      // A move's copy on its target node is not the instance's live data yet: no restore hooks.
      const hooked = await this.withHooks(params.hostPaths ? null : target, run, async () => {
        run.progress('swapping');
        try {
          for (const plan of plans) {
            plan.touched = true;
            await swapIn(plan, params.mode, this.journal);
            if (plan.inPlace)
              notes.push(`${plan.name}: ${plan.live} is a mount point or volume root, entries were moved into place instead of swapping the directory`);
          }
        } catch (err) {
          // Put the previous data back before the post hook wakes the application on it.
          this.kept.push(...(await undo(this.plans, this.journal)));
          this.plans.length = 0;
          throw err;
        }
        // Every volume is in place: from here on nothing is undone (a failure to record the job
        // makes BullMQ run it again, which restores the same data again).
        this.plans.length = 0;
      });
      notes.push(...hooked.warnings.map((w) => w.message));
      notes.push(...(await removeReplaced(plans)));
      if (params.baseline) {
        const dirs = Object.fromEntries(plans.map((p) => [p.name, p.live]));
        const written = await writeBaseline(ctx, run, { backupId: params.baseline, of: backup, index, dirs });
        notes.push(written ? `stat baseline written as backup ${params.baseline}` : `no stat baseline: backup ${params.baseline} was not written`);
      }
      run.progress('done');
      return {
        status: 'succeeded',
        result: { filesWritten: result.filesWritten, bytesWritten: result.bytesWritten, warnings: result.warnings.length, notes, changes },
      };
    } finally {
      index.entries.close();
    }
  }

  /** Undoes what this run changed; data that could not be put back is named in the error. */
  async onFailure(failure: Failure): Promise<Failure | undefined> {
    const kept = [...this.kept, ...(await undo(this.plans, this.journal))];
    if (kept.length)
      return amendFailure(failure, `${failure.error.message}; the restore could not be fully undone: the previous content is kept at ${kept.join(', ')}`);
    return undefined;
  }

  /** One plan per restored volume: where it lives, where it is staged, what is restored into it. */
  private async plan(
    jobId: string,
    target: InstanceWithVolumes,
    volumeNames: string[],
    params: Pick<RestoreParams, 'paths' | 'hostPaths' | 'requireEmpty' | 'dryRun'>,
  ): Promise<VolumePlan[]> {
    const { paths, hostPaths, requireEmpty = false, dryRun = false } = params;
    const byVolume = groupPaths(paths, volumeNames);
    // With paths, only the volumes they name are touched (a volume with none selected would
    // otherwise be "replaced" by an empty staging directory).
    const restored = paths?.length ? volumeNames.filter((n) => byVolume.has(n)) : volumeNames;
    const realRoots = await Promise.all(this.ctx.volumeRoots.map((r) => fs.realpath(r).catch(() => path.resolve(r))));
    const others = await registeredVolumes(this.ctx);
    for (const name of restored) {
      const volume = target.volumes.find((v) => v.name === name);
      if (!volume) throw new CairnError('validation', `target instance ${target.name} has no volume named ${name}`);
      const hostPath = hostPaths ? hostPaths[name] : volume.hostPath;
      if (!hostPath) throw new CairnError('validation', `no host path on this node for volume ${name}`);
      if (hostPaths && !path.isAbsolute(hostPath)) throw new CairnError('validation', `host path ${hostPath} of volume ${name} is not absolute`);
      if (requireEmpty && !(await isMissingOrEmpty(hostPath)))
        throw new CairnError('conflict', `${hostPath} (volume ${name}) on node ${this.ctx.nodeId} is not empty: a move never replaces data it did not write`);
      const live = await liveDir(hostPath, realRoots, !dryRun);
      await assertNothingInside(live, volume.id, others);
      // A move's target directory belongs to no instance yet: it must not be (inside) one that does.
      if (hostPaths) {
        const owner = others.find((o) => o.real === live || isInside(live, o.real));
        if (owner) throw new CairnError('unsafe-path', `cannot restore into ${live}: it is ${owner.label} (${owner.real}) or inside it`);
      }
      // A volume root cannot be renamed away (its parent is outside the roots): apply in place.
      const inPlace = realRoots.includes(live) || ((await exists(live)) && (await isMountPoint(live)));
      const names = stagingNames(jobId, live);
      const home = inPlace ? live : path.dirname(live);
      this.plans.push({
        name,
        live,
        staging: path.join(home, names.staging),
        oldDir: path.join(home, names.old),
        keptDir: path.join(home, names.kept),
        inPlace,
        paths: byVolume.get(name),
      });
    }
    return [...this.plans];
  }
}

async function isMissingOrEmpty(dir: string): Promise<boolean> {
  try {
    return (await fs.readdir(dir)).length === 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
}

/** The live side of each plan, for restoreChanges (a missing volume directory, live null: everything is created). */
async function scopesOf(plans: readonly VolumePlan[]): Promise<ChangeScope[]> {
  return Promise.all(plans.map(async (p) => ({ name: p.name, live: (await exists(p.live)) ? p.live : null, ...(p.paths ? { paths: p.paths } : {}) })));
}

/**
 * A dry run (issue 15): the request's checks and plan, then the comparison of the backup with the
 * live volumes. Nothing is created, staged, swapped or hooked; a lack of free space is a note, not
 * a failure (the real restore fails on it before writing anything).
 */
async function dryRun(
  run: JobRun,
  index: StreamedIndex,
  plans: VolumePlan[],
  mode: 'replace' | 'merge',
  needed: Map<string, number>,
): Promise<RestoreDryRunResult> {
  run.progress('comparing');
  const scopes = await scopesOf(plans);
  const missing = scopes.map((s) => s.live === null);
  const changes = await restoreChanges(index.entries, scopes, mode);
  const notes = plans.filter((_, i) => missing[i]).map((p) => `${p.name}: ${p.live} does not exist yet; the restore creates it`);
  const homes = plans.filter((_, i) => !missing[i]).map((p) => ({ home: path.dirname(p.staging), bytes: needed.get(p.name)! }));
  await checkFreeSpaceOf(homes).catch((err: Error) => notes.push(err.message));
  run.progress('done');
  return { dryRun: true, mode, changes, bytesToWrite: [...needed.values()].reduce((a, b) => a + b, 0), notes };
}

/** Creates each plan's staging directory; one that exists belongs to another run of this job. */
async function makeStaging(plans: VolumePlan[]): Promise<void> {
  for (const plan of plans) {
    try {
      await fs.mkdir(plan.staging, { mode: 0o700 });
    } catch (err) {
      // Another run of this job (a stalled copy) owns it; never touch it.
      if ((err as NodeJS.ErrnoException).code === 'EEXIST')
        throw new CairnError('unavailable', `staging directory ${plan.staging} already exists (another run of this restore?)`, { permanent: false });
      throw err;
    }
    plan.ownsStaging = true;
  }
}

/**
 * Resolves (and, with `create`, creates when missing) a target volume directory, contained in the
 * node's roots. Containment is checked on where the path really leads before anything is created,
 * and again after. Without `create` a missing directory is answered by where it would be.
 */
async function liveDir(hostPath: string, realRoots: readonly string[], create: boolean): Promise<string> {
  const planned = await resolveReal(hostPath);
  if (!containingRoot(planned, realRoots)) throw new CairnError('unsafe-path', `${hostPath} resolves to ${planned}, outside the node's volume roots`);
  if (!create && !(await exists(planned))) return planned;
  if (create) await fs.mkdir(planned, { recursive: true, mode: 0o755 });
  const real = await fs.realpath(hostPath);
  if (!containingRoot(real, realRoots)) throw new CairnError('unsafe-path', `${hostPath} resolves to ${real}, outside the node's volume roots`);
  if (!(await fs.stat(real)).isDirectory()) throw new CairnError('validation', `${hostPath} is not a directory`);
  return real;
}

/**
 * Refuses to restore into a directory that holds (or is) another registered volume: replacing it
 * would replace, and then delete, that volume's data too.
 */
async function assertNothingInside(live: string, volumeId: string, others: RegisteredVolume[]): Promise<void> {
  for (const o of others) {
    if (o.id === volumeId || !isInside(o.real, live)) continue;
    throw new CairnError('unsafe-path', `cannot restore into ${live}: ${o.label} (${o.real}) lies inside it`);
  }
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

/**
 * Bytes of the regular files restored into each volume (all of it, or the given relative paths):
 * from the volumes' summaries, or in one pass over the entries (they may be in a temporary file).
 */
function bytesNeeded(index: StreamedIndex, plans: readonly { name: string; paths?: string[] }[]): Map<string, number> {
  // Whole volumes: their summaries hold the sum already (a pass over 100k spilled entries is ~0.2 s).
  const summaries = plans.map((p) => (p.paths?.length ? undefined : index.volumes.find((v) => v.name === p.name)?.logicalBytes));
  if (summaries.every((b) => Number.isSafeInteger(b) && b! >= 0)) return new Map(plans.map((p, i) => [p.name, summaries[i]!]));
  const wants = plans.map((p) => {
    const roots = p.paths?.length ? p.paths.map((rel) => `${p.name}/${rel.replace(/\/+$/, '')}`) : [p.name];
    return { name: p.name, wanted: (path: string) => roots.some((sel) => path === sel || path.startsWith(`${sel}/`)) };
  });
  const totals = new Map(plans.map((p) => [p.name, 0]));
  // Entries are checked by unpack; a malformed one must not fail here first with a TypeError.
  for (const e of eachEntry(index.entries)) {
    if (e?.type !== 'file' || typeof e.path !== 'string') continue;
    for (const w of wants) if (w.wanted(e.path)) totals.set(w.name, totals.get(w.name)! + (Number(e.size) || 0));
  }
  return totals;
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

/** checkFreeSpace for several staging homes: the bytes of all volumes on one filesystem add up. */
export async function checkFreeSpaceOf(homes: Array<{ home: string; bytes: number }>): Promise<void> {
  const byDevice = new Map<number | bigint, { home: string; bytes: number }>();
  for (const { home, bytes } of homes) {
    const dev = (await fs.stat(home)).dev;
    const seen = byDevice.get(dev);
    if (seen) seen.bytes += bytes;
    else byDevice.set(dev, { home, bytes });
  }
  for (const { home, bytes } of byDevice.values()) await checkFreeSpace(home, bytes);
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

async function swapIn(plan: VolumePlan, mode: 'replace' | 'merge', journal: Journal): Promise<void> {
  if (mode === 'replace' && !plan.paths && !plan.inPlace) {
    // Whole-directory swap: two renames; the live directory is never half-written.
    await journal.move(plan.live, plan.oldDir);
    await journal.move(plan.staging, plan.live);
    return;
  }
  await applyStaged({ staging: plan.staging, live: plan.live, oldDir: plan.oldDir, mode, paths: plan.paths, journal });
}

/** Flushes the filesystem of each staging directory (once per filesystem); a failure fails the restore before the target changes. */
export async function flushStaging(plans: Pick<VolumePlan, 'name' | 'staging'>[], flush = flushFilesystem): Promise<void> {
  const devices = new Set<number>();
  for (const plan of plans) {
    const { dev } = await fs.stat(plan.staging);
    if (devices.has(dev)) continue;
    devices.add(dev);
    const failed = await flush(plan.staging);
    if (failed)
      throw new CairnError('unavailable', `volume ${plan.name}: the restored data could not be flushed to disk (${failed}); the target was not changed`);
  }
}

/**
 * After a successful swap: removes the staging leftovers and the replaced data. A failure here
 * does not fail the restore (the volumes are already restored); it is reported in the notes.
 */
async function removeReplaced(plans: VolumePlan[]): Promise<string[]> {
  const notes: string[] = [];
  for (const plan of plans) {
    for (const dir of [plan.staging, plan.oldDir]) {
      await fs.rm(dir, { recursive: true, force: true }).catch((err: Error) => notes.push(`${plan.name}: could not remove ${dir}: ${err.message}`));
    }
  }
  return notes;
}

/**
 * Undoes a failed restore: every change to live directories is reversed (newest first), then this
 * run's staging copies are removed. Displaced data that could not be put back is never removed:
 * it is renamed to the kept name and returned, so the job's error can name it.
 */
async function undo(plans: VolumePlan[], journal: Journal): Promise<string[]> {
  const clean = await journal.undo();
  const kept: string[] = [];
  for (const plan of plans) {
    if (plan.ownsStaging) await fs.rm(plan.staging, { recursive: true, force: true }).catch(() => {}); // a leftover is removed at the next worker start
    if (!plan.touched || !(await exists(plan.oldDir))) continue;
    if (clean) {
      // Only empty scaffolding should be left; anything else is kept below.
      if (
        await removeEmptyTree(plan.oldDir).then(
          () => true,
          () => false,
        )
      )
        continue;
    }
    const where = await fs.rename(plan.oldDir, plan.keptDir).then(
      () => plan.keptDir,
      () => plan.oldDir,
    );
    kept.push(where);
  }
  return kept;
}
