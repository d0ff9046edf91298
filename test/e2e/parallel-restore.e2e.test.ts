import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GetObjectOptions } from '@cairn/core';
import { startCairn, type Cairn } from '../support/cairn-harness.ts';
import { snapshotTree } from '../support/tree.ts';

/** Incompressible files larger than a frame, and many small ones: the archive spans many frames. */
function populate(dir: string): void {
  fs.mkdirSync(path.join(dir, 'big'), { recursive: true });
  for (let i = 0; i < 3; i++) fs.writeFileSync(path.join(dir, 'big', `blob-${i}.bin`), randomBytes(700_000 + i * 123_457));
  for (let d = 0; d < 10; d++) {
    fs.mkdirSync(path.join(dir, 'small', `d${d}`), { recursive: true });
    for (let f = 0; f < 40; f++) fs.writeFileSync(path.join(dir, 'small', `d${d}`, `f${f}.txt`), randomBytes(200 + ((d * 40 + f) % 9) * 500));
  }
}

/** A Cairn, an instance over a populated volume, and the archive reads and writes its node worker's own store makes. */
interface Setup {
  cairn: Cairn;
  instanceId: string;
  source: string;
  /** Range reads of archive objects seen by the node worker's store. */
  ranges: { key: string; start: number; end: number }[];
  /** Archive objects the node worker's store wrote. */
  writes: string[];
}

async function setUp(env: Record<string, string>, name: string): Promise<Setup> {
  const cairn = await startCairn({ env });
  const ranges: Setup['ranges'] = [];
  const writes: string[] = [];
  const store = cairn.runtime.store;
  const get = store.get.bind(store);
  store.get = (key: string, opts?: GetObjectOptions) => {
    if (opts?.range && 'start' in opts.range && /archive\.tar/.test(key)) ranges.push({ key, start: opts.range.start, end: opts.range.end! });
    return get(key, opts);
  };
  const put = store.put.bind(store);
  store.put = (key: string, body: Parameters<typeof put>[1], opts?: Parameters<typeof put>[2]) => {
    if (/archive\.tar/.test(key)) writes.push(key);
    return put(key, body, opts);
  };
  const source = path.join(cairn.volumeRoot, 'app', 'data');
  populate(source);
  const res = await cairn.api('POST', '/v1/instances', { name, nodeId: cairn.nodeId, tenant: cairn.tenant, volumes: [{ name: 'data', hostPath: source }] });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { cairn, instanceId: res.body.id, source, ranges, writes };
}

async function backup(x: Setup, body: object): Promise<any> {
  const res = await x.cairn.api('POST', `/v1/instances/${x.instanceId}/backups`, body);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  const job = await x.cairn.waitForJob(res.body.job.id);
  expect(job.status, JSON.stringify(job)).toBe('succeeded');
  return (await x.cairn.api('GET', `/v1/backups/${res.body.backup.id}`)).body;
}

/** Restores into a new instance `name`; the range reads seen are those of this restore. */
async function restoreInto(x: Setup, backupId: string, name: string, extra: object = {}): Promise<string> {
  const { cairn } = x;
  const into = path.join(cairn.volumeRoot, name, 'data');
  const target = await cairn.api('POST', '/v1/instances', { name, nodeId: cairn.nodeId, tenant: cairn.tenant, volumes: [{ name: 'data', hostPath: into }] });
  expect(target.status, JSON.stringify(target.body)).toBe(201);
  x.ranges.length = 0;
  const res = await cairn.api('POST', `/v1/backups/${backupId}/restore`, { targetInstanceId: target.body.id, ...extra });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  const job = await cairn.waitForJob(res.body.job.id);
  expect(job.status, JSON.stringify(job)).toBe('succeeded');
  return into;
}

describe('restore through parallel range reads on the main thread (RESTORE_RANGE_SIZE small, STORE_THREAD=false)', () => {
  let x: Setup;
  beforeAll(async () => {
    x = await setUp(
      { ARCHIVE_BLOCK_SIZE: '64KiB', RESTORE_RANGE_SIZE: '128KiB', RESTORE_PARALLEL_RANGES: '3', RESTORE_BYTES_IN_FLIGHT: '1MiB', STORE_THREAD: 'false' },
      'ranged',
    );
  });
  afterAll(async () => {
    await x?.cairn.close();
  });

  it('a whole restore reads the archive as many ranges of whole frames and round-trips byte for byte', async () => {
    const full = await backup(x, { kind: 'full' });
    const into = await restoreInto(x, full.id, 'whole');
    expect(snapshotTree(into)).toEqual(snapshotTree(x.source));
    // Every stored byte once, in ranges no longer than 128 KiB unless a frame is (a 64 KiB block of random data stores a bit more).
    const own = x.ranges.filter((r) => r.key === full.storageKey).sort((a, b) => a.start - b.start);
    expect(own.length).toBeGreaterThan(10);
    expect(own[0]!.start).toBe(0);
    for (let i = 1; i < own.length; i++) expect(own[i]!.start).toBe(own[i - 1]!.end + 1);
    expect(own.at(-1)!.end).toBe(Number(full.sizeBytes) - 1);
    for (const r of own) expect(r.end - r.start + 1).toBeLessThanOrEqual(128 * 1024 + 1024);
  });

  it("an incremental's restore reads its own object and its parent's, in ranges, byte for byte", async () => {
    fs.writeFileSync(path.join(x.source, 'small', 'd3', 'f7.txt'), 'changed after the full backup\n');
    fs.writeFileSync(path.join(x.source, 'big', 'new.bin'), randomBytes(300_000));
    const incr = await backup(x, { kind: 'incremental' });
    expect(incr.kind).toBe('incremental');
    const into = await restoreInto(x, incr.id, 'incremental');
    expect(snapshotTree(into)).toEqual(snapshotTree(x.source));
    const objects = new Set(x.ranges.map((r) => r.key));
    expect(objects.has(incr.storageKey)).toBe(true);
    expect(objects.size).toBe(2);
  });

  it('a restore of chosen paths reads only ranges holding them', async () => {
    const list = (await x.cairn.api('GET', `/v1/instances/${x.instanceId}/backups`)).body.items;
    const newest = list.find((b: { kind: string }) => b.kind === 'incremental');
    const into = await restoreInto(x, newest.id, 'paths', { paths: ['data/big/blob-1.bin'] });
    expect(fs.readFileSync(path.join(into, 'big', 'blob-1.bin')).equals(fs.readFileSync(path.join(x.source, 'big', 'blob-1.bin')))).toBe(true);
    expect(fs.existsSync(path.join(into, 'small'))).toBe(false);
    const read = x.ranges.reduce((n, r) => n + r.end - r.start + 1, 0);
    expect(read).toBeGreaterThan(fs.statSync(path.join(x.source, 'big', 'blob-1.bin')).size);
    expect(read).toBeLessThan(fs.statSync(path.join(x.source, 'big', 'blob-1.bin')).size + 400_000);
  });
});

describe('backup and restore with their bytes moved by the store thread (the default)', () => {
  let x: Setup;
  beforeAll(async () => {
    x = await setUp({ ARCHIVE_BLOCK_SIZE: '64KiB', RESTORE_RANGE_SIZE: '128KiB' }, 'threaded');
  });
  afterAll(async () => {
    await x?.cairn.close();
  });

  it('a full and an incremental backup restore byte for byte, no archive byte written or read through the main thread', async () => {
    const full = await backup(x, { kind: 'full' });
    expect(snapshotTree(await restoreInto(x, full.id, 'thread-full'))).toEqual(snapshotTree(x.source));
    expect(x.ranges).toEqual([]);

    fs.writeFileSync(path.join(x.source, 'small', 'd5', 'f1.txt'), 'changed after the full backup\n');
    fs.writeFileSync(path.join(x.source, 'big', 'newer.bin'), randomBytes(250_000));
    const incr = await backup(x, { kind: 'incremental' });
    expect(incr.kind).toBe('incremental');
    expect(snapshotTree(await restoreInto(x, incr.id, 'thread-incr'))).toEqual(snapshotTree(x.source));
    expect(x.ranges).toEqual([]);
    expect(x.writes).toEqual([]);
    // The objects the store thread wrote are where the records say, with the sizes they give.
    for (const b of [full, incr]) expect((await x.cairn.runtime.store.head(b.storageKey))?.size).toBe(Number(b.sizeBytes));
  });
});
