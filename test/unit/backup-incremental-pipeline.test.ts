import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import {
  CairnError,
  MemoryObjectStore,
  MemoryRecords,
  archiveKey,
  createLogger,
  decodeIndex,
  encodeIndex,
  indexKey,
  newId,
  type Backup,
  type PutObjectOptions,
} from '@cairn/core';
import { JobLifecycle } from '@cairn/worker/job-lifecycle.ts';
import { BackupJob } from '@cairn/worker/node/backup.pipeline.ts';
import type { NodeContext } from '@cairn/worker/node/node-context.ts';

/**
 * The backup pipeline's incremental half over in-memory records and store: the parent referenced
 * and handed to the pack, the fallback to a full backup when the parent cannot be used, the
 * release of references after a final failure, and the `auto` kind of a scheduled backup.
 */
const roots: string[] = [];
afterAll(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

/** A memory store that can run a hook before an upload (e.g. delete a parent meanwhile). */
class HookedStore extends MemoryObjectStore {
  beforePut?: (key: string) => Promise<void>;
  override async put(key: string, body: Readable | Buffer, opts?: PutObjectOptions) {
    const hook = this.beforePut;
    if (hook) {
      this.beforePut = undefined;
      await hook(key);
    }
    return super.put(key, body, opts);
  }
}

interface Setup {
  records: MemoryRecords;
  store: HookedStore;
  ctx: NodeContext;
  lifecycle: JobLifecycle;
  instanceId: string;
}

async function setUp(config: Record<string, number> = {}): Promise<Setup> {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-incr-')));
  roots.push(root);
  const volume = path.join(root, 'app/data');
  fs.mkdirSync(path.join(volume, 'dir'), { recursive: true });
  fs.writeFileSync(path.join(volume, 'a.txt'), 'alpha');
  fs.writeFileSync(path.join(volume, 'dir/b.txt'), 'bravo'.repeat(1000));
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
  const store = new HookedStore();
  const logger = createLogger({ level: 'silent', name: 'test' });
  const ctx: NodeContext = {
    nodeId: 'n1',
    volumeRoots: [root],
    records,
    store,
    logger,
    config: { COMPRESSION: 'zstd', COMPRESSION_LEVEL: 3, ARCHIVE_BLOCK_SIZE: 1 << 20, ...config } as NodeContext['config'],
    queues: { enqueueControl: async () => undefined },
  };
  const lifecycle = new JobLifecycle({ jobs: records.jobs, logger, nodeId: 'n1', settleDelayMs: 1 });
  return { records, store, ctx, lifecycle, instanceId };
}

async function queueBackup(
  s: Setup,
  extra: { kind?: 'full' | 'incremental'; parentId?: string | null; trigger?: 'manual' | 'schedule'; volumes?: string[]; compression?: 'zstd' | 'gzip' } = {},
): Promise<{ backup: Backup; jobId: string }> {
  const backupId = newId();
  const jobId = newId();
  const backup = await s.records.backups.create({
    id: backupId,
    instanceId: s.instanceId,
    trigger: extra.trigger ?? 'manual',
    scheduleId: extra.trigger === 'schedule' ? 'sch-1' : null,
    kind: extra.kind ?? 'full',
    parentId: extra.parentId ?? null,
    volumes: extra.volumes ?? ['data'],
    storageKey: archiveKey(s.instanceId, backupId, extra.compression ?? 'zstd'),
    indexKey: indexKey(s.instanceId, backupId),
    compression: extra.compression ?? 'zstd',
    requestedBy: 'test',
  });
  await s.records.jobs.create({ id: jobId, type: 'backup', instanceId: s.instanceId, backupId, nodeId: 'n1', queue: 'node.n1', requestedBy: 'test' });
  return { backup, jobId };
}

function run(s: Setup, jobId: string, attempt = 1) {
  return s.lifecycle.execute(
    { name: 'job', record: { kind: 'existing', jobId }, attempt, attempts: 3, signal: new AbortController().signal },
    new BackupJob(s.ctx),
  );
}

/** A completed full backup, as the pipeline writes it. */
async function fullBackup(s: Setup): Promise<Backup> {
  const { backup, jobId } = await queueBackup(s);
  await expect(run(s, jobId)).resolves.toMatchObject({ status: 'succeeded' });
  return (await s.records.backups.get(backup.id))!;
}

async function rewriteIndex(s: Setup, parent: Backup, change: (ix: ReturnType<typeof decodeIndex>) => void): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of await s.store.get(parent.indexKey)) chunks.push(c as Buffer);
  const ix = decodeIndex(Buffer.concat(chunks));
  change(ix);
  await s.store.put(parent.indexKey, encodeIndex(ix));
}

describe('incremental backup pipeline', () => {
  let s: Setup;
  beforeEach(async () => {
    s = await setUp();
  });

  it('records the archive format, and an incremental backup references its parent and records kind, parent and reused bytes', async () => {
    const full = await fullBackup(s);
    expect(full).toMatchObject({ kind: 'full', parentId: null, format: 2, reusedBytes: 0n });

    const { backup, jobId } = await queueBackup(s, { kind: 'incremental', parentId: full.id });
    const outcome = await run(s, jobId);
    expect(outcome).toMatchObject({ status: 'succeeded', result: { backupId: backup.id, kind: 'incremental', parentId: full.id } });
    const row = (await s.records.backups.get(backup.id))!;
    expect(row).toMatchObject({ status: 'completed', kind: 'incremental', parentId: full.id, format: 2 });
    expect(typeof row.reusedBytes).toBe('bigint');
    expect(row.warnings).toEqual([]);
    // Its parent's object is now kept alive by it.
    expect(await s.records.backups.referencedOwners(backup.id)).toEqual([full.id]);
    expect(await s.records.backups.liveReferrers(full.id)).toEqual([backup.id]);

    // The next incremental on it references the owners the parent reads from too.
    const { backup: next, jobId: nextJob } = await queueBackup(s, { kind: 'incremental', parentId: backup.id });
    await expect(run(s, nextJob)).resolves.toMatchObject({ status: 'succeeded' });
    expect(await s.records.backups.referencedOwners(next.id)).toEqual([full.id, backup.id].sort());
  });

  it.each([
    [
      'a parent being deleted',
      async (s: Setup, p: Backup) => void (await s.records.backups.transition(p.id, ['completed'], 'deleting')),
      /parent backup \S+ is deleting/,
    ],
    ['a parent whose index is gone', async (s: Setup, p: Backup) => void (await s.store.deleteMany([p.indexKey])), /not found/],
    ['a parent whose index does not decode', async (s: Setup, p: Backup) => void (await s.store.put(p.indexKey, Buffer.from('not an index'))), /index/],
    ['a parent written in archive format 1', (s: Setup, p: Backup) => rewriteIndex(s, p, (ix) => void (ix.version = 1)), /archive format 1/],
    ['a parent whose index has another codec', (s: Setup, p: Backup) => rewriteIndex(s, p, (ix) => void (ix.codec = 'gzip')), /codec gzip/],
  ])('falls back to a full backup, saying why, on %s', async (_what, spoil, why) => {
    const full = await fullBackup(s);
    await spoil(s, full);
    const { backup, jobId } = await queueBackup(s, { kind: 'incremental', parentId: full.id });
    await expect(run(s, jobId)).resolves.toMatchObject({ status: 'succeeded', result: { kind: 'full', parentId: null } });
    const row = (await s.records.backups.get(backup.id))!;
    expect(row).toMatchObject({ status: 'completed', kind: 'full', parentId: null });
    const warnings = row.warnings as Array<{ code: string; message: string }>;
    expect(warnings).toEqual([{ path: '', code: 'parent-unusable', message: expect.stringContaining(`parent backup ${full.id} cannot be used`) }]);
    expect(warnings[0]!.message).toMatch(why);
    // Nothing referenced: a parent that could not be used is not kept alive by this backup.
    expect(await s.records.backups.referencedOwners(backup.id)).toEqual([]);
  });

  it('falls back to a full backup when the parent row has another codec', async () => {
    const { backup: gz, jobId: gzJob } = await queueBackup(s, { compression: 'gzip' });
    await expect(run(s, gzJob)).resolves.toMatchObject({ status: 'succeeded' });
    const { backup, jobId } = await queueBackup(s, { kind: 'incremental', parentId: gz.id });
    await expect(run(s, jobId)).resolves.toMatchObject({ status: 'succeeded', result: { kind: 'full' } });
    expect((await s.records.backups.get(backup.id))?.warnings).toEqual([
      { path: '', code: 'parent-unusable', message: expect.stringMatching(/uses codec gzip, this one zstd/) },
    ]);
  });

  it('keeps the fallback warning on the row when a later attempt completes it', async () => {
    const full = await fullBackup(s);
    await s.records.backups.transition(full.id, ['completed'], 'deleting');
    const { backup, jobId } = await queueBackup(s, { kind: 'incremental', parentId: full.id });
    s.store.beforePut = async () => {
      throw new CairnError('unavailable', 'injected upload failure', { permanent: false });
    };
    await expect(run(s, jobId)).rejects.toMatchObject({ permanent: false });
    expect(await s.records.backups.get(backup.id)).toMatchObject({ status: 'pending', kind: 'full', parentId: null });
    await expect(run(s, jobId, 2)).resolves.toMatchObject({ status: 'succeeded' });
    expect((await s.records.backups.get(backup.id))?.warnings).toEqual([
      { path: '', code: 'parent-unusable', message: expect.stringContaining('is deleting') },
    ]);
  });

  it('a transient failure reading the parent index retries the incremental backup instead of falling back', async () => {
    const full = await fullBackup(s);
    const { backup, jobId } = await queueBackup(s, { kind: 'incremental', parentId: full.id });
    s.store.failNext('get');
    await expect(run(s, jobId)).rejects.toMatchObject({ permanent: false });
    expect(await s.records.backups.get(backup.id)).toMatchObject({ status: 'pending', kind: 'incremental', parentId: full.id, warnings: [] });
    await expect(run(s, jobId, 2)).resolves.toMatchObject({ status: 'succeeded', result: { kind: 'incremental' } });
  });

  it('keeps its references for a retry, and releases them after a final failure', async () => {
    const full = await fullBackup(s);
    const { backup, jobId } = await queueBackup(s, { kind: 'incremental', parentId: full.id });
    // The parent is deleted while the incremental runs (after it referenced it), and the upload fails.
    s.store.beforePut = async () => {
      await s.records.backups.transition(full.id, ['completed'], 'deleting');
      throw new CairnError('unavailable', 'injected upload failure', { permanent: false });
    };
    await expect(run(s, jobId)).rejects.toMatchObject({ permanent: false });
    expect((await s.records.backups.get(backup.id))?.status).toBe('pending');
    // A retry is coming: the parent's object stays, held by the pending backup.
    expect(await s.records.backups.liveReferrers(full.id)).toEqual([backup.id]);
    expect(await s.store.head(full.storageKey)).not.toBeNull();

    // The last attempt fails for good: the backup gives up the object it alone kept alive.
    s.store.failNext('put', new CairnError('archive-corrupt', 'injected permanent failure'));
    await expect(run(s, jobId, 3)).rejects.toThrow(/injected permanent failure/);
    expect((await s.records.backups.get(backup.id))?.status).toBe('failed');
    expect(await s.records.backups.liveReferrers(full.id)).toEqual([]);
    expect(await s.store.head(full.storageKey)).toBeNull();
  });

  it('a failed incremental leaves the object of a parent that is still live in place', async () => {
    const full = await fullBackup(s);
    const { backup, jobId } = await queueBackup(s, { kind: 'incremental', parentId: full.id });
    s.store.beforePut = async () => {
      throw new CairnError('archive-corrupt', 'injected permanent failure');
    };
    await expect(run(s, jobId)).rejects.toThrow(/injected permanent failure/);
    expect((await s.records.backups.get(backup.id))?.status).toBe('failed');
    expect(await s.store.head(full.storageKey)).not.toBeNull();
    expect(await s.store.head(full.indexKey)).not.toBeNull();
  });
});

describe('scheduled backups are auto', () => {
  it('the first is full; the next builds on it; every FULL_BACKUP_EVERY-th is full again', async () => {
    const s = await setUp({ FULL_BACKUP_EVERY: 3 });
    const kinds: Array<[string, string | null]> = [];
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { backup, jobId } = await queueBackup(s, { trigger: 'schedule' });
      expect(backup.kind).toBe('full'); // as the firing writes it
      await expect(run(s, jobId)).resolves.toMatchObject({ status: 'succeeded' });
      const row = (await s.records.backups.get(backup.id))!;
      kinds.push([row.kind, row.parentId]);
      ids.push(row.id);
    }
    expect(kinds).toEqual([
      ['full', null],
      ['incremental', ids[0]],
      ['incremental', ids[1]],
      ['full', null],
    ]);
  });

  it('a manual full backup is not turned into an incremental one, and a schedule of other volumes starts full', async () => {
    const s = await setUp();
    await fullBackup(s);
    const { backup, jobId } = await queueBackup(s, { kind: 'full' });
    await run(s, jobId);
    expect(await s.records.backups.get(backup.id)).toMatchObject({ kind: 'full', parentId: null });
    // A row of all volumes ([]) resolves to the same set: it builds on the last one.
    const { backup: all, jobId: allJob } = await queueBackup(s, { trigger: 'schedule', volumes: [] });
    await run(s, allJob);
    expect(await s.records.backups.get(all.id)).toMatchObject({ kind: 'incremental', parentId: backup.id });
  });
});
