/**
 * Verify / scrub (issue 14) over in-memory records and object store: the levels on a format 2
 * backup whose frames partly live in its parent's object, what each catches and how it names it,
 * the handler's records (per backup and the fleet-wide run within its byte budget), and the pure
 * parts (the sample, durations, parent eligibility).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { Job as BullJob } from 'bullmq';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryObjectStore, MemoryRecords, archiveKey, createLogger, indexKey, newId, type JobQueues } from '@cairn/core';
import { encodeIndex, fileRangeReader, packArchive, type ArchiveEntry, type ArchiveIndex } from '@cairn/core/archive/index.ts';
import { sampleFiles, sampleSize, verifyAllFrames } from '@cairn/core/archive/verify-archive.ts';
import { parseDuration } from '@cairn/core/config/duration.ts';
import { parentIneligibility } from '@cairn/core/domain/backup-kind.ts';
import { verifyBackup } from '@cairn/core/domain/backup-verify.ts';
import type { ControlContext } from '@cairn/worker/control/control-context.ts';
import { runVerify } from '@cairn/worker/control/verify.handler.ts';
import { JobLifecycle } from '@cairn/worker/job-lifecycle.ts';
import { splitArchive } from '../archive/helpers/multi-object.ts';

const logger = createLogger({ level: 'silent', name: 'test' });
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

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function world() {
  const records = new MemoryRecords();
  records.seedNode({ id: 'n1', lastHeartbeatAt: new Date() });
  records.seedTenant({ id: 't1', name: 'acme' });
  const instanceId = newId();
  await records.instances.create({ id: instanceId, tenantId: 't1', name: 'app', nodeId: 'n1', volumes: [] });
  return { records, store: new MemoryObjectStore(), instanceId };
}

type World = Awaited<ReturnType<typeof world>>;

/** A completed format 2 backup of FILES whose every third frame lives in a parent's object. */
async function addBackup(w: World, files: Record<string, string> = FILES) {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-unit-verify-')));
  roots.push(root);
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), content);
  }
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(c);
      cb();
    },
  });
  const packed = await packArchive({ volumes: [{ name: 'data', dir: root }], codec: 'zstd', blockSize: 4096, concurrency: 1 }, sink);
  const parentId = newId();
  const split = splitArchive(Buffer.concat(chunks), packed.index, (i) => (i % 3 === 1 ? parentId : undefined));
  packed.close();
  const id = newId();
  const index: ArchiveIndex = { ...split.index, sha256: sha(split.own), meta: { ...split.index.meta, backupId: id } };
  const backup = await w.records.backups.create({
    id,
    instanceId: w.instanceId,
    trigger: 'manual',
    volumes: ['data'],
    storageKey: archiveKey(w.instanceId, id, 'zstd'),
    indexKey: indexKey(w.instanceId, id),
    compression: 'zstd',
    requestedBy: 'test',
  });
  const parentKey = archiveKey(w.instanceId, parentId, 'zstd');
  await w.store.put(backup.storageKey, split.own);
  await w.store.put(parentKey, split.objects.get(parentId)!);
  await w.store.put(backup.indexKey, encodeIndex(index));
  await w.records.backups.transition(id, ['pending'], 'completed', {
    completedAt: new Date(),
    format: index.version,
    sizeBytes: BigInt(split.own.length),
    sha256: index.sha256,
  });
  return { backup: (await w.records.backups.get(id))!, index, parentId, parentKey, own: split.own };
}

async function bytesOf(store: MemoryObjectStore, key: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of await store.get(key)) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

async function flip(store: MemoryObjectStore, key: string, at: number): Promise<void> {
  const bytes = await bytesOf(store, key);
  bytes[at] = bytes[at]! ^ 0xff;
  await store.put(key, bytes);
}

function context(w: World, verify?: ControlContext['verify']): ControlContext {
  return {
    records: w.records,
    store: w.store,
    logger,
    queues: {} as JobQueues,
    schedulers: {} as ControlContext['schedulers'],
    compression: 'zstd',
    sweep: {},
    verify,
  };
}

async function execute(ctx: ControlContext, payload: { jobId?: string; backupId?: string }) {
  const { record, work } = runVerify(ctx, payload, {} as BullJob);
  return new JobLifecycle({ jobs: ctx.records.jobs, logger, settleDelayMs: 1 }).execute(
    { name: 'verify', record, attempt: 1, attempts: 3, signal: new AbortController().signal },
    work,
  );
}

describe('verifyBackup', () => {
  it('passes every level on an intact backup whose frames live in two objects', async () => {
    const w = await world();
    const { backup, index, parentId } = await addBackup(w);
    const quick = await verifyBackup(w.store, backup, { level: 'quick' });
    expect(quick.objects.map((o) => o.backupId)).toEqual([backup.id, parentId]);
    expect(quick.filesChecked).toBe(0);
    const sample = await verifyBackup(w.store, backup, { level: 'sample', samplePercent: 100 });
    expect(sample.filesChecked).toBe(4);
    const full = await verifyBackup(w.store, backup, { level: 'full' });
    expect(full).toMatchObject({ blocksChecked: index.blocks.length, filesChecked: 4, sha256: backup.sha256 });
    expect(full.bytesRead).toBeGreaterThan(Number(backup.sizeBytes));
  });

  it('quick: a missing referenced object, a resized own object, an index of another backup', async () => {
    const w = await world();
    const a = await addBackup(w);
    await w.store.delete(a.parentKey);
    await expect(verifyBackup(w.store, a.backup, { level: 'quick' })).rejects.toMatchObject({
      code: 'archive-missing',
      message: expect.stringContaining(`the archive object of backup ${a.parentId}, which backup ${a.backup.id} reads from,`),
    });

    const b = await addBackup(w);
    await w.store.put(b.backup.storageKey, b.own.subarray(0, b.own.length - 1));
    await expect(verifyBackup(w.store, b.backup, { level: 'quick' })).rejects.toMatchObject({
      code: 'archive-corrupt',
      message: expect.stringContaining(`holds ${b.own.length - 1} bytes, the backup recorded ${b.own.length}`),
    });

    const c = await addBackup(w);
    await w.store.put(c.backup.indexKey, encodeIndex({ ...c.index, meta: { backupId: 'someone-else' } }));
    await expect(verifyBackup(w.store, c.backup, { level: 'quick' })).rejects.toMatchObject({
      code: 'archive-corrupt',
      message: expect.stringContaining('someone-else'),
    });
  });

  it("sample at 100% finds a corrupted frame in the parent's object and names it", async () => {
    const w = await world();
    const { backup, index, parentId, parentKey } = await addBackup(w);
    const block = index.blocks.findIndex((b) => b.object === parentId && b.uncompressedLength > 1024);
    const b = index.blocks[block]!;
    await flip(w.store, parentKey, b.compressedOffset + Math.floor(b.compressedLength / 2));
    await verifyBackup(w.store, backup, { level: 'quick' });
    await expect(verifyBackup(w.store, backup, { level: 'sample', samplePercent: 100 })).rejects.toMatchObject({
      message: expect.stringContaining(
        `block ${block} (stored bytes ${b.compressedOffset}..${b.compressedOffset + b.compressedLength - 1} of the archive object of backup ${parentId})`,
      ),
    });
  });

  it('full finds a byte no frame holds through the sha256 of the own object; quick and sample do not', async () => {
    const w = await world();
    const { backup, own } = await addBackup(w);
    const longer = Buffer.concat([own, Buffer.from([0])]);
    await w.store.put(backup.storageKey, longer);
    await w.records.backups.updateWhere({ id: backup.id }, { sizeBytes: BigInt(longer.length) });
    const row = (await w.records.backups.get(backup.id))!;
    await verifyBackup(w.store, row, { level: 'quick' });
    await verifyBackup(w.store, row, { level: 'sample', samplePercent: 100 });
    await expect(verifyBackup(w.store, row, { level: 'full' })).rejects.toMatchObject({
      code: 'checksum-mismatch',
      message: expect.stringContaining(`the archive object of backup ${backup.id} (${backup.storageKey}) does not match its sha256`),
    });
  });

  // b.txt spans blocks (hashed as the tar is parsed), a.txt lies in one (checked by the codec worker decoding it).
  for (const file of ['data/dir/b.txt', 'data/a.txt'])
    it(`full finds a file whose content does not match its sha256 in the index: ${file}`, async () => {
      const w = await world();
      const { backup, index } = await addBackup(w);
      const entries = index.entries.map((e) => (e.path === file ? { ...e, sha256: '0'.repeat(64) } : e));
      await w.store.put(backup.indexKey, encodeIndex({ ...index, entries }));
      await expect(verifyBackup(w.store, backup, { level: 'full' })).rejects.toMatchObject({
        code: 'checksum-mismatch',
        message: expect.stringContaining(`content of ${file} does not match its sha256`),
      });
    });
});

describe('verifyBackup full, decoded on the codec workers', () => {
  it('parses headers split between blocks (a path longer than a block), and finds every file', async () => {
    const w = await world();
    // A ~3,900-byte path: its pax record, headers and padding (5 KiB) outgrow a 4 KiB block, so
    // the parser holds the first block's part while the next is decoded (its buffer not reused).
    const deep = Array.from({ length: 16 }, (_, k) => `${k}`.padEnd(240, 'z')).join('/');
    const files: Record<string, string> = { [`${deep}/last.txt`]: 'deep content'.repeat(50) };
    for (let i = 0; i < 30; i++) files[`flat/f${i}.txt`] = `content ${i} `.repeat(1 + ((i * 13) % 400));
    const { backup, index } = await addBackup(w, files);
    expect(index.blocks.length).toBeGreaterThan(10);
    const progress: number[] = [];
    const full = await verifyBackup(w.store, backup, { level: 'full', onProgress: (_stage, p) => p && progress.push(p.bytesDone) });
    expect(full).toMatchObject({ blocksChecked: index.blocks.length, filesChecked: 31, sha256: backup.sha256 });
    expect(progress.at(-1)).toBe(index.blocks.reduce((n, b) => n + b.compressedLength, 0));
  });

  it("names a corrupted frame of the own object and of the parent's", async () => {
    const w = await world();
    const a = await addBackup(w);
    const own = a.index.blocks.findIndex((b, i) => i > 0 && b.object === undefined && b.compressedLength > 64);
    const b = a.index.blocks[own]!;
    await flip(w.store, a.backup.storageKey, b.compressedOffset + Math.floor(b.compressedLength / 2));
    await expect(verifyBackup(w.store, a.backup, { level: 'full' })).rejects.toMatchObject({
      message: expect.stringContaining(
        `block ${own} (stored bytes ${b.compressedOffset}..${b.compressedOffset + b.compressedLength - 1} of the archive's own object)`,
      ),
    });

    const c = await addBackup(w);
    const theirs = c.index.blocks.findIndex((x) => x.object === c.parentId && x.compressedLength > 64);
    const p = c.index.blocks[theirs]!;
    await flip(w.store, c.parentKey, p.compressedOffset + Math.floor(p.compressedLength / 2));
    await expect(verifyBackup(w.store, c.backup, { level: 'full' })).rejects.toMatchObject({
      message: expect.stringContaining(
        `block ${theirs} (stored bytes ${p.compressedOffset}..${p.compressedOffset + p.compressedLength - 1} of the archive object of backup ${c.parentId})`,
      ),
    });
  });

  it('reads through the store thread: the same findings, the own hash computed there', async () => {
    const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-unit-verify-thread-')));
    roots.push(root);
    for (const [rel, content] of Object.entries(FILES)) {
      fs.mkdirSync(path.dirname(path.join(root, 'src', rel)), { recursive: true });
      fs.writeFileSync(path.join(root, 'src', rel), content);
    }
    const file = path.join(root, 'archive.tar.zst');
    const packed = await packArchive({ volumes: [{ name: 'data', dir: path.join(root, 'src') }], codec: 'zstd', blockSize: 4096 }, fs.createWriteStream(file));
    const bytes = fs.readFileSync(file);
    const thread = { recipe: { kind: 'file' as const, path: file } };
    const r = await verifyAllFrames(packed.index, fileRangeReader(file), { thread, files: 4 });
    expect(r).toEqual({ blocksChecked: packed.index.blocks.length, filesChecked: 4, bytesRead: bytes.length, ownSha256: sha(bytes), ownBytes: bytes.length });

    // The index and the tar must agree entry for entry: one missing from the index, one the tar lacks.
    const entries = packed.index.entries;
    await expect(verifyAllFrames({ ...packed.index, entries: entries.slice(0, -1) }, fileRangeReader(file), { thread })).rejects.toMatchObject({
      code: 'archive-corrupt',
      message: expect.stringMatching(/archive entry .* at tar offset \d+ is not in the index/),
    });
    const ghost = { ...entries.at(-1)!, path: 'data/ghost' };
    await expect(verifyAllFrames({ ...packed.index, entries: [...entries, ghost] }, fileRangeReader(file), { thread })).rejects.toMatchObject({
      code: 'archive-corrupt',
      message: expect.stringContaining(`entry data/ghost of the index is not in the archive (${entries.length} entries found before it)`),
    });

    const block = packed.index.blocks.findIndex((b, i) => i > 0 && b.compressedLength > 64);
    const b = packed.index.blocks[block]!;
    bytes[b.compressedOffset + Math.floor(b.compressedLength / 2)]! ^= 0xff;
    fs.writeFileSync(file, bytes);
    await expect(verifyAllFrames(packed.index, fileRangeReader(file), { thread, files: 4 })).rejects.toMatchObject({
      message: expect.stringContaining(`block ${block} (stored bytes ${b.compressedOffset}..`),
    });
    packed.close();
  });

  it('stops when cancelled', async () => {
    const w = await world();
    const { backup } = await addBackup(w);
    const stop = new AbortController();
    const run = verifyBackup(w.store, backup, {
      level: 'full',
      signal: stop.signal,
      onProgress: (stage) => stage === 'verifying' && stop.abort(new Error('stop now')),
    });
    await expect(run).rejects.toMatchObject({ code: 'cancelled' });
  });
});

describe('the verify handler', () => {
  it('records the outcome on the backup; a finding fails the job with its code', async () => {
    const w = await world();
    const { backup, parentKey } = await addBackup(w);
    const ok = newId();
    await w.records.jobs.create({ id: ok, type: 'verify', backupId: backup.id, queue: 'control', params: { level: 'full' }, requestedBy: 't' });
    expect(await execute(context(w), { jobId: ok, backupId: backup.id })).toMatchObject({ status: 'succeeded', result: { level: 'full', filesChecked: 4 } });
    expect(await w.records.backups.get(backup.id)).toMatchObject({ verifyStatus: 'ok', verifyLevel: 'full', verifyError: null });

    await w.store.delete(parentKey);
    const bad = newId();
    await w.records.jobs.create({ id: bad, type: 'verify', backupId: backup.id, queue: 'control', params: { level: 'quick' }, requestedBy: 't' });
    await expect(execute(context(w), { jobId: bad, backupId: backup.id })).rejects.toThrow(/missing/);
    expect(await w.records.jobs.get(bad)).toMatchObject({ status: 'failed', errorCode: 'archive-missing' });
    const after = await w.records.backups.get(backup.id);
    expect(after).toMatchObject({ verifyStatus: 'failed', verifyLevel: 'quick' });
    expect(after?.verifyError).toContain(parentKey);
    expect(await w.records.jobs.count({ type: 'verify', status: 'failed', errorCode: ['archive-missing'] })).toBe(1);
    expect(await w.records.backups.count({ status: 'completed', verifyStatus: 'failed' })).toBe(1);
  });

  it('a backup deleted meanwhile is no finding: the job is cancelled, the backup untouched', async () => {
    const w = await world();
    const { backup } = await addBackup(w);
    await w.records.backups.transition(backup.id, ['completed'], 'deleting', { deletedAt: new Date() });
    const jobId = newId();
    await w.records.jobs.create({ id: jobId, type: 'verify', backupId: backup.id, queue: 'control', params: { level: 'quick' }, requestedBy: 't' });
    expect(await execute(context(w), { jobId, backupId: backup.id })).toMatchObject({ status: 'cancelled' });
    expect((await w.records.jobs.get(jobId))?.status).toBe('cancelled');
    expect((await w.records.backups.get(backup.id))?.verifiedAt).toBeNull();
  });

  it('the fleet-wide run takes the least recently verified first and stops at its byte budget', async () => {
    const w = await world();
    const first = await addBackup(w);
    const second = await addBackup(w);
    await w.store.delete(second.parentKey);
    const ctx = context(w, { level: 'quick', bytesBudget: 1 });

    const run1 = await execute(ctx, {});
    expect(run1).toMatchObject({ status: 'succeeded', result: { checked: 1, ok: [first.backup.id], failed: [] } });
    expect((await w.records.backups.get(first.backup.id))?.verifyStatus).toBe('ok');
    expect((await w.records.backups.get(second.backup.id))?.verifiedAt).toBeNull();

    const run2 = await execute(ctx, {});
    expect(run2).toMatchObject({ status: 'succeeded', result: { checked: 1, ok: [], failed: [{ backupId: second.backup.id, code: 'archive-missing' }] } });
    expect((await w.records.backups.get(second.backup.id))?.verifyStatus).toBe('failed');

    // Each run is a `verify` Job, with one child per backup it checked.
    const runs = await w.records.jobs.find({ type: 'verify', backupId: undefined });
    const parents = runs.filter((j) => j.backupId === null);
    expect(parents).toHaveLength(2);
    const children = await w.records.jobs.find({ parentJobId: parents[1]!.id });
    expect(children).toMatchObject([{ backupId: second.backup.id, status: 'failed', errorCode: 'archive-missing' }]);

    // A budget large enough takes both, the older verification first.
    const run3 = await execute(context(w, { level: 'quick', bytesBudget: 1 << 30 }), {});
    expect(run3).toMatchObject({ result: { checked: 2, ok: [first.backup.id] } });
  });
});

describe('pure parts', () => {
  it('sampleFiles: the share asked, at least one, all at 100%, in archive order, in one pass', () => {
    const files = Array.from({ length: 20 }, (_, i) => ({ path: `v/f${i}`, type: 'file' as const, headerOffset: (i + 1) * 1024 }));
    const entries = [{ path: 'v', type: 'dir' as const, headerOffset: 0 }, ...files] as unknown as ArchiveEntry[];
    expect(sampleSize(20, 10)).toBe(2);
    expect(sampleSize(20, 1)).toBe(1);
    expect(sampleSize(0, 50)).toBe(0);
    expect(sampleFiles(entries, 20, 100)).toHaveLength(20);
    expect(sampleFiles(entries, 20, 10)).toHaveLength(2);
    expect(sampleFiles(entries, 20, 0)).toHaveLength(0);
    let n = 0;
    const random = () => (n = (n * 7919 + 13) % 1000) / 1000;
    const picked = sampleFiles(entries, 20, 50, random);
    expect(new Set(picked.map((e) => e.path)).size).toBe(10);
    expect(picked.every((e) => e.type === 'file')).toBe(true);
    expect(picked.map((e) => e.headerOffset)).toEqual([...picked.map((e) => e.headerOffset)].sort((a, b) => a - b));
    // Every file can be chosen: over many samples of one, each shows up.
    const seen = new Set<string>();
    for (let k = 0; k < 400; k++) seen.add(sampleFiles(entries, 20, 1)[0]!.path);
    expect(seen.size).toBe(20);
  });

  it('parseDuration', () => {
    expect(parseDuration('24h')).toBe(86_400_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('7d')).toBe(7 * 86_400_000);
    expect(parseDuration('1500')).toBe(1500);
    expect(parseDuration('soon')).toBeNull();
    expect(parseDuration('1x')).toBeNull();
  });

  it('a backup that failed verification is never a parent', () => {
    const row = {
      id: 'b',
      instanceId: 'i',
      status: 'completed' as const,
      kind: 'full' as const,
      parentId: null,
      volumes: ['data'],
      compression: 'zstd',
      format: 2,
      deletedAt: null,
      completedAt: new Date(),
    };
    const request = { volumes: ['data'], instanceVolumes: ['data'], compression: 'zstd' } as Parameters<typeof parentIneligibility>[1];
    expect(parentIneligibility(row, request)).toBeNull();
    expect(parentIneligibility({ ...row, verifyStatus: 'ok' }, request)).toBeNull();
    expect(parentIneligibility({ ...row, verifyStatus: 'failed' }, request)).toBe('it failed verification');
  });
});
