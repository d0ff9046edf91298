import { AbortMultipartUploadCommand, CreateMultipartUploadCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveKey, indexKey, newId, nodeQueueName, type BackupStatus, type JobStatus } from '@cairn/core';
import { startScheduleStack, waitFor, type ScheduleStack } from './support/schedule-stack.ts';

const HOUR = 3600_000;

/**
 * The orphan sweep against real Postgres, Redis and S3: each kind of orphan is planted next to
 * live data; the sweep (run by a control worker, as in production) cleans the first and leaves
 * the second alone.
 */
describe('orphan sweep', () => {
  let stack: ScheduleStack;
  let s3: S3Client;
  let instanceId: string;
  let onlineNode: string;
  let offlineNode: string;

  beforeAll(async () => {
    stack = await startScheduleStack();
    s3 = new S3Client({
      endpoint: stack.config.S3_ENDPOINT,
      region: stack.config.S3_REGION,
      forcePathStyle: true,
      credentials: { accessKeyId: stack.config.S3_ACCESS_KEY_ID, secretAccessKey: stack.config.S3_SECRET_ACCESS_KEY },
    });
    ({ instanceId, nodeId: onlineNode } = await stack.seedInstance());
    offlineNode = `node-offline-${newId().toLowerCase()}`;
    await stack.prisma.node.create({ data: { id: offlineNode, volumeRoots: ['/srv'], lastHeartbeatAt: new Date(Date.now() - HOUR) } });
  });
  afterAll(async () => {
    s3?.destroy();
    await stack?.close();
  });

  const put = (key: string, text = 'x') => stack.store.put(key, Buffer.from(text));
  const exists = async (key: string) => (await stack.store.head(key)) !== null;
  const fullKey = (key: string) => `${stack.config.S3_PREFIX}/${key}`;
  async function startUpload(key: string): Promise<string> {
    const out = await s3.send(new CreateMultipartUploadCommand({ Bucket: stack.config.S3_BUCKET, Key: fullKey(key) }));
    return out.UploadId!;
  }
  async function uploadIds(): Promise<string[]> {
    return (await stack.store.listIncompleteUploads('')).map((u) => u.uploadId);
  }

  /** A Backup row (and its objects), as the pipeline would leave it in `status`. */
  async function backup(status: BackupStatus, options: { objects?: ('archive' | 'index')[]; completedAgoMs?: number; deletedAgoMs?: number } = {}) {
    const id = newId();
    const row = await stack.prisma.backup.create({
      data: {
        id,
        instanceId,
        status,
        trigger: 'manual',
        volumes: ['data'],
        storageKey: archiveKey(instanceId, id, 'gzip'),
        indexKey: indexKey(instanceId, id),
        compression: 'gzip',
        requestedBy: 'test',
        ...(status === 'completed' ? { completedAt: new Date(Date.now() - (options.completedAgoMs ?? 2 * HOUR)) } : {}),
        ...(status === 'deleting' || status === 'deleted' ? { deletedAt: new Date(Date.now() - (options.deletedAgoMs ?? 0)) } : {}),
      },
    });
    for (const o of options.objects ?? ['archive', 'index']) await put(o === 'archive' ? row.storageKey : row.indexKey, `${o} of ${id}`);
    return row;
  }

  async function job(status: JobStatus, options: { nodeId: string; backupId?: string; createdAgoMs: number; enqueue?: boolean }) {
    const id = newId();
    await stack.prisma.job.create({
      data: {
        id,
        type: 'backup',
        status,
        instanceId,
        backupId: options.backupId ?? null,
        nodeId: options.nodeId,
        queue: nodeQueueName(options.nodeId),
        requestedBy: 'test',
        createdAt: new Date(Date.now() - options.createdAgoMs),
      },
    });
    if (options.enqueue) await stack.queues.enqueueNode(options.nodeId, 'backup', { jobId: id });
    return id;
  }

  const statusOf = async (id: string) => (await stack.prisma.backup.findUnique({ where: { id } }))?.status;
  const jobOf = (id: string) => stack.prisma.job.findUnique({ where: { id } });

  async function sweepWith(options: Parameters<ScheduleStack['startControl']>[0]) {
    const control = await stack.startControl(options);
    try {
      const before = await stack.prisma.job.count({ where: { type: 'sweep' } });
      await stack.queues.enqueueControl('sweep', {}, `sweep-test-${newId()}`);
      const record = await waitFor(
        'the sweep record',
        async () =>
          (await stack.prisma.job.count({ where: { type: 'sweep', status: { in: ['succeeded', 'failed'] } } })) > before &&
          stack.prisma.job.findFirst({ where: { type: 'sweep' }, orderBy: { id: 'desc' } }),
        30_000,
      );
      return { record, control };
    } catch (err) {
      await control.close();
      throw err;
    }
  }

  it('cleans every kind of orphan and leaves live data untouched', async () => {
    // Live: a completed backup with both objects, a running one (its job waiting in the queue) with an upload in progress.
    const live = await backup('completed');
    const running = await backup('running', { objects: ['index'] });
    const runningJob = await job('running', { nodeId: onlineNode, backupId: running.id, createdAgoMs: 2 * HOUR, enqueue: true });
    const runningUpload = await startUpload(running.storageKey);
    // A backup being deleted right now, its cleanup job just created: the cleanup's business, not the sweep's.
    const deleting = await backup('deleting');
    await stack.prisma.job.create({
      data: { id: newId(), type: 'cleanup', status: 'queued', instanceId, backupId: deleting.id, queue: 'control', requestedBy: 'test' },
    });
    // A job created moments ago whose enqueue may still be under way.
    const youngJob = await job('queued', { nodeId: onlineNode, createdAgoMs: 1000 });
    const foreign = 'notes/readme.txt';
    await put(foreign);

    // Orphans.
    const noArchive = await backup('completed', { objects: ['index'] });
    const noIndex = await backup('completed', { objects: ['archive'] });
    const justCompleted = await backup('completed', { objects: ['index'], completedAgoMs: 60_000 });
    const lost = await backup('running', { objects: [] });
    const lostJob = await job('running', { nodeId: onlineNode, backupId: lost.id, createdAgoMs: HOUR });
    const stranded = await backup('pending', { objects: [] });
    const strandedJob = await job('queued', { nodeId: offlineNode, backupId: stranded.id, createdAgoMs: HOUR, enqueue: true });
    const stuck = await backup('deleting', { deletedAgoMs: HOUR });
    const noRowId = newId();
    const noRowKeys = [archiveKey(instanceId, noRowId, 'gzip'), indexKey(instanceId, noRowId)];
    for (const k of noRowKeys) await put(k);
    const deadRows = [await backup('deleted'), await backup('failed'), await backup('cancelled')];
    const orphanUpload = await startUpload(archiveKey(instanceId, newId(), 'zstd'));

    // First sweep, real clock: the stale records are dealt with; young orphans wait out their grace.
    const first = await sweepWith({});
    try {
      expect(first.record.status).toBe('succeeded');
      expect(first.record).toMatchObject({ requestedBy: 'system', params: { kind: 'orphans' } });
      const summary = (first.record.result as { summary: Record<string, number> }).summary;
      expect(summary).toMatchObject({
        interruptedJobs: 1,
        requeuedJobs: 1,
        failedBackups: 1,
        cleanupsRestarted: 1,
        archiveMissing: 2,
        abortedUploads: 0,
        deletedObjects: 0,
        foreignKeys: 1,
      });
      // Young orphans: the no-row objects, the dead rows' objects, the leftovers of the two backups just
      // marked failed, and (when the restarted cleanup marked it deleted before the sweep read the
      // statuses) the stuck backup's two objects.
      const young = noRowKeys.length + 2 * deadRows.length + 2;
      expect([young, young + 2]).toContain(summary.youngOrphans);

      // A backup lost from the queue is safe to run again (issue 16): back in its node's queue.
      expect(await jobOf(lostJob)).toMatchObject({ status: 'queued', error: expect.stringMatching(/lost from the queue.*; enqueued again$/) });
      expect(await (await stack.queues.nodeQueue(onlineNode).getJob(lostJob))?.getState()).toBe('waiting');
      expect(await statusOf(lost.id)).toBe('running');
      expect(await jobOf(strandedJob)).toMatchObject({ status: 'interrupted', error: expect.stringMatching(new RegExp(`node ${offlineNode} is offline`)) });
      expect(await statusOf(stranded.id)).toBe('failed');
      expect(await stack.queues.nodeQueue(offlineNode).getJob(strandedJob)).toBeUndefined(); // no longer waiting for the dead node
      expect(await stack.prisma.backup.findUnique({ where: { id: noArchive.id } })).toMatchObject({ status: 'failed', error: 'archive missing' });
      expect(await stack.prisma.backup.findUnique({ where: { id: noIndex.id } })).toMatchObject({ status: 'failed', error: 'index missing' });
      // The stuck delete got a new cleanup job, which the control worker ran.
      await waitFor('the restarted cleanup', async () => (await statusOf(stuck.id)) === 'deleted', 15_000);
      expect(await exists(stuck.storageKey)).toBe(false);

      // Untouched so far.
      expect(await statusOf(justCompleted.id)).toBe('completed');
      expect(await jobOf(youngJob)).toMatchObject({ status: 'queued' });
      for (const k of noRowKeys) expect(await exists(k)).toBe(true);
      expect(await uploadIds()).toEqual(expect.arrayContaining([orphanUpload, runningUpload]));
    } finally {
      await first.control.close();
    }

    // Second sweep a day later (injected clock): the orphans' grace periods are over.
    const dayLater = () => new Date(Date.now() + 25 * HOUR);
    const second = await sweepWith({
      clock: dayLater,
      sweep: { nodeOfflineMs: 48 * HOUR, lostJobGraceMs: 48 * HOUR, deletingGraceMs: 48 * HOUR, missingGraceMs: 48 * HOUR },
    });
    try {
      const result = second.record.result as { summary: Record<string, number>; abortedUploads: { uploadId: string }[]; deletedObjects: { keys: string[] } };
      expect(second.record.status).toBe('succeeded');
      expect(result.summary).toMatchObject({ interruptedJobs: 0, abortedUploads: 1, foreignKeys: 1, youngOrphans: 0 });
      expect(result.abortedUploads.map((u) => u.uploadId)).toEqual([orphanUpload]);
      const expectedGone = [...noRowKeys, ...deadRows.flatMap((b) => [b.storageKey, b.indexKey]), noArchive.indexKey, noIndex.storageKey];
      expect([...result.deletedObjects.keys].sort()).toEqual([...expectedGone].sort());
      for (const k of expectedGone) expect(await exists(k)).toBe(false);
      expect(await uploadIds()).toEqual([runningUpload]);

      // Live data, untouched by both sweeps.
      expect(await statusOf(live.id)).toBe('completed');
      expect(await exists(live.storageKey)).toBe(true);
      expect(await exists(live.indexKey)).toBe(true);
      expect(await statusOf(running.id)).toBe('running');
      expect(await jobOf(runningJob)).toMatchObject({ status: 'running' });
      expect(await exists(running.indexKey)).toBe(true);
      expect(await statusOf(deleting.id)).toBe('deleting');
      expect(await exists(deleting.storageKey)).toBe(true);
      expect(await exists(foreign)).toBe(true);
      expect(await statusOf(justCompleted.id)).toBe('completed');
    } finally {
      await second.control.close();
      await s3
        .send(new AbortMultipartUploadCommand({ Bucket: stack.config.S3_BUCKET, Key: fullKey(running.storageKey), UploadId: runningUpload }))
        .catch(() => {});
    }
  });
});
