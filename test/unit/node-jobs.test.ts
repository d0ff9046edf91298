import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { MemoryObjectStore, MemoryRecords, archiveKey, backupPrefix, createLogger, indexKey, manifestKey, newId } from '@cairn/core';
import { JobLifecycle, type JobWork } from '@cairn/worker/job-lifecycle.ts';
import { BackupJob } from '@cairn/worker/node/backup.pipeline.ts';
import type { NodeContext } from '@cairn/worker/node/node-context.ts';
import { RestoreJob } from '@cairn/worker/node/restore.pipeline.ts';

/**
 * The node pipelines as units of work, over in-memory records and object store and a real
 * temporary directory: no Postgres, Redis or S3.
 */
const roots: string[] = [];
afterAll(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

interface Setup {
  records: MemoryRecords;
  store: MemoryObjectStore;
  ctx: NodeContext;
  lifecycle: JobLifecycle;
  volume: string;
  instanceId: string;
  enqueued: string[];
}

async function setUp(files: Record<string, string>): Promise<Setup> {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-unit-')));
  roots.push(root);
  const volume = path.join(root, 'app/data');
  fs.mkdirSync(volume, { recursive: true });
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(volume, rel)), { recursive: true });
    fs.writeFileSync(path.join(volume, rel), content);
  }
  const records = new MemoryRecords();
  records.seedNode({ id: 'n1', volumeRoots: [root] });
  records.seedTenant({ id: 't1', name: 'acme' });
  const instanceId = newId();
  await records.instances.create({
    id: instanceId,
    tenantId: 't1',
    name: 'app',
    nodeId: 'n1',
    volumes: [{ id: newId(), name: 'data', hostPath: volume, excludes: [] }],
  });
  const store = new MemoryObjectStore();
  const logger = createLogger({ level: 'silent', name: 'test' });
  const enqueued: string[] = [];
  const ctx: NodeContext = {
    nodeId: 'n1',
    volumeRoots: [root],
    records,
    store,
    logger,
    config: { COMPRESSION: 'zstd', COMPRESSION_LEVEL: 3, ARCHIVE_BLOCK_SIZE: 1 << 20 },
    queues: { enqueueControl: async (name, payload) => void enqueued.push(`${name}:${payload.scheduleId}`) },
  };
  const lifecycle = new JobLifecycle({ jobs: records.jobs, logger, nodeId: 'n1', settleDelayMs: 1 });
  return { records, store, ctx, lifecycle, volume, instanceId, enqueued };
}

async function queueBackup(s: Setup, extra: { trigger?: 'manual' | 'schedule'; scheduleId?: string } = {}) {
  const backupId = newId();
  const jobId = newId();
  const backup = await s.records.backups.create({
    id: backupId,
    instanceId: s.instanceId,
    trigger: extra.trigger ?? 'manual',
    scheduleId: extra.scheduleId ?? null,
    volumes: ['data'],
    storageKey: archiveKey(s.instanceId, backupId, 'zstd'),
    indexKey: indexKey(s.instanceId, backupId),
    compression: 'zstd',
    requestedBy: 'test',
  });
  await s.records.jobs.create({ id: jobId, type: 'backup', instanceId: s.instanceId, backupId, nodeId: 'n1', queue: 'node.n1', requestedBy: 'test' });
  return { backup, jobId };
}

function run(s: Setup, jobId: string, work: JobWork, attempt = 1) {
  return s.lifecycle.execute({ name: 'job', record: { kind: 'existing', jobId }, attempt, attempts: 3, signal: new AbortController().signal }, work);
}

async function keysOf(store: MemoryObjectStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of store.listAll(prefix)) keys.push(o.key);
  return keys.sort();
}

describe('backup job', () => {
  let s: Setup;
  beforeEach(async () => {
    s = await setUp({ 'a.txt': 'alpha', 'dir/b.txt': 'bravo'.repeat(1000) });
  });

  it('packs the volume into the store, completes the backup and records the job', async () => {
    const { backup, jobId } = await queueBackup(s, { trigger: 'schedule', scheduleId: 'sch-1' });
    const outcome = await run(s, jobId, new BackupJob(s.ctx));
    expect(outcome).toMatchObject({ status: 'succeeded', result: { backupId: backup.id, fileCount: 2, warnings: 0 } });
    const row = await s.records.backups.get(backup.id);
    expect(row).toMatchObject({ status: 'completed', fileCount: 2, error: null });
    expect(row?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(Number(row?.sizeBytes)).toBe((await s.store.head(backup.storageKey))?.size);
    // The manifest (issue 14): what a catalog rebuild recreates the row from.
    expect(await keysOf(s.store, backupPrefix(s.instanceId, backup.id))).toEqual(
      [backup.storageKey, backup.indexKey, manifestKey(s.instanceId, backup.id)].sort(),
    );
    expect((await s.records.jobs.get(jobId))?.status).toBe('succeeded');
    expect(s.enqueued).toEqual(['retention:sch-1']);
  });

  it('fails with no-data when the volume is empty, leaving no objects', async () => {
    fs.rmSync(path.join(s.volume, 'a.txt'));
    fs.rmSync(path.join(s.volume, 'dir'), { recursive: true });
    const { backup, jobId } = await queueBackup(s);
    await expect(run(s, jobId, new BackupJob(s.ctx))).rejects.toThrow(/no-data: nothing to back up: volume data has no data/);
    expect(await s.records.backups.get(backup.id)).toMatchObject({ status: 'failed', error: 'nothing to back up: volume data has no data' });
    expect(await s.records.jobs.get(jobId)).toMatchObject({ status: 'failed', errorCode: 'no-data' });
    expect(await keysOf(s.store, '')).toEqual([]);
  });

  it('a transient upload failure puts backup and job back for a retry, with nothing left in the store', async () => {
    const { backup, jobId } = await queueBackup(s);
    s.store.failNext('put');
    await expect(run(s, jobId, new BackupJob(s.ctx))).rejects.toMatchObject({ permanent: false });
    expect((await s.records.backups.get(backup.id))?.status).toBe('pending');
    expect((await s.records.jobs.get(jobId))?.status).toBe('queued');
    expect(await keysOf(s.store, '')).toEqual([]);
    // The retry completes it.
    await expect(run(s, jobId, new BackupJob(s.ctx), 2)).resolves.toMatchObject({ status: 'succeeded' });
    expect((await s.records.backups.get(backup.id))?.status).toBe('completed');
  });

  it('a backup deleted before it ran ends the job cancelled without touching the store', async () => {
    const { backup, jobId } = await queueBackup(s);
    await s.records.backups.transition(backup.id, ['pending'], 'deleting');
    await expect(run(s, jobId, new BackupJob(s.ctx))).resolves.toMatchObject({ status: 'cancelled' });
    expect(await s.records.jobs.get(jobId)).toMatchObject({ status: 'cancelled', error: 'backup is deleting' });
    expect(await keysOf(s.store, '')).toEqual([]);
  });

  it('a rerun of a job whose backup already completed records the success without packing again', async () => {
    const { backup, jobId } = await queueBackup(s);
    await run(s, jobId, new BackupJob(s.ctx));
    const sha = (await s.records.backups.get(backup.id))?.sha256;
    await s.records.jobs.transition(jobId, ['succeeded'], 'running');
    const put = s.store.put.bind(s.store);
    let puts = 0;
    s.store.put = (...args) => {
      puts++;
      return put(...args);
    };
    await expect(run(s, jobId, new BackupJob(s.ctx), 2)).resolves.toMatchObject({ status: 'succeeded', result: { backupId: backup.id } });
    expect((await s.records.backups.get(backup.id))?.sha256).toBe(sha);
    expect(puts).toBe(0);
    expect((await s.records.jobs.get(jobId))?.status).toBe('succeeded');
  });
});

describe('restore job', () => {
  it('restores a changed volume to exactly the backup', async () => {
    const s = await setUp({ 'a.txt': 'alpha', 'dir/b.txt': 'bravo' });
    const { backup, jobId } = await queueBackup(s);
    await run(s, jobId, new BackupJob(s.ctx));
    fs.writeFileSync(path.join(s.volume, 'a.txt'), 'changed');
    fs.writeFileSync(path.join(s.volume, 'new.txt'), 'not in the backup');
    const restoreId = newId();
    await s.records.jobs.create({
      id: restoreId,
      type: 'restore',
      instanceId: s.instanceId,
      backupId: backup.id,
      targetInstanceId: s.instanceId,
      requestedBy: 'test',
    });
    const outcome = await run(s, restoreId, new RestoreJob(s.ctx));
    expect(outcome).toMatchObject({ status: 'succeeded', result: { filesWritten: 2 } });
    expect(fs.readFileSync(path.join(s.volume, 'a.txt'), 'utf8')).toBe('alpha');
    expect(fs.readFileSync(path.join(s.volume, 'dir/b.txt'), 'utf8')).toBe('bravo');
    expect(fs.existsSync(path.join(s.volume, 'new.txt'))).toBe(false);
    expect(fs.readdirSync(path.dirname(s.volume)).filter((n) => n.startsWith('.cairn-'))).toEqual([]);
    expect((await s.records.jobs.get(restoreId))?.status).toBe('succeeded');
  });

  it('a corrupt archive fails the restore and leaves the target exactly as it was', async () => {
    const s = await setUp({ 'a.txt': 'alpha' });
    const { backup, jobId } = await queueBackup(s);
    await run(s, jobId, new BackupJob(s.ctx));
    const archive = await s.store.get(backup.storageKey);
    const chunks: Buffer[] = [];
    for await (const c of archive) chunks.push(c as Buffer);
    const bytes = Buffer.concat(chunks);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await s.store.put(backup.storageKey, bytes);
    fs.writeFileSync(path.join(s.volume, 'a.txt'), 'live data');
    const restoreId = newId();
    await s.records.jobs.create({ id: restoreId, type: 'restore', instanceId: s.instanceId, backupId: backup.id, requestedBy: 'test' });
    await expect(run(s, restoreId, new RestoreJob(s.ctx))).rejects.toThrow();
    expect(fs.readFileSync(path.join(s.volume, 'a.txt'), 'utf8')).toBe('live data');
    expect(fs.readdirSync(path.dirname(s.volume)).filter((n) => n.startsWith('.cairn-'))).toEqual([]);
    expect((await s.records.jobs.get(restoreId))?.status).toBe('failed');
  });
});
