import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryObjectStore, MemoryRecords, archiveKey, createLogger, indexKey, newId } from '@cairn/core';
import { encodeIndex, hasForeignBlocks, packArchive } from '@cairn/core/archive/index.ts';
import { JobLifecycle } from '@cairn/worker/job-lifecycle.ts';
import type { NodeContext } from '@cairn/worker/node/node-context.ts';
import { RestoreJob } from '@cairn/worker/node/restore.pipeline.ts';
import { splitArchive } from '../archive/helpers/multi-object.ts';

/**
 * The restore job on an incremental backup (format 2) whose frames partly live in its parent's
 * archive object, over in-memory records and object store: no Postgres, Redis or S3.
 */
const roots: string[] = [];
afterAll(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

const FILES: Record<string, string> = {
  'a.txt': 'alpha',
  'dir/b.txt': 'bravo'.repeat(3000),
  'dir/c.bin': Array.from({ length: 4000 }, (_, k) => ((k * 7919) % 65536).toString(36)).join(''),
  'other/d.txt': 'delta'.repeat(2000),
};

async function setUp() {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-unit-mo-')));
  roots.push(root);
  const volume = path.join(root, 'app/data');
  for (const [rel, content] of Object.entries(FILES)) {
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
  const ctx: NodeContext = {
    nodeId: 'n1',
    volumeRoots: [root],
    records,
    store,
    logger,
    config: { COMPRESSION: 'zstd', COMPRESSION_LEVEL: 3, ARCHIVE_BLOCK_SIZE: 1 << 20 },
    queues: { enqueueControl: async () => undefined },
  };
  const lifecycle = new JobLifecycle({ jobs: records.jobs, logger, nodeId: 'n1', settleDelayMs: 1 });

  // Pack the volume, then move every third block into the parent's object.
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(c);
      cb();
    },
  });
  const packed = await packArchive({ volumes: [{ name: 'data', dir: volume }], codec: 'zstd', blockSize: 4096, concurrency: 1 }, sink);
  const index = packed.index;
  packed.close();
  const parentId = newId();
  const split = splitArchive(Buffer.concat(chunks), index, (i) => (i % 3 === 1 ? parentId : undefined));
  expect(hasForeignBlocks(split.index)).toBe(true);
  const backupId = newId();
  const backup = await records.backups.create({
    id: backupId,
    instanceId,
    trigger: 'manual',
    scheduleId: null,
    volumes: ['data'],
    storageKey: archiveKey(instanceId, backupId, 'zstd'),
    indexKey: indexKey(instanceId, backupId),
    compression: 'zstd',
    requestedBy: 'test',
  });
  const parentKey = archiveKey(instanceId, parentId, 'zstd');
  await store.put(backup.storageKey, split.own);
  await store.put(parentKey, split.objects.get(parentId)!);
  await store.put(backup.indexKey, encodeIndex(split.index));
  await records.backups.transition(backupId, ['pending'], 'completed', {
    completedAt: new Date(),
    sizeBytes: BigInt(split.own.length),
    sha256: split.index.sha256,
  });
  return { records, store, ctx, lifecycle, volume, instanceId, backup, parentKey };
}

type Setup = Awaited<ReturnType<typeof setUp>>;

async function restore(s: Setup, params: Record<string, unknown> = {}, jobId = newId()) {
  await s.records.jobs.create({
    id: jobId,
    type: 'restore',
    instanceId: s.instanceId,
    backupId: s.backup.id,
    targetInstanceId: s.instanceId,
    params,
    requestedBy: 'test',
  });
  return s.lifecycle.execute(
    { name: 'job', record: { kind: 'existing', jobId }, attempt: 1, attempts: 3, signal: new AbortController().signal },
    new RestoreJob(s.ctx),
  );
}

function readTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    for (const d of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) walk(r);
      else out[r] = fs.readFileSync(path.join(dir, r), 'utf8');
    }
  };
  walk('');
  return out;
}

describe('restore of an incremental backup', () => {
  it('restores the whole volume from its own object and its parent', async () => {
    const s = await setUp();
    fs.writeFileSync(path.join(s.volume, 'a.txt'), 'changed');
    fs.writeFileSync(path.join(s.volume, 'dir/c.bin'), 'truncated');
    fs.writeFileSync(path.join(s.volume, 'new.txt'), 'not in the backup');
    const gets: string[] = [];
    const get = s.store.get.bind(s.store);
    s.store.get = (key, opts) => {
      gets.push(`${key}${opts?.range ? ' (range)' : ''}`);
      return get(key, opts);
    };
    await expect(restore(s)).resolves.toMatchObject({ status: 'succeeded', result: { filesWritten: 4 } });
    expect(readTree(s.volume)).toEqual(FILES);
    expect(gets).toContain(`${s.parentKey} (range)`);
    expect(gets).toContain(`${s.backup.storageKey} (range)`);
  });

  it('restores a chosen path whose blocks are partly in the parent', async () => {
    const s = await setUp();
    fs.writeFileSync(path.join(s.volume, 'dir/c.bin'), 'truncated');
    fs.writeFileSync(path.join(s.volume, 'a.txt'), 'kept');
    await expect(restore(s, { paths: ['data/dir'] })).resolves.toMatchObject({ status: 'succeeded' });
    expect(readTree(s.volume)).toEqual({ ...FILES, 'a.txt': 'kept' });
  });

  it('fails with archive-missing naming the parent object when it is gone, leaving the target as it was', async () => {
    const s = await setUp();
    await s.store.delete(s.parentKey);
    fs.writeFileSync(path.join(s.volume, 'a.txt'), 'live data');
    const jobId = newId();
    await expect(restore(s, {}, jobId)).rejects.toThrow(s.parentKey);
    expect(fs.readFileSync(path.join(s.volume, 'a.txt'), 'utf8')).toBe('live data');
    expect(fs.readdirSync(path.dirname(s.volume)).filter((n) => n.startsWith('.cairn-'))).toEqual([]);
    expect(await s.records.jobs.get(jobId)).toMatchObject({ status: 'failed', errorCode: 'archive-missing' });
  });
});
