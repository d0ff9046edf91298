/**
 * packArchive's behaviour around the data: progress, cancellation, bounded memory under
 * backpressure, files that change, vanish or cannot be read, excludes, empty and missing volumes.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { decodeIndex, encodeIndex, packArchive, sharedWorkerHost, type ArchiveProgress, type PackResult } from '@cairn/core/archive/index.ts';
import { CodecPool } from '@cairn/core/archive/codec-pool.ts';
import { loadNativeReads, nativeAddonPath, Out } from '@cairn/core/archive/native-reads.ts';
import { INLINE_BELOW, inlineBelow } from '@cairn/core/archive/pack-reader.ts';
import { isCairnError } from '@cairn/core/errors.ts';
import { IS_ROOT } from './helpers/tree.ts';

const MiB = 1024 * 1024;
let work: string;

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-packb-'));
  fs.chmodSync(work, 0o755);
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const nullSink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });

/** A sink that holds every write until released: the packer must stop reading meanwhile. */
function gatedSink(): { sink: Writable; release: () => void; written: () => number } {
  let open = false;
  let waiting: (() => void)[] = [];
  let written = 0;
  const sink = new Writable({
    highWaterMark: 1024,
    write(c: Buffer, _e, cb) {
      written += c.length;
      if (open) cb();
      else waiting.push(cb);
    },
  });
  return {
    sink,
    release: () => {
      open = true;
      for (const cb of waiting) cb();
      waiting = [];
    },
    written: () => written,
  };
}

function makeVolume(name: string, files: Record<string, string | Buffer>): string {
  const dir = path.join(work, name);
  for (const [rel, data] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), data);
  }
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

describe('packArchive', () => {
  it('reports progress against the pre-scan totals', async () => {
    const dir = makeVolume('progress', { 'a.bin': randomBytes(3 * MiB), 'b/c.txt': 'x'.repeat(1000), 'b/d.txt': '' });
    const seen: ArchiveProgress[] = [];
    const r = await packArchive({ volumes: [{ name: 'v', dir }], blockSize: 256 * 1024, onProgress: (p) => seen.push(p) }, nullSink());
    expect(seen[0]).toEqual({ bytesDone: 0, bytesTotal: 3 * MiB + 1000, filesDone: 0, filesTotal: 3 });
    expect(seen.at(-1)).toEqual({ bytesDone: 3 * MiB + 1000, bytesTotal: 3 * MiB + 1000, filesDone: 3, filesTotal: 3 });
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.bytesDone).toBeGreaterThanOrEqual(seen[i - 1]!.bytesDone);
    expect(r.fileCount).toBe(3);
    expect(r.logicalBytes).toBe(3 * MiB + 1000);
  });

  it('reports what it has read while its sink is still finishing (an upload draining its buffered parts)', async () => {
    const dir = makeVolume('progress-drain', { 'a.bin': randomBytes(2 * MiB), 'b.bin': randomBytes(2 * MiB) });
    const seen: { at: number; p: ArchiveProgress }[] = [];
    let finishing = 0;
    // Takes every write at once, like an upload buffering whole parts, then takes 1.5 s to finish.
    const sink = new Writable({
      write: (_c, _e, cb) => cb(),
      final(cb) {
        finishing = Date.now();
        setTimeout(cb, 1500);
      },
    });
    const r = await packArchive({ volumes: [{ name: 'v', dir }], onProgress: (p) => seen.push({ at: Date.now(), p }) }, sink);
    r.close();
    const done = seen.find((s) => s.p.bytesDone === 4 * MiB);
    expect(finishing).toBeGreaterThan(0);
    // Within the progress interval of the last read, not only once the sink has finished.
    expect(done!.at - finishing).toBeLessThan(1000);
  });

  it('copies meta into the index and marks empty volumes', async () => {
    const dir = makeVolume('meta', { 'f.txt': 'x' });
    const empty = path.join(work, 'empty-volume');
    fs.mkdirSync(empty);
    const r = await packArchive(
      {
        volumes: [
          { name: 'data', dir },
          { name: 'empty', dir: empty },
        ],
        meta: { backupId: 'b1', instanceId: 'i1', nodeId: 'n1' },
      },
      nullSink(),
    );
    expect(r.index.meta).toEqual({ backupId: 'b1', instanceId: 'i1', nodeId: 'n1' });
    expect(r.index.volumes.map((v) => ({ name: v.name, empty: v.empty, files: v.files, logicalBytes: v.logicalBytes }))).toEqual([
      { name: 'data', empty: false, files: 1, logicalBytes: 1 },
      { name: 'empty', empty: true, files: 0, logicalBytes: 0 },
    ]);
    expect(r.index.entries.map((e) => e.path)).toEqual(['data', 'data/f.txt', 'empty']);
  });

  it('applies excludes: basenames anywhere, anchored paths, whole subtrees', async () => {
    const dir = makeVolume('excl', {
      'keep.txt': 'k',
      'x.log': 'l',
      'sub/y.log': 'l',
      'sub/keep.txt': 'k',
      'cache/a/b.txt': 'c',
      'top-only.txt': 't',
      'sub/top-only.txt': 't',
      '.hidden/h.txt': 'h',
    });
    const r = await packArchive({ volumes: [{ name: 'v', dir, excludes: ['*.log', 'cache/', '/top-only.txt', '.hidden'] }] }, nullSink());
    expect(r.index.entries.map((e) => e.path).sort()).toEqual(['v', 'v/keep.txt', 'v/sub', 'v/sub/keep.txt', 'v/sub/top-only.txt']);
  });

  it('fails clearly on a missing volume and on bad options', async () => {
    const err = await packArchive({ volumes: [{ name: 'v', dir: path.join(work, 'does-not-exist') }] }, nullSink()).catch((e: unknown) => e);
    expect(isCairnError(err, 'volume-missing')).toBe(true);
    for (const volumes of [
      [],
      [{ name: '../x', dir: work }],
      [
        { name: 'a', dir: work },
        { name: 'a', dir: work },
      ],
    ]) {
      const e = await packArchive({ volumes }, nullSink()).catch((x: unknown) => x);
      expect(isCairnError(e, 'validation'), JSON.stringify(volumes)).toBe(true);
    }
    const e = await packArchive({ volumes: [{ name: 'v', dir: work }], blockSize: 100 }, nullSink()).catch((x: unknown) => x);
    expect(isCairnError(e, 'validation')).toBe(true);
  });

  it('stops reading while the sink is full: memory stays a few blocks', async () => {
    const dir = makeVolume('backpressure', { 'big.bin': randomBytes(48 * MiB) });
    const gate = gatedSink();
    let done = 0;
    const ac = new AbortController();
    const p = packArchive(
      { volumes: [{ name: 'v', dir }], codec: 'none', blockSize: MiB, signal: ac.signal, onProgress: (x) => (done = x.bytesDone) },
      gate.sink,
    );
    await new Promise((r) => setTimeout(r, 1500));
    // Nothing drains: the reader may only be a handful of blocks ahead.
    expect(done).toBeLessThanOrEqual(16 * MiB);
    gate.release();
    const r = await p;
    expect(r.logicalBytes).toBe(48 * MiB);
    expect(gate.written()).toBe(r.storedBytes);
  });

  it('stops reading while the sink is full, also when every frame is small (compressed by the reader)', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 400; i++) files[`d${i}/f.txt`] = `file ${i}\n`;
    const dir = makeVolume('backpressure-small', files);
    const gate = gatedSink();
    let filesDone = 0;
    const p = packArchive({ volumes: [{ name: 'v', dir }], codec: 'zstd', onProgress: (x) => (filesDone = x.filesDone) }, gate.sink);
    await new Promise((r) => setTimeout(r, 1500));
    // Each directory starts a frame: 800 small frames, of which the reader may send a credit's worth.
    expect(filesDone).toBeLessThanOrEqual(20);
    gate.release();
    const r = await p;
    expect(r.index.totals.files).toBe(400);
    expect(gate.written()).toBe(r.storedBytes);
  });

  it("stops reading while the sink is full, also when the frames are the parent backup's (an incremental pack)", async () => {
    const files: Record<string, string | Buffer> = { 'a/first.bin': randomBytes(256 * 1024) };
    for (let i = 0; i < 400; i++) files[`d${i}/f.txt`] = `file ${i}\n`;
    const dir = makeVolume('backpressure-reuse', files);
    const parent = await packArchive({ volumes: [{ name: 'v', dir }], codec: 'zstd' }, nullSink());
    // A new first file: its frame waits for the gated sink, the 400 directories after it are the parent's frames.
    fs.writeFileSync(path.join(dir, 'a/first.bin'), randomBytes(256 * 1024));
    const gate = gatedSink();
    let filesDone = 0;
    const p = packArchive(
      {
        volumes: [{ name: 'v', dir }],
        codec: 'zstd',
        parent: { id: 'P', index: parent.index, objects: ['P'], rehashShare: 0 },
        onProgress: (x) => (filesDone = x.filesDone),
      },
      gate.sink,
    );
    await new Promise((r) => setTimeout(r, 1500));
    expect(filesDone).toBeLessThanOrEqual(40);
    gate.release();
    const r = await p;
    expect(r.index.totals.files).toBe(401);
    expect(r.index.blocks.filter((b) => b.object === 'P').length).toBeGreaterThan(400);
    parent.close();
  });

  it('is cancelled promptly by its AbortSignal', async () => {
    const dir = makeVolume('abort', { 'big.bin': randomBytes(64 * MiB) });
    const ac = new AbortController();
    const gate = gatedSink();
    const p = packArchive({ volumes: [{ name: 'v', dir }], signal: ac.signal }, gate.sink);
    await new Promise((r) => setTimeout(r, 300));
    const t = performance.now();
    ac.abort(new Error('user cancelled'));
    const err = await p.catch((e: unknown) => e);
    expect(performance.now() - t).toBeLessThan(1000);
    expect(isCairnError(err, 'cancelled')).toBe(true);
    expect((err as Error).message).toMatch(/user cancelled/);
    // The engine is usable right after.
    const r = await packArchive({ volumes: [{ name: 'v', dir: makeVolume('after-abort', { f: 'x' }) }] }, nullSink());
    expect(r.fileCount).toBe(1);
    const already = await packArchive({ volumes: [{ name: 'v', dir }], signal: AbortSignal.abort() }, nullSink()).catch((e: unknown) => e);
    expect(isCairnError(already, 'cancelled')).toBe(true);
  });

  it('is cancelled by an abort that lands while its threads are being started', async () => {
    const dir = makeVolume('abort-early', { 'big.bin': randomBytes(8 * MiB) });
    const ac = new AbortController();
    const gate = gatedSink();
    const p = packArchive({ volumes: [{ name: 'v', dir }], signal: ac.signal }, gate.sink);
    ac.abort(new Error('early cancel'));
    gate.release();
    const err = await p.catch((e: unknown) => e);
    expect(isCairnError(err, 'cancelled')).toBe(true);
    expect((err as Error).message).toMatch(/early cancel/);
  });

  it('fails when the sink fails', async () => {
    const dir = makeVolume('sinkfail', { 'big.bin': randomBytes(8 * MiB) });
    let n = 0;
    const sink = new Writable({
      write(_c, _e, cb) {
        cb(++n === 3 ? new Error('disk full') : null);
      },
    });
    const err = await packArchive({ volumes: [{ name: 'v', dir }], blockSize: MiB }, sink).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/disk full/);
  });
});

// Small files go through the native helper when it is built, everything else (and every file
// when it is not) through Node's fs calls: both must see the same troubles.
describe.each([
  ['native', '1'],
  ['plain-node', '0'],
])('files in trouble, %s reader', (label, flag) => {
  const before = process.env.CAIRN_NATIVE_READS;
  beforeAll(() => {
    process.env.CAIRN_NATIVE_READS = flag;
  });
  afterAll(() => {
    if (before === undefined) delete process.env.CAIRN_NATIVE_READS;
    else process.env.CAIRN_NATIVE_READS = before;
  });

  it('warns about files that change or vanish while the volume is read', async () => {
    // Files before the victims keep the reader busy until the gated sink is released, so the
    // changes land after the pre-scan and before the victims are read.
    const dir = makeVolume(`changing-${label}`, {
      'a-big.bin': randomBytes(24 * MiB),
      'z-grows.txt': 'short\n',
      'z-shrinks.txt': 'a longer content\n',
      'z-touched.txt': 'same size\n',
      'z-vanishes.txt': 'bye\n',
    });
    const gate = gatedSink();
    let scanned!: () => void;
    const scan = new Promise<void>((r) => (scanned = r));
    const p = packArchive({ volumes: [{ name: 'v', dir }], codec: 'none', blockSize: MiB, onProgress: () => scanned() }, gate.sink);
    await scan;
    fs.appendFileSync(path.join(dir, 'z-grows.txt'), 'more data\n');
    fs.writeFileSync(path.join(dir, 'z-shrinks.txt'), 'short\n');
    fs.writeFileSync(path.join(dir, 'z-touched.txt'), 'SAME SIZE\n');
    fs.unlinkSync(path.join(dir, 'z-vanishes.txt'));
    gate.release();
    const r: PackResult = await p;
    const byPath = Object.fromEntries(r.warnings.map((w) => [w.path, w.code]));
    expect(byPath).toEqual({ 'v/z-grows.txt': 'changed', 'v/z-shrinks.txt': 'changed', 'v/z-touched.txt': 'changed', 'v/z-vanishes.txt': 'vanished' });
    // Sizes stay those of the headers written: a shrunk file is padded, a grown one cut.
    expect(r.index.entries.find((e) => e.path === 'v/z-shrinks.txt')?.size).toBe(17);
    expect(r.index.entries.some((e) => e.path === 'v/z-vanishes.txt')).toBe(false);
  });

  it('skips unreadable files and directories with a warning instead of failing', async () => {
    const dir = makeVolume(`unreadable-${label}`, { 'ok.txt': 'fine', 'secret.txt': 'no', 'locked/inner.txt': 'no' });
    fs.chmodSync(dir, 0o755);
    fs.chmodSync(path.join(dir, 'secret.txt'), 0o000);
    fs.chmodSync(path.join(dir, 'locked'), 0o000);
    type Out = { warnings: { path: string; code: string }[]; paths: string[] };
    const child = new URL('./helpers/pack-child.ts', import.meta.url).pathname;
    const tsx = path.join(process.cwd(), 'node_modules', '.bin', 'tsx');
    // Root reads everything: run the packer as an unprivileged user instead.
    const opts = IS_ROOT ? { uid: 65534, gid: 65534, env: { PATH: process.env.PATH ?? '', CAIRN_NATIVE_READS: flag } } : {};
    const out = JSON.parse(execFileSync(tsx, [child, dir], { ...opts, encoding: 'utf8', cwd: process.cwd() })) as Out;
    expect(out.warnings.map((w) => [w.path, w.code]).sort()).toEqual([
      ['v/locked', 'unreadable'],
      ['v/secret.txt', 'unreadable'],
    ]);
    expect(out.paths).toEqual(['v', 'v/ok.txt', 'v/locked']);
    fs.chmodSync(path.join(dir, 'locked'), 0o755);
  });
});

describe('native helper', () => {
  it('refuses paths with a NUL inside and ranges outside the buffer; reports errno and the right digest', () => {
    const native = loadNativeReads(nativeAddonPath());
    expect(native, 'services/core/native was not built by npm install').toBeDefined();
    const dir = makeVolume('native-edges', { 'f.txt': 'hello' });
    const out = new Float64Array(Out.Slots);
    const digest = Buffer.alloc(32);
    const dst = Buffer.alloc(64, 0xff);
    const z = (p: string): Buffer => Buffer.from(`${p}\0`);
    native!.readSmallFile(z(path.join(dir, 'f.txt')), dst, 8, 5, 3, out, digest);
    expect(out[Out.OpenErrno]).toBe(0);
    expect(out[Out.Read]).toBe(5);
    expect(dst.subarray(8, 16)).toEqual(Buffer.from('hello\0\0\0'));
    expect(dst[16]).toBe(0xff);
    expect(digest.toString('hex')).toBe(createHash('sha256').update('hello').digest('hex'));
    // A NUL inside would otherwise open the shorter path silently.
    native!.readSmallFile(Buffer.from(`${path.join(dir, 'f.txt')}\0x\0`), dst, 0, 5, 0, out, digest);
    expect(out[Out.OpenErrno]).toBe(os.constants.errno.EINVAL);
    native!.readSmallFile(z(path.join(dir, 'gone.txt')), dst, 0, 5, 0, out, digest);
    expect(out[Out.OpenErrno]).toBe(os.constants.errno.ENOENT);
    expect(() => native!.readSmallFile(z(path.join(dir, 'f.txt')), dst, 60, 5, 0, out, digest)).toThrow(/range outside dst/);
    expect(native!.scanDir(z(path.join(dir, 'nope')))).toBe(os.constants.errno.ENOENT);
    expect(native!.scanDir(Buffer.from(`${dir}\0x\0`))).toBe(os.constants.errno.EINVAL);
    const listing = native!.scanDir(z(dir));
    expect(Array.isArray(listing) && listing[0].toString()).toBe('f.txt');
    // Relative to a directory descriptor: the same read, and the same errno for a missing name.
    const dirfd = native!.openDir!(z(dir));
    expect(dirfd).toBeGreaterThanOrEqual(0);
    try {
      dst.fill(0xff);
      native!.readSmallFile(z('f.txt'), dst, 0, 5, 0, out, digest, dirfd);
      expect([out[Out.OpenErrno], out[Out.Read], dst.subarray(0, 5).toString()]).toEqual([0, 5, 'hello']);
      native!.readSmallFile(z('gone.txt'), dst, 0, 5, 0, out, digest, dirfd);
      expect(out[Out.OpenErrno]).toBe(os.constants.errno.ENOENT);
    } finally {
      native!.closeDir!(dirfd);
    }
    expect(native!.openDir!(z(path.join(dir, 'f.txt')))).toBe(-os.constants.errno.ENOTDIR);
    expect(native!.openDir!(z(path.join(dir, 'nope')))).toBe(-os.constants.errno.ENOENT);
  });

  it("hashes one stream into two sha256 contexts at once, matching OpenSSL's digests", () => {
    const native = loadNativeReads(nativeAddonPath())!;
    if (native.sha256Dual !== 1) return void expect(native.sha256Dual).toBe(0); // a CPU without the SHA extensions
    const ctx = (): Uint8Array => {
      const c = new Uint8Array(new ArrayBuffer(104));
      native.sha256Init!(c);
      return c;
    };
    const hex = (c: Uint8Array): string => {
      const d = Buffer.alloc(32);
      native.sha256Final!(c, d);
      return d.toString('hex');
    };
    for (const len of [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 70_001]) {
      const data = randomBytes(len);
      const a = ctx();
      const b = ctx();
      // Uneven pieces: the 64-byte block buffer is filled across calls.
      for (let i = 0, k = 1; i < len; i += k, k = (k * 7 + 3) % 300) native.sha256Update!(data.subarray(i, i + k), a, b);
      const want = createHash('sha256').update(data).digest('hex');
      expect([hex(a), hex(b)]).toEqual([want, want]);
      const single = ctx();
      native.sha256Update!(data, single, null);
      expect(hex(single)).toBe(want);
    }
    const a = ctx();
    const b = ctx();
    native.sha256Update!(Buffer.from('x'), a, null);
    expect(() => native.sha256Update!(Buffer.from('y'), a, b)).toThrow(/different block offsets/);
    expect(() => native.sha256Init!(new Uint8Array(100))).toThrow(/104-byte/);
  });

  it("hashes many ranges of a buffer two at a time, matching OpenSSL's digests", () => {
    const native = loadNativeReads(nativeAddonPath())!;
    if (native.sha256Dual !== 1) return void expect(native.sha256Dual).toBe(0);
    const base = randomBytes(256 * 1024);
    // Lengths around the padding edges, uneven so the two lanes end at different times; an odd count.
    const lengths = [0, 1, 55, 56, 63, 64, 65, 119, 120, 4000, 16_384, 70_001, 3];
    const spans = new Float64Array(2 * lengths.length);
    let at = 0;
    lengths.forEach((len, i) => {
      spans[2 * i] = at;
      spans[2 * i + 1] = len;
      at += len + 7;
    });
    const digests = Buffer.alloc(32 * lengths.length);
    native.sha256Spans!(base, spans, lengths.length, digests);
    lengths.forEach((len, i) => {
      const want = createHash('sha256')
        .update(base.subarray(spans[2 * i]!, spans[2 * i]! + len))
        .digest('hex');
      expect(digests.toString('hex', 32 * i, 32 * i + 32)).toBe(want);
    });
    expect(() => native.sha256Spans!(base, new Float64Array([base.length - 1, 2]), 1, digests)).toThrow(/outside base/);
    expect(() => native.sha256Spans!(base, spans, lengths.length, Buffer.alloc(32))).toThrow(/too small/);
  });

  it('is built here and writes byte-identical archives to the plain-Node reader', async () => {
    expect(nativeAddonPath(), 'services/core/native was not built by npm install (see scripts/build-native.mjs)').toBeDefined();
    const files: Record<string, Buffer> = {};
    // Sizes around the record and block edges, so some files fit their block and some do not.
    for (let i = 0; i < 300; i++) files[`d${i % 7}/f${i}.bin`] = randomBytes([0, 1, 511, 512, 513, 4096, 70_000, 130_000][i % 8]!);
    files['big.bin'] = randomBytes(3 * MiB);
    const dir = makeVolume('native-same', files);
    // What the scan tells apart: links, an empty directory, a FIFO (skipped with a warning).
    fs.symlinkSync('d1/f1.bin', path.join(dir, 'link'));
    fs.symlinkSync('nowhere', path.join(dir, 'dangling'));
    fs.linkSync(path.join(dir, 'd2/f2.bin'), path.join(dir, 'd5/hard.bin'));
    fs.mkdirSync(path.join(dir, 'empty'));
    execFileSync('mkfifo', [path.join(dir, 'd4/pipe')]);
    const pack = async (flag: string): Promise<PackResult> => {
      const before = process.env.CAIRN_NATIVE_READS;
      process.env.CAIRN_NATIVE_READS = flag;
      try {
        return await packArchive({ volumes: [{ name: 'v', dir }], codec: 'zstd', blockSize: 256 * 1024 }, nullSink());
      } finally {
        if (before === undefined) delete process.env.CAIRN_NATIVE_READS;
        else process.env.CAIRN_NATIVE_READS = before;
      }
    };
    const nat = await pack('1');
    const js = await pack('0');
    expect(nat.index.totals).toMatchObject({ files: 301, symlinks: 2, hardlinks: 1 });
    expect(nat.warnings.map((w) => [w.path, w.code])).toEqual([['v/d4/pipe', 'skipped-type']]);
    expect(nat.sha256).toBe(js.sha256);
    expect(nat.index.entries).toEqual(js.index.entries);
    expect(nat.warnings).toEqual(js.warnings);
    const want = createHash('sha256').update(files['d3/f3.bin']!).digest('hex');
    expect(nat.index.entries.find((e) => e.path === 'v/d3/f3.bin')?.sha256).toBe(want);
  });
});

describe('large trees: memory does not grow with the number of files', () => {
  /** 1200 files in 60 directories (the root's children span many small chunks), a deep subdirectory, hard links across chunks. */
  function bigTree(name: string): { dir: string; bytes: number } {
    const files: Record<string, string> = {};
    let bytes = 0;
    for (let i = 0; i < 1200; i++) {
      const body = `file ${i}\n`.repeat(i % 5);
      files[`d${String(i % 60).padStart(2, '0')}/f${String(i).padStart(4, '0')}.txt`] = body;
      bytes += body.length;
    }
    files['d00/zz-sub/deep/x.txt'] = 'deep';
    files['z/y.txt'] = 'why';
    bytes += 7;
    const dir = makeVolume(name, files);
    // The first name is early in the walk; its other names come many chunks later.
    fs.linkSync(path.join(dir, 'd03/f0003.txt'), path.join(dir, 'z/hard-1.txt'));
    fs.linkSync(path.join(dir, 'd03/f0003.txt'), path.join(dir, 'd00/zz-sub/deep/hard-2.txt'));
    return { dir, bytes };
  }

  it('walks in small self-contained chunks, counts ahead for the totals and waits for the reader: same archive as one big window', async () => {
    const { dir, bytes } = bigTree('chunked');
    const seen: ArchiveProgress[] = [];
    const small = await packArchive(
      { volumes: [{ name: 'v', dir }], blockSize: 64 * 1024, scanWindow: { chunkItems: 16, chunksAhead: 2 }, onProgress: (p) => seen.push(p) },
      nullSink(),
    );
    const wide = await packArchive(
      { volumes: [{ name: 'v', dir }], blockSize: 64 * 1024, scanWindow: { chunkItems: 1 << 20, chunksAhead: 1 << 20 } },
      nullSink(),
    );
    // The walk ran ahead of the reader, so it counted the rest for the totals: the true ones, in every report.
    expect(seen.length).toBeGreaterThan(0);
    for (const p of seen) expect(p).toMatchObject({ bytesTotal: bytes, filesTotal: 1202 });
    expect(seen.at(-1)).toEqual({ bytesDone: bytes, bytesTotal: bytes, filesDone: 1202, filesTotal: 1202 });
    expect(small.index.entries).toEqual(wide.index.entries);
    expect(small.sha256).toBe(wide.sha256);
    const byPath = new Map(small.index.entries.map((e) => [e.path, e]));
    expect(byPath.get('v/d00/zz-sub/deep')?.type).toBe('dir');
    expect(byPath.get('v/d00/zz-sub/deep/x.txt')?.size).toBe(4);
    expect(byPath.get('v/d59/f1199.txt')?.size).toBe(`file 1199\n`.length * 4);
    // d03's first file is linked from a directory walked before it and from one walked long after.
    expect(byPath.get('v/d00/zz-sub/deep/hard-2.txt')).toMatchObject({ type: 'file', size: 'file 3\n'.repeat(3).length });
    expect(byPath.get('v/d03/f0003.txt')).toMatchObject({ type: 'hardlink', linkTarget: 'v/d00/zz-sub/deep/hard-2.txt' });
    expect(byPath.get('v/z/hard-1.txt')).toMatchObject({ type: 'hardlink', linkTarget: 'v/d00/zz-sub/deep/hard-2.txt' });
    expect(small.index.totals).toMatchObject({ entries: 1204 + 64, files: 1202, hardlinks: 2, dirs: 64 });
    // GNU tar reads the chunked archive's entries the same way.
    const file = path.join(work, 'chunked.tar.zst');
    const out = fs.createWriteStream(file);
    await packArchive({ volumes: [{ name: 'v', dir }], scanWindow: { chunkItems: 16, chunksAhead: 2 } }, out);
    const listing = execFileSync('tar', ['--zstd', '-tvf', file], { encoding: 'utf8', maxBuffer: 16 << 20 });
    expect(listing).toMatch(/^h.* v\/z\/hard-1\.txt link to v\/d00\/zz-sub\/deep\/hard-2\.txt$/m);
    expect(listing.trim().split('\n')).toHaveLength(small.index.totals.entries);
  });

  it('keeps the entries in a temporary file: streamed index = encodeIndex of the whole index; released by close()', async () => {
    const { dir } = bigTree('spill');
    const r = await packArchive({ volumes: [{ name: 'v', dir }], blockSize: 16 * 1024 }, nullSink());
    let batches = 0;
    let count = 0;
    for (const b of r.entries()) {
      batches++;
      count += b.length;
    }
    expect(batches).toBeGreaterThan(3);
    expect(count).toBe(r.head.totals.entries);
    expect(r.head).not.toHaveProperty('entries');
    const streamed: Buffer[] = [];
    for await (const c of r.indexStream()) streamed.push(c as Buffer);
    const decoded = decodeIndex(Buffer.concat(streamed));
    expect(decoded).toEqual(r.index);
    expect(decoded).toEqual(decodeIndex(encodeIndex(r.index)));
    r.close();
    expect(() => [...r.entries()]).toThrow(/released/);
  });
});

describe('jobs side by side in one process', () => {
  it('share the codec workers: one cancelled mid-way leaves the other whole', async () => {
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 40; i++) files[`f${i}.bin`] = randomBytes(256 * 1024);
    const dir = makeVolume('side-by-side', files);
    const opts = { volumes: [{ name: 'v', dir }], codec: 'zstd' as const, blockSize: 64 * 1024 };
    const alone = await packArchive(opts, nullSink());
    const host = sharedWorkerHost();
    const a = await host.acquireCodecs(2);
    const b = await host.acquireCodecs(2);
    expect(b).toEqual(a); // the same threads, not two more
    host.releaseCodecs();
    host.releaseCodecs();

    const ac = new AbortController();
    const gate = gatedSink();
    const cancelled = packArchive({ ...opts, signal: ac.signal }, gate.sink).catch((e: unknown) => e);
    const other = packArchive(opts, nullSink());
    await new Promise((r) => setTimeout(r, 50));
    ac.abort();
    const err = await cancelled;
    expect(isCairnError(err) && err.code).toBe('cancelled');
    gate.release();
    const r = await other;
    expect(r.sha256).toBe(alone.sha256);
    expect(r.index.entries).toEqual(alone.index.entries);
  });
});

describe('small blocks', () => {
  // Most are a directory's headers, a frame of their own: the reader compresses them itself.
  it.each([
    ['zstd', MiB, 3],
    ['gzip', MiB, 6],
    ['none', MiB, 0],
    // Small blocks: most end early, and only those under a sixteenth of one stay in the reader.
    ['zstd', 64 * 1024, 3],
    // A slow level: at most 4 KiB is compressed by the reader.
    ['zstd', MiB, 12],
  ] as const)('%s, %d-byte blocks, level %d: frames under inlineBelow skip the codec threads, and the archive is whole', async (codec, blockSize, level) => {
    const files: Record<string, Buffer> = { 'big.bin': randomBytes(3 * MiB) };
    for (let d = 0; d < 40; d++) for (let f = 0; f < 3; f++) files[`d${d}/f${f}.txt`] = Buffer.from(`file ${d}/${f} `.repeat(50 + d * f));
    const dir = makeVolume(`small-blocks-${codec}-${blockSize}-${level}`, files);
    const chunks: Buffer[] = [];
    const sink = new Writable({
      write(c: Buffer, _e, cb) {
        chunks.push(c);
        cb();
      },
    });
    const run = vi.spyOn(CodecPool.prototype, 'run');
    let r: PackResult;
    let compressTasks: number;
    try {
      r = await packArchive({ volumes: [{ name: 'v', dir }], codec, blockSize, level }, sink);
      compressTasks = run.mock.calls.filter(([t]) => t.op === 'compress').length;
    } finally {
      run.mockRestore();
    }
    const blocks = r.index.blocks;
    const below = inlineBelow(blockSize, level);
    expect(below).toBe(blockSize < MiB ? 4096 : level > 9 ? 4096 : INLINE_BELOW);
    const small = blocks.filter((b) => b.uncompressedLength < below);
    expect(small.length).toBeGreaterThan(40);
    expect(blocks.length - small.length).toBeGreaterThan(blockSize < MiB ? 40 : 2);
    expect(compressTasks).toBe(codec === 'none' ? blocks.length : blocks.length - small.length);
    const stored = Buffer.concat(chunks);
    expect(createHash('sha256').update(stored).digest('hex')).toBe(r.sha256);
    // Every frame where the table says, decoding to its length; GNU tar extracts the whole.
    const archive = path.join(work, `small-blocks-${blockSize}-${level}.${codec}`);
    fs.writeFileSync(archive, stored);
    for (const b of small.slice(0, 5)) {
      const frame = stored.subarray(b.compressedOffset, b.compressedOffset + b.compressedLength);
      const tool = codec === 'zstd' ? ['zstd', ['-dc']] : codec === 'gzip' ? ['gzip', ['-dc']] : ['cat', []];
      expect(execFileSync(tool[0] as string, tool[1] as string[], { input: frame }).length).toBe(b.uncompressedLength);
    }
    const out = fs.mkdtempSync(path.join(work, 'x-'));
    execFileSync('tar', ['-xf', archive, '-C', out, ...(codec === 'zstd' ? ['--zstd'] : codec === 'gzip' ? ['-z'] : [])]);
    for (const [rel, data] of Object.entries(files)) expect(fs.readFileSync(path.join(out, 'v', rel)).equals(data), rel).toBe(true);
    r.close();
  });
});
