import { CairnError, abortIncompleteUploads, backupPrefix, enqueueRetention, streamInto, type Backup } from '@cairn/core';
import { packArchive, type PackResult } from '@cairn/core/archive/index.ts';
import type { JobRun, JobWork, WorkOutcome } from '../job-lifecycle.ts';
import { writeWithRetry } from '../job-lifecycle.ts';
import type { Failure } from '../job-outcome.ts';
import type { NodeContext } from './node-context.ts';
import { isEmptyDir, resolveVolumeDir } from './volume-dirs.ts';

const CONTENT_TYPE = { zstd: 'application/zstd', gzip: 'application/gzip', none: 'application/x-tar' } as const;

/** At most this many warnings are written to the Backup row; the index keeps all of them. */
export const ROW_WARNINGS_MAX = 1000;

export interface BackupResult {
  backupId: string;
  storedBytes: number | null;
  logicalBytes: number | null;
  fileCount: number | null;
  warnings: number;
}

type Warning = { path: string; code: string; message: string };
type Source = { name: string; dir: string; excludes: string[] };

/**
 * The backup pipeline of SPEC §6 for one Job, as a unit of work of the job lifecycle: resolve
 * volumes, pack them into a block-compressed archive streamed straight into a multipart upload,
 * upload the index, then conditionally mark the Backup completed. Safe to run again after a
 * crash: the Backup row is reused and a previous attempt's incomplete upload is aborted first.
 * Once the Backup is `completed` its objects are never removed by this pipeline.
 */
export class BackupJob implements JobWork<BackupResult> {
  private backup: Backup | undefined;
  /** This run set the Backup `running`: a failure is its to record. */
  private started = false;
  /** An index of this attempt may exist in the store. */
  private indexUploaded = false;

  constructor(private readonly ctx: NodeContext) {}

  async run(run: JobRun): Promise<WorkOutcome<BackupResult>> {
    const { records } = this.ctx;
    const backup = run.job?.backupId ? await records.backups.get(run.job.backupId) : null;
    if (!backup) throw new CairnError('not-found', `job ${run.jobId} has no backup record`);
    this.backup = backup;
    // An earlier run completed the backup and stopped before recording it on the Job.
    if (backup.status === 'completed') return succeeded(resultOf(backup));
    if (backup.status !== 'pending' && backup.status !== 'running') return { status: 'cancelled', reason: `backup is ${backup.status}` };
    if (!(await records.backups.transition(backup.id, ['pending', 'running'], 'running', { startedAt: backup.startedAt ?? new Date(), error: null }))) {
      // Deleted, cancelled or completed between the two reads.
      const current = await records.backups.get(backup.id);
      return { status: 'cancelled', reason: `backup is ${current?.status ?? 'missing'}` };
    }
    this.started = true;

    run.progress('preparing');
    const { sources, warnings } = await this.resolveSources(backup);
    for (const upload of await abortIncompleteUploads(this.ctx.store, backupPrefix(backup.instanceId, backup.id))) {
      run.log.info({ key: upload.key }, 'aborted an incomplete upload left by an earlier attempt');
    }
    const packed = await this.packAndUpload(backup, sources, run);

    run.progress('uploading-index');
    this.indexUploaded = true;
    // Streamed from the pack's temporary file: memory does not grow with the number of files.
    try {
      await this.ctx.store.put(backup.indexKey, packed.indexStream(), { signal: run.signal, contentType: 'application/gzip' });
    } finally {
      packed.close();
    }

    const allWarnings = [...warnings, ...packed.warnings];
    const completed = await records.backups.transition(backup.id, ['running'], 'completed', {
      completedAt: new Date(),
      sizeBytes: BigInt(packed.storedBytes),
      logicalBytes: BigInt(packed.logicalBytes),
      fileCount: packed.fileCount,
      sha256: packed.sha256,
      warnings: rowWarnings(allWarnings),
      error: null,
    });
    if (!completed) return this.lostRace(backup);
    this.started = false; // completed: from here on nothing of it is undone
    run.progress('done');
    if (backup.trigger === 'schedule' && backup.scheduleId) {
      // Best effort: the periodic retention run catches up if this enqueue fails.
      await enqueueRetention(this.ctx.queues, backup.scheduleId).catch((err: Error) => run.log.warn({ err: err.message }, 'could not enqueue retention'));
    }
    return succeeded({
      backupId: backup.id,
      storedBytes: packed.storedBytes,
      logicalBytes: packed.logicalBytes,
      fileCount: packed.fileCount,
      warnings: allWarnings.length,
    });
  }

  /**
   * After a failure: the multipart upload was aborted by put(); an index of this attempt must not
   * outlive it. The Backup goes back to `pending` for a retry, else ends `failed`/`cancelled`.
   */
  async onFailure(failure: Failure, run: JobRun): Promise<undefined> {
    const backup = this.backup;
    if (!backup || !this.started) return;
    const { records } = this.ctx;
    if (this.indexUploaded || failure.kind !== 'retry') await this.removeObjectsUnlessCompleted(backup, run);
    const message = failure.error.message;
    await writeWithRetry(
      `backup ${backup.id} after a failure`,
      () =>
        failure.kind === 'retry'
          ? records.backups.transition(backup.id, ['running'], 'pending', { error: message })
          : records.backups.transition(backup.id, ['pending', 'running'], failure.kind === 'cancelled' ? 'cancelled' : 'failed', {
              error: message,
              completedAt: new Date(),
            }),
      run.log,
    );
  }

  /** The chosen volumes that have data; volume-level notes (skipped, empty) become warnings. */
  private async resolveSources(backup: Backup): Promise<{ sources: Source[]; warnings: Warning[] }> {
    const instance = await this.ctx.records.instances.get(backup.instanceId);
    if (!instance) throw new CairnError('not-found', `instance ${backup.instanceId} of backup ${backup.id} no longer exists`);
    const chosen = backup.volumes.length ? instance.volumes.filter((v) => backup.volumes.includes(v.name)) : instance.volumes;
    const resolved = await Promise.all(chosen.map((v) => resolveVolumeDir(v, this.ctx.volumeRoots)));
    const warnings: Warning[] = [];
    const sources: Source[] = [];
    for (const v of resolved) {
      if (v.status === 'skipped') warnings.push({ path: v.name, code: 'volume-skipped', message: v.reason });
      else if (await isEmptyDir(v.dir)) warnings.push({ path: v.name, code: 'volume-empty', message: `volume ${v.name} has no data` });
      else sources.push({ name: v.name, dir: v.dir, excludes: v.excludes });
    }
    if (sources.length === 0) {
      throw new CairnError('no-data', `nothing to back up: ${warnings.map((w) => w.message).join('; ') || 'the instance has no volumes'}`);
    }
    return { sources, warnings };
  }

  /** The archive packed straight into its upload; the two run together and stop together. */
  private async packAndUpload(backup: Backup, sources: Source[], run: JobRun): Promise<PackResult> {
    const codec = backup.compression as keyof typeof CONTENT_TYPE;
    const { produced, consumed } = await streamInto(
      (sink, signal) =>
        packArchive(
          {
            volumes: sources,
            codec,
            level: this.ctx.config.COMPRESSION_LEVEL,
            blockSize: this.ctx.config.ARCHIVE_BLOCK_SIZE,
            signal,
            meta: { backupId: backup.id, instanceId: backup.instanceId, nodeId: this.ctx.nodeId },
            onProgress: (p) => run.progress('archiving', p),
          },
          sink,
        ),
      (source, signal) => this.ctx.store.put(backup.storageKey, source, { signal, contentType: CONTENT_TYPE[codec] }),
      { signal: run.signal, discard: (packed) => packed.close() },
    );
    if (consumed.size !== produced.storedBytes) {
      produced.close();
      throw new CairnError('archive-corrupt', `stored object is ${consumed.size} bytes, the archive was ${produced.storedBytes}`, { permanent: false });
    }
    return produced;
  }

  /** The Backup could not be completed: another run completed it, or it was deleted or cancelled meanwhile. */
  private async lostRace(backup: Backup): Promise<WorkOutcome<BackupResult>> {
    const current = await this.ctx.records.backups.get(backup.id);
    this.started = false;
    // A stalled copy of this job completed it: the row describes its objects.
    if (current?.status === 'completed') return succeeded(resultOf(current));
    // Never flip it back; remove what was uploaded.
    await this.ctx.store.deleteMany([backup.storageKey, backup.indexKey]);
    return { status: 'cancelled', reason: `backup became ${current?.status ?? 'missing'} while running; its objects were removed` };
  }

  /**
   * Removes this backup's objects after a failure, unless the Backup is (by now) completed: then
   * they are what its row describes. When its state cannot be read they stay for the orphan sweep.
   */
  private async removeObjectsUnlessCompleted(backup: Backup, run: JobRun): Promise<void> {
    let status: string | undefined;
    try {
      status = (await this.ctx.records.backups.get(backup.id))?.status;
    } catch (err) {
      run.log.warn({ err: (err as Error).message, backupId: backup.id }, 'backup state unreadable; its objects are left to the orphan sweep');
      return;
    }
    if (!status || status === 'completed') return;
    const { failed } = await this.ctx.store.deleteMany([backup.storageKey, backup.indexKey]);
    if (failed.length) run.log.warn({ backupId: backup.id, failed }, 'objects of a failed backup not removed; the orphan sweep will');
  }
}

function succeeded(result: BackupResult): WorkOutcome<BackupResult> {
  return { status: 'succeeded', result };
}

function resultOf(b: Backup): BackupResult {
  return {
    backupId: b.id,
    storedBytes: b.sizeBytes === null ? null : Number(b.sizeBytes),
    logicalBytes: b.logicalBytes === null ? null : Number(b.logicalBytes),
    fileCount: b.fileCount,
    warnings: Array.isArray(b.warnings) ? b.warnings.length : 0,
  };
}

function rowWarnings(all: Warning[]): Warning[] {
  if (all.length <= ROW_WARNINGS_MAX) return all;
  return [
    ...all.slice(0, ROW_WARNINGS_MAX),
    { path: '', code: 'warnings-truncated', message: `${all.length - ROW_WARNINGS_MAX} more warnings are listed in the backup's index` },
  ];
}
