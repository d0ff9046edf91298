/**
 * Small files written by the codec workers (direct-writes.ts): the tree is the same as when the
 * extract worker writes every file, a later entry at a path still wins over a file written
 * ahead, and nothing is written through a symlink or over what is in the way.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileSource, packArchive, unpackArchive, type ArchiveIndex } from '@cairn/core/archive/index.ts';
import { applyDirectWrites, DirectWrites } from '@cairn/core/archive/direct-writes.ts';
import { encodeContentChecks } from '@cairn/core/archive/content-checks.ts';
import type { PlanItem } from '@cairn/core/archive/extractor.ts';
import { loadNativeReads, nativeAddonPath } from '@cairn/core/archive/native-reads.ts';
import { craftArchive, rawTar } from './helpers/archive.ts';
import { snapshot } from './helpers/tree.ts';
import { createHash } from 'node:crypto';

let work: string;
let n = 0;
const fresh = (what: string): string => path.join(work, `${what}-${++n}`);

const T = 1_700_000_000_123_456_789n;
const base = { mode: 0o640, uid: 0, gid: 0, mtimeNs: T };
const dir = (p: string) => ({ ...base, mode: 0o755, type: 'dir' as const, path: p });
const file = (p: string, data: string) => ({ ...base, type: 'file' as const, path: p, data: Buffer.from(data) });
const symlink = (p: string, target: string) => ({ ...base, mode: 0o777, type: 'symlink' as const, path: p, linkTarget: target });

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-direct-'));
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

async function restore(index: ArchiveIndex, archive: Buffer, target: string, directWrites = true): Promise<unknown> {
  try {
    await unpackArchive({ target, index, source: { stream: Readable.from([archive]) }, directWrites });
  } catch (err) {
    return err;
  }
  return undefined;
}

describe('files written by the codec workers', () => {
  it('restore the same tree as the extract worker alone', async () => {
    const src = fresh('src');
    for (let d = 0; d < 12; d++) {
      fs.mkdirSync(path.join(src, `d${d}`, 'deep'), { recursive: true });
      for (let f = 0; f < 40; f++) fs.writeFileSync(path.join(src, `d${d}`, f % 2 ? 'deep' : '.', `f${f}`), `content ${d}/${f}\n`.repeat(1 + f * 30));
      fs.chmodSync(path.join(src, `d${d}`, 'f2'), 0o600);
      fs.utimesSync(path.join(src, `d${d}`, 'f4'), new Date(1_600_000_000_000), new Date(1_600_000_000_000));
    }
    fs.mkdirSync(path.join(src, 'empty-dir'));
    fs.writeFileSync(path.join(src, 'empty-file'), '');
    const archive = path.join(work, `a-${++n}.tar.zst`);
    const packed = await packArchive({ volumes: [{ name: 'data', dir: src }], codec: 'zstd', blockSize: 16 * 1024 }, fs.createWriteStream(archive));
    const index = packed.index;
    const direct = fresh('direct');
    const alone = fresh('alone');
    const a = await unpackArchive({ target: direct, index, source: fileSource(archive) });
    const b = await unpackArchive({ target: alone, index, source: fileSource(archive), directWrites: false });
    expect(a.filesWritten).toBe(b.filesWritten);
    expect(a.bytesWritten).toBe(b.bytesWritten);
    expect(a.warnings).toEqual(b.warnings);
    const want = snapshot(src);
    expect(snapshot(path.join(direct, 'data'))).toEqual(want);
    expect(snapshot(path.join(alone, 'data'))).toEqual(want);
  });

  it('a later entry at the same path wins, in one block or across blocks', async () => {
    const entries = [
      dir('data'),
      file('data/a', 'first\n'),
      symlink('data/s', '/etc/passwd'),
      file('data/p', 'a file where a directory comes later\n'),
      dir('data/p'),
      file('data/p/x', 'x\n'),
      file('data/a', 'second\n'),
      file('data/s', 'not a symlink\n'),
      file('data/late', 'one\n'),
      ...Array.from({ length: 8 }, (_, i) => file(`data/pad${i}`, 'p'.repeat(700))),
      symlink('data/late', 'elsewhere'),
    ];
    for (const blockSize of [undefined, 512, 1536]) {
      const { archive, index } = craftArchive(rawTar(entries), ['data'], 'none', blockSize);
      const target = fresh(`dup-${blockSize ?? 'one'}`);
      expect(await restore(index, archive, target)).toBeUndefined();
      expect(fs.readFileSync(path.join(target, 'data', 'a'), 'utf8')).toBe('second\n');
      expect(fs.lstatSync(path.join(target, 'data', 's')).isFile()).toBe(true);
      expect(fs.readFileSync(path.join(target, 'data', 's'), 'utf8')).toBe('not a symlink\n');
      expect(fs.readFileSync(path.join(target, 'data', 'p', 'x'), 'utf8')).toBe('x\n');
      expect(fs.readlinkSync(path.join(target, 'data', 'late'))).toBe('elsewhere');
    }
  });

  it('a file in the way in the target is replaced, a symlink in the way of a parent refuses the restore', async () => {
    const entries = [dir('data'), dir('data/sub'), file('data/sub/f', 'new\n'), file('data/g', 'g\n')];
    const { archive, index } = craftArchive(rawTar(entries), ['data']);
    const target = fresh('existing');
    fs.mkdirSync(path.join(target, 'data', 'sub'), { recursive: true });
    fs.writeFileSync(path.join(target, 'data', 'sub', 'f'), 'old\n');
    expect(await restore(index, archive, target)).toBeUndefined();
    expect(fs.readFileSync(path.join(target, 'data', 'sub', 'f'), 'utf8')).toBe('new\n');

    const outside = fresh('outside');
    fs.mkdirSync(outside);
    const linked = fresh('linked');
    fs.mkdirSync(path.join(linked, 'data'), { recursive: true });
    fs.symlinkSync(outside, path.join(linked, 'data', 'sub'));
    // No entry for data/sub itself (one would replace the symlink with a directory).
    const implicit = craftArchive(rawTar([dir('data'), file('data/sub/f', 'new\n'), file('data/g', 'g\n')]), ['data']);
    const err = await restore(implicit.index, implicit.archive, linked);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/symlink/);
    expect(fs.readdirSync(outside)).toEqual([]);
  });
});

describe('DirectWrites', () => {
  const item = (p: Partial<PlanItem> & { path: string }, at: number): PlanItem => ({
    headerOffset: at,
    dataOffset: at + 512,
    type: 'file',
    size: 10,
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: T.toString(),
    sha256: 'ab'.repeat(32),
    ...p,
  });

  it('leaves out files whose path, or a parent path, an unsettled entry has', () => {
    const w = new DirectWrites({ roots: { data: '/r' }, restoreOwnership: false, token: 't' });
    const first = [item({ path: 'data/a' }, 0), item({ path: 'data/f', type: 'symlink', size: 0 }, 1024), item({ path: 'data/d', type: 'dir', size: 0 }, 2048)];
    w.planned(first, 4096);
    const second = [item({ path: 'data/a' }, 4096), item({ path: 'data/f/x' }, 5120), item({ path: 'data/d/y' }, 6144), item({ path: 'data/b' }, 7168)];
    w.planned(second, 8192);
    const paths = (files: PlanItem[] | undefined) => (files ?? []).map((p) => p.path);
    // Both data/a are unsettled; data/f is a symlink (not a directory) parent; data/d is a directory.
    expect(paths(w.encode(second)?.files)).toEqual(['data/d/y', 'data/b']);
    w.acked();
    // The first block is done: its entries are settled (what is at their paths now is in the way, on disk).
    expect(paths(w.encode(second)?.files)).toEqual(['data/a', 'data/f/x', 'data/d/y', 'data/b']);
    expect(w.encode([item({ path: 'data/big', size: 2 * 1024 * 1024 }, 9000), item({ path: 'data/h', outputs: ['data/h', 'data/k'] }, 9000)])).toBeUndefined();
  });

  it.runIf(loadNativeReads(nativeAddonPath())?.writeFile)('the worker side writes the checked files, and leaves what it cannot to the extractor', () => {
    const root = fresh('root');
    fs.mkdirSync(root);
    const outside = fresh('out');
    fs.mkdirSync(outside);
    fs.symlinkSync(outside, path.join(root, 'link'));
    fs.writeFileSync(path.join(root, 'taken'), 'old');
    const block = Buffer.from('hello worldsecond filethird');
    const files = [
      item({ path: 'data/new/deep/hello', size: 11, dataOffset: 0, mode: 0o600 }, 0),
      item({ path: 'data/link/escape', size: 11, dataOffset: 11 }, 0),
      item({ path: 'data/taken', size: 5, dataOffset: 22 }, 0),
    ];
    for (const f of files)
      f.sha256 = createHash('sha256')
        .update(block.subarray(f.dataOffset, f.dataOffset + f.size))
        .digest('hex');
    const w = new DirectWrites({ roots: { data: root }, restoreOwnership: false, token: `t${n}` });
    w.planned(files.slice(0, 1), 0);
    const enc = w.encode(files)!;
    // Only the first is alone among unsettled entries (the others were not planned here); plan them too.
    expect(enc.files.map((f) => f.path)).toEqual(['data/new/deep/hello']);
    const w2 = new DirectWrites({ roots: { data: root }, restoreOwnership: false, token: `t${n}` });
    w2.planned(files, 64);
    const all = w2.encode(files)!;
    const results = applyDirectWrites(block, encodeContentChecks(files, 0), all.buf, `t${n}`, loadNativeReads(nativeAddonPath()));
    expect([...new Int32Array(results)]).toEqual([1, 0, 0, 0, 0, 0, 0, 0, 0]);
    w2.settle(all.files, results);
    expect(files.map((f) => f.written === true)).toEqual([true, false, false]);
    const hello = path.join(root, 'new', 'deep', 'hello');
    expect(fs.readFileSync(hello, 'utf8')).toBe('hello world');
    expect(fs.statSync(hello).mode & 0o7777).toBe(0o600);
    expect(fs.statSync(hello, { bigint: true }).mtimeNs).toBe(T);
    expect(fs.readdirSync(outside)).toEqual([]);
    expect(fs.readFileSync(path.join(root, 'taken'), 'utf8')).toBe('old');
  });
});
