import { manifestKey, parseBackupKey, softDeleteBackups, type BackupStatus, type DeletionQueues, type JobQueues, type Logger, type Records } from '@cairn/core';
import type { ObjectStore } from '@cairn/core/storage/object-store.ts';
import type { ThawedWindow } from '../node/hooks/run-with-hooks.ts';
import { thawAbandonedHookWindows } from './hook-thaw.ts';
import { reconcileLostJobs } from '../reconcile/lost-jobs.ts';

/**
 * The periodic orphan sweep (SPEC §10). In this order, each step feeding the next:
 * 1. Jobs `queued`/`running` whose BullMQ job is gone (or finished without the record being
 *    updated), or whose node has sent no heartbeat for `nodeOfflineMs` → enqueued again when safe,
 *    else `interrupted` and the backup they were producing `failed` (reconcile/lost-jobs.ts).
 * 1b. Hook windows left open by a job that ended (its worker died between pre and post hooks) →
 *    their webhook post hook run ("thaw"); a command post hook waits for its node worker's start.
 * 2. Backups stuck `deleting` with no cleanup job alive → a new cleanup job.
 * 3. `completed` backups (completed over `missingGraceMs` ago) whose archive (or index) object is
 *    missing → `failed` ("archive missing").
 * 4. Incomplete multipart uploads older than `uploadGraceMs`, except those of a backup being produced.
 * 5. Objects under the prefix whose backup has no row or is `deleted`/`failed`/`cancelled`, older
 *    than `orphanGraceMs` → deleted; except, for an instance with a backup manifest in the bucket
 *    whose backup has no row at all (a lost database, issue 14), the objects of its backups
 *    without a row: reported as unrecorded, left for `cairn catalog rebuild`.
 * Grace periods keep the sweep off work in flight: a row is written before its job is enqueued and
 * before its objects are uploaded, so young things are left for the next sweep.
 */

export interface SweepOptions {
  /** Objects without a live backup younger than this are kept. Default 1 h. */
  orphanGraceMs: number;
  /** Incomplete multipart uploads younger than this are kept. Default 24 h. */
  uploadGraceMs: number;
  /** A node silent for this long is offline: its jobs are interrupted. Default 10 min. */
  nodeOfflineMs: number;
  /** Jobs created less than this ago are not judged lost (the enqueue may be under way). Default 10 min. */
  lostJobGraceMs: number;
  /** Backups `deleting` for longer than this with no cleanup job alive get a new one. Default 10 min. */
  deletingGraceMs: number;
  /** Completed backups are checked for missing objects once completed this long ago. Default 1 h. */
  missingGraceMs: number;
}

export const DEFAULT_SWEEP_OPTIONS: Readonly<SweepOptions> = {
  orphanGraceMs: 3600_000,
  uploadGraceMs: 24 * 3600_000,
  nodeOfflineMs: 10 * 60_000,
  lostJobGraceMs: 10 * 60_000,
  deletingGraceMs: 10 * 60_000,
  missingGraceMs: 3600_000,
};

export interface SweepDeps {
  records: Records;
  store: ObjectStore;
  queues: Pick<JobQueues, 'queue' | 'enqueueNode' | 'isHeld'> & DeletionQueues;
  logger: Logger;
  clock?: () => Date;
}

/** At most this many ids/keys per list in the recorded result; the counts are always complete. */
const LIST_CAP = 200;

export interface SweepReport {
  interruptedJobs: { jobId: string; backupId: string | null; reason: string }[];
  /** Jobs lost from the queue that were safe to run again (reconcile/lost-jobs.ts): enqueued again. */
  requeuedJobs: { jobId: string; backupId: string | null; reason: string }[];
  failedBackups: string[];
  cleanupsRestarted: string[];
  archiveMissing: { backupId: string; missing: 'archive' | 'index' }[];
  abortedUploads: { key: string; uploadId: string }[];
  deletedObjects: { count: number; bytes: number; keys: string[] };
  /** Orphan objects still inside their grace period. */
  youngOrphans: number;
  /** Keys under the prefix outside the backup layout: reported, never deleted. */
  foreignKeys: number;
  /** Post hooks run for hook windows left open by a worker that died between pre and post (issue 13). */
  thawedHookWindows: ThawedWindow[];
  /**
   * Backups with a manifest in the bucket and no row at all (a lost or emptied database): their
   * instance's row-less objects are never deleted; `cairn catalog rebuild` recreates the rows.
   */
  unrecordedBackups: string[];
  /** Per-item problems (a delete that failed...); the sweep goes on. */
  problems: string[];
}

const DEAD_BACKUP: BackupStatus[] = ['deleted', 'failed', 'cancelled'];
const BATCH = 500;

function push<T>(list: T[], item: T): void {
  if (list.length < LIST_CAP) list.push(item);
}

export async function runOrphanSweep(deps: SweepDeps, options: Partial<SweepOptions> = {}): Promise<SweepReport> {
  const opts: SweepOptions = { ...DEFAULT_SWEEP_OPTIONS, ...options };
  const clock = deps.clock ?? (() => new Date());
  const report: SweepReport = {
    interruptedJobs: [],
    requeuedJobs: [],
    failedBackups: [],
    cleanupsRestarted: [],
    archiveMissing: [],
    abortedUploads: [],
    deletedObjects: { count: 0, bytes: 0, keys: [] },
    youngOrphans: 0,
    foreignKeys: 0,
    thawedHookWindows: [],
    unrecordedBackups: [],
    problems: [],
  };
  await sweepLostJobs(deps, opts, clock(), report);
  report.thawedHookWindows = (await thawAbandonedHookWindows(deps, clock())).thawed.slice(0, LIST_CAP);
  await restartStuckDeletes(deps, opts, clock(), report);
  await sweepStorage(deps, opts, clock, report);
  return report;
}

/** Step 1: the jobs nobody runs, by the same rules as the control worker's short periodic check. */
async function sweepLostJobs(deps: SweepDeps, opts: SweepOptions, now: Date, report: SweepReport): Promise<void> {
  const outcomes = await reconcileLostJobs({ ...deps, clock: () => now }, { lostJobGraceMs: opts.lostJobGraceMs, nodeDeadMs: opts.nodeOfflineMs });
  for (const o of outcomes) {
    if (o.action === 'requeued') push(report.requeuedJobs, { jobId: o.jobId, backupId: o.backupId, reason: o.reason });
    else push(report.interruptedJobs, { jobId: o.jobId, backupId: o.backupId, reason: o.reason });
    if (o.backupFailed && o.backupId) push(report.failedBackups, o.backupId);
  }
}

async function restartStuckDeletes(deps: SweepDeps, opts: SweepOptions, now: Date, report: SweepReport): Promise<void> {
  const deleting = await deps.records.backups.find({ status: 'deleting', deletedBefore: new Date(now.getTime() - opts.deletingGraceMs) }, { take: 1000 });
  const stuck = [];
  for (const b of deleting) {
    if (!(await deps.records.jobs.findFirst({ backupId: b.id, type: 'cleanup', status: ['queued', 'running'] }))) stuck.push(b);
  }
  if (!stuck.length) return;
  const results = await softDeleteBackups(
    deps.records,
    deps.queues,
    stuck.map((b) => b.id),
    'system',
    { reason: 'sweep: cleanup restarted' },
  );
  for (const r of results) {
    if (r.ok && r.cleanupJob) push(report.cleanupsRestarted, r.id);
    else if (!r.ok) push(report.problems, `restarting the cleanup of ${r.id}: ${r.error.message}`);
  }
}

async function sweepStorage(deps: SweepDeps, opts: SweepOptions, clock: () => Date, report: SweepReport): Promise<void> {
  const { records, store } = deps;
  // One listing serves both the missing-object check and the orphan search.
  const listedAt = new Date();
  const objects = new Map<string, { size: number; lastModified: Date }>();
  for await (const o of store.listAll('')) objects.set(o.key, { size: o.size, lastModified: o.lastModified });

  // 3. completed backups without their objects: completed before the listing began and longer ago
  // than the grace period, and re-checked by HEAD before anything changes.
  const completedBefore = new Date(Math.min(listedAt.getTime(), clock().getTime() - opts.missingGraceMs));
  let cursor: string | undefined;
  for (;;) {
    const rows = await records.backups.find({ status: 'completed', completedBefore }, { after: cursor, take: BATCH });
    for (const b of rows) {
      const missing = !objects.has(b.storageKey) ? 'archive' : !objects.has(b.indexKey) ? 'index' : null;
      if (!missing) continue;
      if (await store.head(missing === 'archive' ? b.storageKey : b.indexKey)) continue;
      const changed = await records.backups.transition(b.id, ['completed'], 'failed', { error: `${missing} missing` });
      if (changed) {
        push(report.archiveMissing, { backupId: b.id, missing });
        deps.logger.warn({ backupId: b.id, missing }, `sweep: completed backup has no ${missing}; marked failed`);
      }
    }
    if (rows.length < BATCH) break;
    cursor = rows[rows.length - 1]!.id;
  }

  // Status of every backup that owns a listed object or upload.
  const uploads = await store.listIncompleteUploads('');
  const backupIds = new Set<string>();
  for (const key of [...objects.keys(), ...uploads.map((u) => u.key)]) {
    const owner = parseBackupKey(key);
    if (owner) backupIds.add(owner.backupId);
  }
  const status = new Map<string, BackupStatus>();
  const idList = [...backupIds];
  for (let i = 0; i < idList.length; i += BATCH) {
    const rows = await records.backups.find({ ids: idList.slice(i, i + BATCH) });
    for (const r of rows) status.set(r.id, r.status);
  }

  // 4. incomplete uploads: none of a backup being produced is touched, whatever its age.
  const now = clock();
  for (const u of uploads) {
    const owner = parseBackupKey(u.key);
    const state = owner ? status.get(owner.backupId) : undefined;
    if (state === 'pending' || state === 'running') continue;
    if (now.getTime() - u.initiated.getTime() < opts.uploadGraceMs) continue;
    try {
      await store.abortIncompleteUpload(u.key, u.uploadId);
      push(report.abortedUploads, { key: u.key, uploadId: u.uploadId });
    } catch (err) {
      push(report.problems, `aborting upload ${u.uploadId} of ${u.key}: ${(err as Error).message}`);
    }
  }

  // 5. orphan objects.
  const referred = new Map<string, boolean>();
  const hasLiveReferrers = async (backupId: string): Promise<boolean> => {
    let live = referred.get(backupId);
    if (live === undefined) referred.set(backupId, (live = (await records.backups.liveReferrers(backupId)).length > 0));
    return live;
  };
  // A completed backup's manifest without any row: the database lost the instance's records. Its
  // objects (and those of its instance's other row-less backups: archives it reads from) are what a
  // catalog rebuild recreates the rows from, never orphans.
  const unrecorded = new Set<string>();
  for (const key of objects.keys()) {
    const owner = parseBackupKey(key);
    if (owner && !status.has(owner.backupId) && key === manifestKey(owner.instanceId, owner.backupId)) {
      unrecorded.add(owner.instanceId);
      push(report.unrecordedBackups, owner.backupId);
    }
  }
  if (unrecorded.size)
    deps.logger.warn({ instances: [...unrecorded].slice(0, LIST_CAP) }, 'sweep: backups in the bucket have no records; run cairn catalog rebuild');
  const doomed: string[] = [];
  let doomedBytes = 0;
  for (const [key, info] of objects) {
    const owner = parseBackupKey(key);
    if (!owner) {
      report.foreignKeys++;
      continue;
    }
    const state = status.get(owner.backupId);
    if (state === undefined && unrecorded.has(owner.instanceId)) continue;
    if (state !== undefined && !DEAD_BACKUP.includes(state)) continue;
    // A dead backup's archive that a live incremental still reads from is not an orphan. No lock
    // needed: a dead backup never gains a referrer (references only spread from a live parent).
    if (state !== undefined && (await hasLiveReferrers(owner.backupId))) continue;
    if (now.getTime() - info.lastModified.getTime() < opts.orphanGraceMs) {
      report.youngOrphans++;
      continue;
    }
    doomed.push(key);
    doomedBytes += info.size;
  }
  if (doomed.length) {
    const { deleted, failed } = await store.deleteMany(doomed);
    report.deletedObjects.count = deleted.length;
    report.deletedObjects.bytes = doomedBytes;
    for (const key of deleted) push(report.deletedObjects.keys, key);
    for (const f of failed) push(report.problems, `deleting ${f.key}: ${f.message}`);
    deps.logger.info({ deleted: deleted.length, failed: failed.length }, 'sweep: orphan objects deleted');
  }
}

/** Counts of a report, for logs and the Job's result summary. */
export function summarise(report: SweepReport) {
  return {
    interruptedJobs: report.interruptedJobs.length,
    requeuedJobs: report.requeuedJobs.length,
    failedBackups: report.failedBackups.length,
    cleanupsRestarted: report.cleanupsRestarted.length,
    archiveMissing: report.archiveMissing.length,
    abortedUploads: report.abortedUploads.length,
    deletedObjects: report.deletedObjects.count,
    youngOrphans: report.youngOrphans,
    foreignKeys: report.foreignKeys,
    thawedHookWindows: report.thawedHookWindows.length,
    unrecordedBackups: report.unrecordedBackups.length,
    problems: report.problems.length,
  };
}
