import { PassThrough } from 'node:stream';
import { CairnError, backupPrefix, enqueueRetention, transitionBackup, transitionJob } from '@cairn/core';
import { packArchive } from '@cairn/core/archive/index.ts';
import { classify, recordFailure } from './job-outcome.ts';
import type { JobRun, NodeContext } from './node-context.ts';
import { isEmptyDir, resolveVolumeDir } from './volume-dirs.ts';

const CONTENT_TYPE = { zstd: 'application/zstd', gzip: 'application/gzip', none: 'application/x-tar' } as const;

export interface BackupOutcome {
  status: 'completed' | 'cancelled' | 'skipped';
  backupId: string;
  warnings?: number;
}

/** At most this many warnings are written to the Backup row; the index keeps all of them. */
export const ROW_WARNINGS_MAX = 1000;

/**
 * The backup pipeline of SPEC §6 for one Job: resolve volumes, pack them into a block-compressed
 * archive streamed straight into a multipart upload, upload the index, then conditionally mark
 * the Backup completed. Safe to run again after a crash: the Backup row is reused and a previous
 * attempt's incomplete upload is aborted first. Once the Backup is `completed` its objects are
 * never removed by this pipeline, whatever fails afterwards.
 */
export async function runBackup(ctx: NodeContext, run: JobRun): Promise<BackupOutcome> {
  const job = await ctx.prisma.job.findUnique({
    where: { id: run.jobId },
    include: { backup: { include: { instance: { include: { volumes: true } } } } },
  });
  if (!job?.backup) throw new CairnError('not-found', `job ${run.jobId} has no backup record`);
  const backup = job.backup;
  if (job.status !== 'queued' && job.status !== 'running') return { status: 'skipped', backupId: backup.id };
  if (backup.status === 'completed') {
    // An earlier run completed the backup and stopped before recording it on the Job.
    await transitionJob(ctx.prisma, job.id, ['queued', 'running'], 'succeeded', { result: resultOf(backup) });
    return { status: 'completed', backupId: backup.id };
  }
  if (backup.status !== 'pending' && backup.status !== 'running') {
    await transitionJob(ctx.prisma, job.id, ['queued', 'running'], 'cancelled', { error: `backup is ${backup.status}` });
    return { status: 'cancelled', backupId: backup.id };
  }
  const now = new Date();
  if (!(await transitionBackup(ctx.prisma, backup.id, ['pending', 'running'], 'running', { startedAt: backup.startedAt ?? now, error: null }))) {
    // Deleted, cancelled or completed between the two reads: start again from the current state.
    const current = await ctx.prisma.backup.findUnique({ where: { id: backup.id }, select: { status: true } });
    await transitionJob(ctx.prisma, job.id, ['queued', 'running'], 'cancelled', { error: `backup is ${current?.status ?? 'missing'}` });
    return { status: 'cancelled', backupId: backup.id };
  }
  if (
    !(await transitionJob(ctx.prisma, job.id, ['queued', 'running'], 'running', {
      startedAt: job.startedAt ?? now,
      attempts: run.attempt,
      nodeId: ctx.nodeId,
      error: null,
    }))
  ) {
    // The Job was cancelled or interrupted meanwhile; whoever did it also settled the Backup.
    return { status: 'skipped', backupId: backup.id };
  }

  let indexUploaded = false;
  let committed = false;
  try {
    run.progress('preparing');
    const chosen = backup.volumes.length ? backup.instance.volumes.filter((v) => backup.volumes.includes(v.name)) : backup.instance.volumes;
    const resolved = await Promise.all(chosen.map((v) => resolveVolumeDir(v, ctx.volumeRoots)));
    // Volume-level notes join the archive's per-entry warnings on the Backup row.
    const warnings: Array<{ path: string; code: string; message: string }> = [];
    const sources = [];
    for (const v of resolved) {
      if (v.status === 'skipped') warnings.push({ path: v.name, code: 'volume-skipped', message: v.reason });
      else if (await isEmptyDir(v.dir)) warnings.push({ path: v.name, code: 'volume-empty', message: `volume ${v.name} has no data` });
      else sources.push({ name: v.name, dir: v.dir, excludes: v.excludes });
    }
    if (sources.length === 0) {
      throw new CairnError('no-data', `nothing to back up: ${warnings.map((w) => w.message).join('; ') || 'the instance has no volumes'}`);
    }

    await abortLeftoverUploads(ctx, backupPrefix(backup.instanceId, backup.id));

    // The pack and the upload run together; either failing stops the other, and both have
    // settled before anything else happens.
    const stop = new AbortController();
    const signal = AbortSignal.any([run.signal, stop.signal]);
    const body = new PassThrough({ highWaterMark: 1 << 20 });
    const upload = ctx.store.put(backup.storageKey, body, { signal, contentType: CONTENT_TYPE[backup.compression as keyof typeof CONTENT_TYPE] });
    upload.catch((err) => stop.abort(err));
    const packed = packArchive(
      {
        volumes: sources,
        codec: backup.compression as 'zstd' | 'gzip' | 'none',
        level: ctx.config.COMPRESSION_LEVEL,
        blockSize: ctx.config.ARCHIVE_BLOCK_SIZE,
        signal,
        meta: { backupId: backup.id, instanceId: backup.instanceId, nodeId: ctx.nodeId },
        onProgress: (p) => run.progress('archiving', p),
      },
      body,
    ).then(
      (result) => {
        body.end();
        return result;
      },
      (err) => {
        body.destroy(err instanceof Error ? err : new Error(String(err)));
        stop.abort(err);
        throw err;
      },
    );
    const [packOutcome, uploadOutcome] = await Promise.allSettled([packed, upload]);
    if (packOutcome.status === 'rejected' || uploadOutcome.status === 'rejected') {
      if (packOutcome.status === 'fulfilled') packOutcome.value.close();
      throw rootCause(packOutcome, uploadOutcome);
    }
    const result = packOutcome.value;
    const stored = uploadOutcome.value;
    if (stored.size !== result.storedBytes) {
      result.close();
      throw new CairnError('archive-corrupt', `stored object is ${stored.size} bytes, the archive was ${result.storedBytes}`, { permanent: false });
    }

    run.progress('uploading-index');
    indexUploaded = true; // from here on an index of this attempt may exist
    // Streamed from the pack's temporary file: memory does not grow with the number of files.
    try {
      await ctx.store.put(backup.indexKey, result.indexStream(), { signal: run.signal, contentType: 'application/gzip' });
    } finally {
      result.close();
    }

    const allWarnings = [...warnings, ...result.warnings];
    const rowWarnings =
      allWarnings.length > ROW_WARNINGS_MAX
        ? [
            ...allWarnings.slice(0, ROW_WARNINGS_MAX),
            { path: '', code: 'warnings-truncated', message: `${allWarnings.length - ROW_WARNINGS_MAX} more warnings are listed in the backup's index` },
          ]
        : allWarnings;
    const completed = await transitionBackup(ctx.prisma, backup.id, ['running'], 'completed', {
      completedAt: new Date(),
      sizeBytes: BigInt(result.storedBytes),
      logicalBytes: BigInt(result.logicalBytes),
      fileCount: result.fileCount,
      sha256: result.sha256,
      warnings: rowWarnings as object[],
      error: null,
    });
    if (!completed) {
      const current = await ctx.prisma.backup.findUnique({ where: { id: backup.id } });
      if (current?.status === 'completed') {
        // Another run of this job (a stalled copy) completed it: the row describes its objects.
        committed = true;
        await transitionJob(ctx.prisma, job.id, ['queued', 'running'], 'succeeded', { result: resultOf(current) });
        return { status: 'completed', backupId: backup.id };
      }
      // Deleted or cancelled while running: never flip it back; remove what was uploaded.
      await ctx.store.deleteMany([backup.storageKey, backup.indexKey]);
      await transitionJob(ctx.prisma, job.id, ['running'], 'cancelled', {
        error: `backup became ${current?.status ?? 'missing'} while running; its objects were removed`,
      });
      return { status: 'cancelled', backupId: backup.id };
    }
    committed = true;
    run.progress('done');
    await transitionJob(ctx.prisma, job.id, ['queued', 'running'], 'succeeded', {
      result: {
        backupId: backup.id,
        storedBytes: result.storedBytes,
        logicalBytes: result.logicalBytes,
        fileCount: result.fileCount,
        warnings: allWarnings.length,
      },
    });
    if (backup.trigger === 'schedule' && backup.scheduleId) {
      // Best effort: the periodic retention run catches up if this enqueue fails.
      await enqueueRetention(ctx.queues, backup.scheduleId).catch((err: Error) => run.log.warn({ err: err.message }, 'could not enqueue retention'));
    }
    return { status: 'completed', backupId: backup.id, warnings: allWarnings.length };
  } catch (err) {
    if (committed) {
      // The Backup is completed and its objects are in place: they stay, whatever failed after
      // (a cancel that came too late included). Only the Job row is behind: a retry of this job
      // finds the Backup completed and records the success.
      run.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'backup completed but its job could not be recorded');
      throw new CairnError(
        'unavailable',
        `backup ${backup.id} completed, recording it on the job failed: ${err instanceof Error ? err.message : String(err)}`,
        { permanent: false, cause: err },
      );
    }
    const failure = classify(err, run);
    // A lost run leaves the objects and the records to the run that owns the job now.
    if (failure.kind === 'lost') throw await recordFailure(ctx.prisma, run, failure);
    // The multipart upload was aborted by put(); an index from this attempt must not outlive it.
    if (indexUploaded || failure.kind !== 'retry') await removeObjectsUnlessCompleted(ctx, backup);
    if (failure.kind === 'retry') {
      await transitionBackup(ctx.prisma, backup.id, ['running'], 'pending', { error: failure.error.message }).catch(() => {});
    } else {
      await transitionBackup(ctx.prisma, backup.id, ['pending', 'running'], failure.kind === 'cancelled' ? 'cancelled' : 'failed', {
        error: failure.error.message,
        completedAt: new Date(),
      }).catch(() => {});
    }
    throw await recordFailure(ctx.prisma, run, failure);
  }
}

function resultOf(b: { id: string; sizeBytes: bigint | null; logicalBytes: bigint | null; fileCount: number | null; warnings: unknown }) {
  return {
    backupId: b.id,
    storedBytes: b.sizeBytes === null ? null : Number(b.sizeBytes),
    logicalBytes: b.logicalBytes === null ? null : Number(b.logicalBytes),
    fileCount: b.fileCount,
    warnings: Array.isArray(b.warnings) ? b.warnings.length : 0,
  };
}

/**
 * The error that explains a failed pack-and-upload. A failing upload makes the packer fail too
 * (its output closes), and a failing packer makes put() fail with a cancel or with the packer's
 * own error: so an upload error other than a cancel is the cause, otherwise the packer's.
 */
function rootCause(pack: PromiseSettledResult<unknown>, upload: PromiseSettledResult<unknown>): unknown {
  if (upload.status === 'rejected' && !(upload.reason instanceof CairnError && upload.reason.code === 'cancelled')) return upload.reason;
  return pack.status === 'rejected' ? pack.reason : (upload as PromiseRejectedResult).reason;
}

/**
 * Removes this backup's objects after a failure, unless the Backup is (by now) completed: then
 * they are what its row describes. When its state cannot be read, they stay for the orphan sweep.
 */
async function removeObjectsUnlessCompleted(ctx: NodeContext, backup: { id: string; storageKey: string; indexKey: string }): Promise<void> {
  const current = await ctx.prisma.backup.findUnique({ where: { id: backup.id }, select: { status: true } }).catch(() => null);
  if (!current || current.status === 'completed') return;
  await ctx.store.deleteMany([backup.storageKey, backup.indexKey]).catch(() => {});
}

/** Aborts incomplete multipart uploads under a backup's prefix left by an earlier attempt. */
async function abortLeftoverUploads(ctx: NodeContext, prefix: string): Promise<void> {
  for (const upload of await ctx.store.listIncompleteUploads(prefix)) {
    await ctx.store.abortIncompleteUpload(upload.key, upload.uploadId);
    ctx.logger.info({ key: upload.key }, 'aborted an incomplete upload left by an earlier attempt');
  }
}
