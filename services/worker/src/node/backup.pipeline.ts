import { PassThrough } from 'node:stream';
import { CairnError, backupPrefix, enqueueRetention, transitionBackup, transitionJob } from '@cairn/core';
import { encodeIndex, packArchive } from '@cairn/core/archive/index.ts';
import { classify, recordFailure } from './job-outcome.ts';
import type { JobRun, NodeContext } from './node-context.ts';
import { isEmptyDir, resolveVolumeDir } from './volume-dirs.ts';

const CONTENT_TYPE = { zstd: 'application/zstd', gzip: 'application/gzip', none: 'application/x-tar' } as const;

export interface BackupOutcome {
  status: 'completed' | 'cancelled' | 'skipped';
  backupId: string;
  warnings?: number;
}

/**
 * The backup pipeline of SPEC §6 for one Job: resolve volumes, pack them into a block-compressed
 * archive streamed straight into a multipart upload, upload the index, then conditionally mark
 * the Backup completed. Safe to run again after a crash: the Backup row is reused and a previous
 * attempt's incomplete upload is aborted first.
 */
export async function runBackup(ctx: NodeContext, run: JobRun): Promise<BackupOutcome> {
  const job = await ctx.prisma.job.findUnique({
    where: { id: run.jobId },
    include: { backup: { include: { instance: { include: { volumes: true } } } } },
  });
  if (!job?.backup) throw new CairnError('not-found', `job ${run.jobId} has no backup record`);
  const backup = job.backup;
  if (job.status !== 'queued' && job.status !== 'running') return { status: 'skipped', backupId: backup.id };
  if (backup.status !== 'pending' && backup.status !== 'running') {
    await transitionJob(ctx.prisma, job.id, ['queued', 'running'], 'cancelled', { error: `backup is ${backup.status}` });
    return { status: 'cancelled', backupId: backup.id };
  }
  const now = new Date();
  await transitionBackup(ctx.prisma, backup.id, ['pending', 'running'], 'running', { startedAt: backup.startedAt ?? now, error: null });
  await transitionJob(ctx.prisma, job.id, ['queued', 'running'], 'running', { startedAt: job.startedAt ?? now, attempts: run.attempt, nodeId: ctx.nodeId, error: null });

  let indexUploaded = false;
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

    // The pack and the upload run together; either failing stops the other.
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
    const [result, stored] = await Promise.all([packed, upload]);
    if (stored.size !== result.storedBytes) {
      throw new CairnError('archive-corrupt', `stored object is ${stored.size} bytes, the archive was ${result.storedBytes}`, { permanent: false });
    }

    run.progress('uploading-index');
    await ctx.store.put(backup.indexKey, encodeIndex(result.index), { signal: run.signal, contentType: 'application/gzip' });
    indexUploaded = true;

    const allWarnings = [...warnings, ...result.warnings];
    const completed = await transitionBackup(ctx.prisma, backup.id, ['running'], 'completed', {
      completedAt: new Date(),
      sizeBytes: BigInt(result.storedBytes),
      logicalBytes: BigInt(result.logicalBytes),
      fileCount: result.fileCount,
      sha256: result.sha256,
      warnings: allWarnings as object[],
      error: null,
    });
    if (!completed) {
      // Deleted or cancelled while running: never flip it back; remove what was uploaded.
      await ctx.store.deleteMany([backup.storageKey, backup.indexKey]);
      const current = await ctx.prisma.backup.findUnique({ where: { id: backup.id }, select: { status: true } });
      await transitionJob(ctx.prisma, job.id, ['running'], 'cancelled', { error: `backup became ${current?.status ?? 'missing'} while running; its objects were removed` });
      return { status: 'cancelled', backupId: backup.id };
    }
    run.progress('done');
    await transitionJob(ctx.prisma, job.id, ['running'], 'succeeded', {
      result: { backupId: backup.id, storedBytes: result.storedBytes, logicalBytes: result.logicalBytes, fileCount: result.fileCount, warnings: allWarnings.length },
    });
    if (backup.trigger === 'schedule' && backup.scheduleId) {
      // Best effort: the periodic retention run catches up if this enqueue fails.
      await enqueueRetention(ctx.queues, backup.scheduleId).catch((err: Error) => run.log.warn({ err: err.message }, 'could not enqueue retention'));
    }
    return { status: 'completed', backupId: backup.id, warnings: allWarnings.length };
  } catch (err) {
    const failure = classify(err, run);
    // The multipart upload was aborted by put(); an index from this attempt must not outlive it.
    if (indexUploaded || failure.kind !== 'retry') await ctx.store.deleteMany([backup.storageKey, backup.indexKey]).catch(() => {});
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

/** Aborts incomplete multipart uploads under a backup's prefix left by an earlier attempt. */
async function abortLeftoverUploads(ctx: NodeContext, prefix: string): Promise<void> {
  for (const upload of await ctx.store.listIncompleteUploads(prefix)) {
    await ctx.store.abortIncompleteUpload(upload.key, upload.uploadId);
    ctx.logger.info({ key: upload.key }, 'aborted an incomplete upload left by an earlier attempt');
  }
}
