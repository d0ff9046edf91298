/**
 * Pack -> unpack gives back the identical tree (type, size, mode, ns mtime, link target,
 * content, hard-link groups, ownership as root), for every codec; GNU tar extracts the same
 * archives to the same tree and lists what the index says.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeIndex, encodeIndex, unpackArchive, type Codec, type PackResult } from '@cairn/core/archive/index.ts';
import { gnuTarList, packToFile } from './helpers/archive.ts';
import { buildFixture, diffSnapshots, IS_ROOT, snapshot, sparseSha, type Fixture, type Snapshot } from './helpers/tree.ts';

const SPARSE_SIZE = 8 * 1024 ** 3 + 256 * 1024 ** 2; // past the 8 GiB ustar size limit
const GIB = 1024 ** 3;

let work: string;
let fx: Fixture;
let logs: string;
let source: Snapshot;
let logsSource: Snapshot;

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-rt-'));
  fx = await buildFixture(path.join(work, 'src', 'data'), { sparseSize: SPARSE_SIZE });
  logs = path.join(work, 'src', 'logs');
  fs.mkdirSync(path.join(logs, 'app'), { recursive: true });
  fs.writeFileSync(path.join(logs, 'app', 'current.log'), 'log line\n'.repeat(1000));
  fs.writeFileSync(path.join(logs, 'app', 'scratch.tmp'), 'excluded\n');
  fs.mkdirSync(path.join(logs, 'cache', 'deep'), { recursive: true });
  fs.writeFileSync(path.join(logs, 'cache', 'deep', 'x'), 'excluded subtree\n');
  const special = new Set(fx.special);
  source = snapshot(fx.root, { hashLimit: GIB, skip: (rel) => special.has(rel) });
  logsSource = snapshot(logs, { skip: (rel) => rel.endsWith('.tmp') || rel === 'cache' || rel.startsWith('cache/') });
}, 120_000);

afterAll(async () => {
  await fx?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

function volumes(withSparse: boolean) {
  return [
    { name: 'data', dir: fx.root, excludes: withSparse ? [] : ['/sparse.img'] },
    { name: 'logs', dir: logs, excludes: ['*.tmp', 'cache/'] },
  ];
}

function withoutSparse(s: Snapshot): Snapshot {
  const m = new Map(s);
  m.delete('sparse.img');
  return m;
}

function checkPackResult(r: PackResult, codec: Codec, withSparse: boolean): void {
  const ix = r.index;
  expect(ix.codec).toBe(codec);
  expect(ix.sha256).toBe(r.sha256);
  expect(ix.totals.storedBytes).toBe(r.storedBytes);
  // Every entry of the snapshot is in the index, plus the two volume roots.
  const want = (withSparse ? source : withoutSparse(source)).size + logsSource.size + 2;
  expect(ix.entries.length).toBe(want);
  expect(ix.volumes.map((v) => [v.name, v.empty])).toEqual([
    ['data', false],
    ['logs', false],
  ]);
  // Special files are skipped with the reason.
  for (const rel of fx.special) {
    const w = r.warnings.find((x) => x.path === `data/${rel}`);
    expect(w?.code, rel).toBe('skipped-type');
    expect(w?.message).toMatch(/FIFO|socket|device/);
  }
  expect(r.warnings.filter((w) => w.code !== 'skipped-type')).toEqual([]);
  // Blocks tile the stored archive and the tar stream without gaps.
  let c = 0;
  let u = 0;
  for (const b of ix.blocks) {
    expect(b.compressedOffset).toBe(c);
    expect(b.uncompressedOffset).toBe(u);
    c += b.compressedLength;
    u += b.uncompressedLength;
  }
  expect(c).toBe(r.storedBytes);
  expect(u).toBe(ix.totals.tarBytes);
  // Hard links: content once, later names link to the first.
  const hard = ix.entries.filter((e) => e.path.startsWith('data/hard-') || e.path === 'data/nested/hard-b');
  expect(hard.map((e) => [e.path, e.type, e.linkTarget])).toEqual([
    ['data/hard-a', 'file', undefined],
    ['data/hard-c', 'hardlink', 'data/hard-a'],
    ['data/nested/hard-b', 'hardlink', 'data/hard-a'],
  ]);
  expect(ix.entries.find((e) => e.path === 'data/nested/a')?.uid).toBe(IS_ROOT ? 4321 : ix.entries.find((e) => e.path === 'data/nested/a')?.uid);
  // The index survives its own encoding.
  expect(decodeIndex(encodeIndex(ix))).toEqual(ix);
}

function expectSameTree(restoredRoot: string, want: Snapshot): void {
  const got = snapshot(restoredRoot, { hashLimit: GIB });
  expect(diffSnapshots(want, got, { ownership: IS_ROOT })).toEqual([]);
}

describe('pack and unpack', () => {
  it('zstd: the full tree, with an 8.25 GiB sparse file, comes back identical', async () => {
    const archive = path.join(work, 'full.tar.zst');
    const r = await packToFile({ volumes: volumes(true), codec: 'zstd', blockSize: 1024 * 1024 }, archive);
    checkPackResult(r, 'zstd', true);
    const sparse = r.index.entries.find((e) => e.path === 'data/sparse.img')!;
    expect(sparse.size).toBe(SPARSE_SIZE);
    expect(sparse.sha256).toBe(sparseSha(fx.sparse!));
    // Mostly zeros: the archive is small although the tar stream is over 8 GiB.
    expect(r.index.totals.tarBytes).toBeGreaterThan(SPARSE_SIZE);
    expect(r.storedBytes).toBeLessThan(64 * 1024 * 1024);

    const target = path.join(work, 'restore-full');
    const u = await unpackArchive({ target, index: r.index, source: { stream: fs.createReadStream(archive) } });
    expect(u.archiveVerified).toBe(true);
    expect(u.warnings).toEqual([]);
    expectSameTree(path.join(target, 'data'), source);
    expectSameTree(path.join(target, 'logs'), logsSource);
    // The restored sparse file is sparse again and holds the markers where they were.
    const restored = path.join(target, 'data', fx.sparse!.rel);
    const st = fs.statSync(restored);
    expect(st.size).toBe(SPARSE_SIZE);
    expect(st.blocks * 512).toBeLessThan(64 * 1024 * 1024);
    const fd = fs.openSync(restored, 'r');
    for (const m of fx.sparse!.markers) {
      const buf = Buffer.alloc(m.data.length);
      fs.readSync(fd, buf, 0, buf.length, m.offset);
      expect(buf.equals(m.data)).toBe(true);
    }
    fs.closeSync(fd);
    fs.rmSync(target, { recursive: true, force: true });

    // GNU tar reads the > 8 GiB size from the PAX header.
    const listed = gnuTarList(archive, 'zstd');
    expect(listed.find((l) => l.path === 'data/sparse.img')?.size).toBe(SPARSE_SIZE);
  }, 240_000);

  for (const codec of ['none', 'gzip', 'zstd'] as const) {
    it(`${codec}: round trip, and GNU tar extracts and lists the same archive`, async () => {
      const archive = path.join(work, `plain.${codec}`);
      const r = await packToFile({ volumes: volumes(false), codec, blockSize: 64 * 1024 }, archive);
      checkPackResult(r, codec, false);
      expect(r.index.blocks.length).toBeGreaterThan(50);
      if (codec === 'none') {
        expect(r.storedBytes).toBe(r.index.totals.tarBytes);
        expect(r.index.blocks.every((b) => typeof b.sha256 === 'string')).toBe(true);
      } else {
        expect(r.storedBytes).toBeLessThan(r.index.totals.tarBytes);
      }

      const target = path.join(work, `restore-${codec}`);
      const u = await unpackArchive({ target, index: r.index, source: { stream: fs.createReadStream(archive) }, expectedSha256: r.sha256 });
      expect(u.archiveVerified).toBe(true);
      expect(u.filesWritten).toBe(r.index.entries.filter((e) => e.type === 'file' || e.type === 'hardlink').length);
      expectSameTree(path.join(target, 'data'), withoutSparse(source));
      expectSameTree(path.join(target, 'logs'), logsSource);

      // GNU tar, the way an operator would extract a downloaded archive.
      const gnu = path.join(work, `gnu-${codec}`);
      fs.mkdirSync(gnu);
      if (codec === 'none') execFileSync('tar', ['--warning=no-timestamp', '-xf', archive, '-C', gnu]);
      else if (codec === 'gzip') execFileSync('tar', ['--warning=no-timestamp', '-xzf', archive, '-C', gnu]);
      else execFileSync('sh', ['-c', `zstd -dc '${archive}' | tar --warning=no-timestamp -x -C '${gnu}'`]);
      expectSameTree(path.join(gnu, 'data'), withoutSparse(source));
      expectSameTree(path.join(gnu, 'logs'), logsSource);
      if (codec === 'zstd') {
        // GNU tar also recognises the concatenated frames itself.
        const gnu2 = path.join(work, 'gnu-zstd-auto');
        fs.mkdirSync(gnu2);
        execFileSync('tar', ['--warning=no-timestamp', '--zstd', '-xf', archive, '-C', gnu2]);
        expectSameTree(path.join(gnu2, 'data'), withoutSparse(source));
      }

      // tar's own listing matches the index: names (raw bytes), types, sizes, modes, link targets.
      const listed = gnuTarList(archive, codec === 'none' ? undefined : codec);
      const typeChar = { file: '-', dir: 'd', symlink: 'l', hardlink: 'h' } as const;
      expect(listed.map((l) => [l.path, l.type, l.type === '-' ? l.size : 0, l.link ?? null])).toEqual(
        r.index.entries.map((e) => [e.path, typeChar[e.type], e.size, e.linkTarget ?? null]),
      );
      const modeString = (m: string): number => {
        let v = 0;
        const bits = [0o400, 0o200, 0o100, 0o40, 0o20, 0o10, 0o4, 0o2, 0o1];
        for (let i = 0; i < 9; i++) if (m[i] !== '-') v |= bits[i]!;
        if (/[sS]/.test(m[2]!)) v |= 0o4000;
        if (/[sS]/.test(m[5]!)) v |= 0o2000;
        if (/[tT]/.test(m[8]!)) v |= 0o1000;
        if (m[2] === 'S') v &= ~0o100;
        if (m[5] === 'S') v &= ~0o10;
        if (m[8] === 'T') v &= ~0o1;
        return v;
      };
      const files = r.index.entries.filter((e) => e.type !== 'symlink');
      expect(listed.filter((l) => l.type !== 'l').map((l) => modeString(l.mode))).toEqual(files.map((e) => e.mode));
      fs.rmSync(target, { recursive: true, force: true });
    }, 120_000);
  }
});

describe('headers longer than a block', () => {
  // 4 KiB blocks and a ~3,900-byte path: its pax record, headers and padding (5 KiB) span two
  // blocks, so the extractor's parser holds the first block's part while the next arrives; that
  // block's buffer must not go back for reuse (a zstd decode into it) until the record is whole.
  for (const codec of ['zstd', 'none'] as const) {
    it(`${codec}: a path longer than the block size round-trips`, async () => {
      const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-rt-long-'));
      try {
        const deep = Array.from({ length: 16 }, (_, k) => `${k}`.padEnd(240, 'z')).join('/');
        fs.mkdirSync(path.join(root, 'src', deep), { recursive: true });
        fs.writeFileSync(path.join(root, 'src', deep, 'last.txt'), 'deep content'.repeat(50));
        fs.mkdirSync(path.join(root, 'src', 'flat'));
        for (let i = 0; i < 30; i++) fs.writeFileSync(path.join(root, 'src', 'flat', `f${i}.txt`), `content ${i} `.repeat(1 + ((i * 13) % 400)));
        const archive = path.join(root, `long.${codec}`);
        const r = await packToFile({ volumes: [{ name: 'data', dir: path.join(root, 'src') }], codec, blockSize: 4096 }, archive);
        const long = r.index.entries.find((e) => e.path.endsWith('/last.txt'))!;
        expect(long.dataOffset - long.headerOffset).toBeGreaterThan(4096);
        const target = path.join(root, 'out');
        const u = await unpackArchive({ target, index: r.index, source: { stream: fs.createReadStream(archive) }, expectedSha256: r.sha256 });
        expect(u.filesWritten).toBe(31);
        expectSameTree(path.join(target, 'data'), snapshot(path.join(root, 'src')));
      } finally {
        fs.rmSync(root, { recursive: true, force: true });
      }
    }, 60_000);
  }
});
