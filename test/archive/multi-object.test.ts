/**
 * Format 2 archives whose frames live in several objects (incremental backups reuse their
 * parent's frames): a real archive is packed, then some of its blocks are moved into two other
 * in-memory objects at other offsets, with junk around them. Unpack (whole, volumes, chosen
 * paths), exportPathsAsTar and exportArchive must give back the tree, read each object's
 * contiguous stretches with one range read, a bounded number of reads open at once; a corrupt
 * frame in another object fails clearly; format 1 indexes read as before.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  archiveLength,
  entryEnd,
  exportArchive,
  exportPathsAsTar,
  hasForeignBlocks,
  readIndexHead,
  unpackArchive,
  encodeIndex,
  type ArchiveEntry,
  type ArchiveIndex,
  type Codec,
  type RangeReader,
} from '@cairn/core/archive/index.ts';
import { READ_AHEAD, RangeReadAhead, segmentsOf, type Segment } from '@cairn/core/archive/block-source.ts';
import { isCairnError } from '@cairn/core/errors.ts';
import { collect, packToFile } from './helpers/archive.ts';
import { objectReader, splitArchive, type SplitArchive } from './helpers/multi-object.ts';
import { buildFixture, diffSnapshots, fileSha, IS_ROOT, snapshot, type Fixture, type Snapshot } from './helpers/tree.ts';

const KiB = 1024;

let work: string;
let fx: Fixture;
let logs: string;
let source: Snapshot;
let logsSource: Snapshot;
const packed = new Map<Codec, { archive: Buffer; index: ArchiveIndex; split: SplitArchive }>();

/** Blocks 8..13 are one stretch in B1 (one range read); the others alternate own, B1, B2, own. */
const assign = (i: number): string | undefined => (i >= 8 && i <= 13 ? 'B1' : i % 4 === 1 ? 'B1' : i % 4 === 2 ? 'B2' : undefined);

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-multi-'));
  fx = await buildFixture(path.join(work, 'src', 'vol'));
  logs = path.join(work, 'src', 'logs');
  fs.mkdirSync(path.join(logs, 'app'), { recursive: true });
  fs.writeFileSync(path.join(logs, 'app', 'current.log'), 'log line\n'.repeat(20000));
  const special = new Set(fx.special);
  source = snapshot(fx.root, { skip: (rel) => special.has(rel) });
  logsSource = snapshot(logs);
  for (const codec of ['zstd', 'gzip', 'none'] as const) {
    const file = path.join(work, `archive.${codec}`);
    const r = await packToFile(
      {
        volumes: [
          { name: 'vol', dir: fx.root },
          { name: 'logs', dir: logs },
        ],
        codec,
        blockSize: 64 * KiB,
      },
      file,
    );
    const archive = fs.readFileSync(file);
    const index = r.index;
    r.close();
    const split = splitArchive(archive, index, assign);
    packed.set(codec, { archive, index, split });
  }
}, 180_000);

afterAll(async () => {
  await fx?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

function get(codec: Codec) {
  return packed.get(codec)!;
}

function expectSameTree(root: string, want: Snapshot): void {
  expect(diffSnapshots(want, snapshot(root), { ownership: IS_ROOT })).toEqual([]);
}

/** The entries of `want` below `prefix`, keyed relative to it. */
function below(want: Snapshot, prefix: string): Snapshot {
  return new Map([...want].filter(([k]) => k.startsWith(`${prefix}/`)).map(([k, v]) => [k.slice(prefix.length + 1), v]));
}

/** Blocks holding an entry's tar bytes. */
function blocksOf(index: ArchiveIndex, e: ArchiveEntry): number[] {
  const out: number[] = [];
  index.blocks.forEach((b, i) => {
    if (b.uncompressedOffset < entryEnd(e) && b.uncompressedOffset + b.uncompressedLength > e.headerOffset) out.push(i);
  });
  return out;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

/** Reads a stream to its end, returning its error (or fails the test when it ends cleanly). */
async function streamError(s: Readable): Promise<Error> {
  return rejection(collect(s));
}

function extractWithGnuTar(file: string, codec: Codec, dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  if (codec === 'none') execFileSync('tar', ['--warning=no-timestamp', '-xf', file, '-C', dir]);
  else if (codec === 'gzip') execFileSync('tar', ['--warning=no-timestamp', '-xzf', file, '-C', dir]);
  else execFileSync('sh', ['-c', `/usr/bin/zstd -dc '${file}' | /usr/bin/tar --warning=no-timestamp -x -C '${dir}'`]);
}

describe('the synthesized archive', () => {
  it('is a valid format 2 index with blocks in two other objects, the own object contiguous', () => {
    const { index, split, archive } = get('zstd');
    expect(index.blocks.length).toBeGreaterThan(40);
    expect(hasForeignBlocks(index)).toBe(false);
    expect(hasForeignBlocks(split.index)).toBe(true);
    expect(new Set(split.index.blocks.map((b) => b.object))).toEqual(new Set([undefined, 'B1', 'B2']));
    expect(archiveLength(split.index)).toBe(archive.length);
    expect(split.own.length).toBeLessThan(archive.length);
  });

  it('readIndexHead reads the head of an encoded index from its first line, or of a plain JSON document', async () => {
    const { split } = get('zstd');
    // Many entries (several gzip members after the head's).
    const many = Array.from({ length: 30000 }, (_, i) => ({ ...split.index.entries[1]!, path: `vol/many-${i}` }));
    const encoded = encodeIndex({ ...split.index, entries: many });
    let served = 0;
    const source = Readable.from(
      (function* () {
        for (let p = 0; p < encoded.length; p += 256) {
          served += Math.min(256, encoded.length - p);
          yield encoded.subarray(p, p + 256);
        }
      })(),
      { objectMode: false },
    );
    const head = await readIndexHead(source);
    const { entries: _entries, ...want } = split.index;
    expect(head).toEqual(want);
    expect(source.destroyed).toBe(true);
    // Only the start of the object was read.
    expect(served).toBeLessThan(encoded.length / 2);

    const legacy = await readIndexHead(Readable.from([gzipSync(JSON.stringify(split.index, null, 2))]));
    expect(legacy).toEqual(want);
    // The head is checked: the own object's blocks must be contiguous.
    const broken = { ...split.index, blocks: split.index.blocks.map((b, i) => (i === 0 ? { ...b, compressedOffset: 5 } : b)) };
    await expect(readIndexHead(Readable.from([encodeIndex(broken)]))).rejects.toMatchObject({ code: 'archive-corrupt' });
  });
});

for (const codec of ['zstd', 'gzip', 'none'] as const) {
  describe(`${codec}: spread over three objects`, () => {
    it('unpacks whole through range reads, each contiguous stretch of an object read once', async () => {
      const { split, archive } = get(codec);
      const reads = objectReader(split.own, split.objects);
      const target = path.join(work, `whole-${codec}`);
      const r = await unpackArchive({ target, index: split.index, source: { rangeReader: reads.reader } });
      expect(r.archiveVerified).toBe(true);
      expectSameTree(path.join(target, 'vol'), source);
      expectSameTree(path.join(target, 'logs'), logsSource);
      // Every frame read exactly once, no junk byte read.
      expect(reads.served()).toBe(archive.length);
      expect(reads.calls.reduce((n, [s, e]) => n + e - s + 1, 0)).toBe(archive.length);
      // Coalesced: blocks 8..13 of B1 are one read.
      const b = split.index.blocks;
      expect(reads.calls).toContainEqual([b[8]!.compressedOffset, b[13]!.compressedOffset + b[13]!.compressedLength - 1, 'B1']);
      expect(reads.calls.length).toBeLessThan(b.length);
      expect(reads.open()).toBe(0);
    });

    it('exportArchive streams the complete stored archive, byte for byte, which GNU tar extracts', async () => {
      const { split, archive } = get(codec);
      const reads = objectReader(split.own, split.objects);
      const out = await collect(exportArchive(split.index, reads.reader));
      expect(out.length).toBe(archiveLength(split.index));
      expect(out.equals(archive)).toBe(true);
      expect(reads.calls.reduce((n, [s, e]) => n + e - s + 1, 0)).toBe(archive.length);
      const file = path.join(work, `exported.${codec}`);
      fs.writeFileSync(file, out);
      const dir = path.join(work, `gnu-${codec}`);
      extractWithGnuTar(file, codec, dir);
      expectSameTree(path.join(dir, 'vol'), source);
      expectSameTree(path.join(dir, 'logs'), logsSource);
    });
  });
}

describe('an incremental archive written by packArchive', () => {
  it('restores and exports the changed tree from its own object and its parents', async () => {
    const dir = path.join(work, 'inc-src');
    fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
    for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(dir, 'sub', `f${i}.txt`), `file ${i}\n`.repeat(200 + i));
    fs.writeFileSync(path.join(dir, 'big.bin'), Buffer.alloc(600 * KiB, 7));
    const objects = new Map<string, Buffer>();
    const pack = async (id: string, parent?: { id: string; index: ArchiveIndex }) => {
      const file = path.join(work, `inc-${id}`);
      const r = await packToFile(
        {
          volumes: [{ name: 'data', dir }],
          codec: 'zstd',
          blockSize: 64 * KiB,
          ...(parent ? { parent: { id: parent.id, index: parent.index, objects: [parent.id, ...(parent.index.objects ?? [])], rehashShare: 0 } } : {}),
        },
        file,
      );
      objects.set(id, fs.readFileSync(file));
      const index = r.index;
      r.close();
      return index;
    };
    const full = await pack('full');
    fs.writeFileSync(path.join(dir, 'sub', 'f3.txt'), 'changed\n');
    fs.writeFileSync(path.join(dir, 'added.txt'), 'added\n');
    const inc1 = await pack('inc1', { id: 'full', index: full });
    fs.rmSync(path.join(dir, 'sub', 'f5.txt'));
    const fd = fs.openSync(path.join(dir, 'big.bin'), 'r+');
    fs.writeSync(fd, Buffer.alloc(100, 9), 0, 100, 300 * KiB);
    fs.closeSync(fd);
    const inc2 = await pack('inc2', { id: 'inc1', index: inc1 });
    const want = snapshot(dir);
    expect(hasForeignBlocks(inc2)).toBe(true);
    expect(inc2.blocks.some((b) => b.object === 'full')).toBe(true);

    const own = objects.get('inc2')!;
    const others = new Map([...objects].filter(([k]) => k !== 'inc2'));
    const reads = objectReader(own, others);
    const target = path.join(work, 'inc-restore');
    const r = await unpackArchive({ target, index: inc2, source: { rangeReader: reads.reader } });
    expect(r.archiveVerified).toBe(true);
    expectSameTree(path.join(target, 'data'), want);
    expect(new Set(reads.calls.map(([, , o]) => o))).toEqual(new Set([undefined, ...new Set(inc2.blocks.flatMap((b) => (b.object ? [b.object] : [])))]));

    const out = await collect(exportArchive(inc2, objectReader(own, others).reader));
    expect(out.length).toBe(archiveLength(inc2));
    const file = path.join(work, 'inc-export.tar.zst');
    fs.writeFileSync(file, out);
    const gnu = path.join(work, 'inc-gnu');
    extractWithGnuTar(file, 'zstd', gnu);
    expectSameTree(path.join(gnu, 'data'), want);

    const tar = await collect(exportPathsAsTar(inc2, objectReader(own, others).reader, ['data/big.bin']));
    const one = path.join(work, 'inc-one');
    fs.mkdirSync(one);
    execFileSync('tar', ['-xf', '-', '-C', one], { input: tar });
    expect(fileSha(path.join(one, 'data/big.bin'))).toBe(want.get('big.bin')!.sha256);
  });
});

describe('zstd: chosen paths and volumes from several objects', () => {
  it('a file whose blocks span the own object and others, and a directory, restore exactly', async () => {
    const { split } = get('zstd');
    const big = split.index.entries.find((e) => e.path === 'vol/random-3MiB.bin')!;
    const objects = new Set(blocksOf(split.index, big).map((i) => split.index.blocks[i]!.object));
    expect(objects.has(undefined)).toBe(true);
    expect(objects.has('B1') || objects.has('B2')).toBe(true);

    const reads = objectReader(split.own, split.objects);
    const target = path.join(work, 'chosen');
    const r = await unpackArchive({ target, index: split.index, paths: ['vol/random-3MiB.bin', 'vol/nested/a'], source: { rangeReader: reads.reader } });
    expect(r.archiveVerified).toBe(false);
    expect(fileSha(path.join(target, 'vol/random-3MiB.bin'))).toBe(source.get('random-3MiB.bin')!.sha256);
    expect(diffSnapshots(below(source, 'nested/a'), snapshot(path.join(target, 'vol/nested/a')), { ownership: IS_ROOT })).toEqual([]);
    expect(fs.existsSync(path.join(target, 'vol/plain.txt'))).toBe(false);
    // Only the blocks holding them were read.
    const total = archiveLength(split.index);
    expect(reads.served()).toBeLessThan(total);
  });

  it('one volume of two restores from its blocks only', async () => {
    const { split } = get('zstd');
    const reads = objectReader(split.own, split.objects);
    const dir = path.join(work, 'logs-only');
    const r = await unpackArchive({ target: dir, volumeDirs: { logs: dir }, index: split.index, source: { rangeReader: reads.reader } });
    expect(r.archiveVerified).toBe(false);
    expectSameTree(dir, logsSource);
  });

  it('exportPathsAsTar builds the same entries from blocks in several objects', async () => {
    const { split } = get('zstd');
    const reads = objectReader(split.own, split.objects);
    const tar = await collect(exportPathsAsTar(split.index, reads.reader, ['vol/random-3MiB.bin', 'vol/nested/a']));
    expect(reads.calls.some(([, , o]) => o !== undefined)).toBe(true);
    const dir = path.join(work, 'exported-paths');
    fs.mkdirSync(dir);
    execFileSync('tar', ['--warning=no-timestamp', '-xf', '-', '-C', dir], { input: tar });
    expect(fileSha(path.join(dir, 'vol/random-3MiB.bin'))).toBe(source.get('random-3MiB.bin')!.sha256);
    expect(diffSnapshots(below(source, 'nested/a'), snapshot(path.join(dir, 'vol/nested/a')), { ownership: IS_ROOT })).toEqual([]);
    expect(fs.readdirSync(path.join(dir, 'vol')).sort()).toEqual(['nested', 'random-3MiB.bin']);
  });
});

describe('parallel range reads', () => {
  it(`a restore keeps RESTORE_PARALLEL_RANGES reads in flight, an export at most ${READ_AHEAD} open ahead; both close them all`, async () => {
    const { split } = get('zstd');
    const reads = objectReader(split.own, split.objects, { delayMs: 15 });
    const rangeReads = { parallel: 3, rangeBytes: 64 * 1024, bytesInFlight: 64 * 1024 * 1024 };
    const r = await unpackArchive({ target: path.join(work, 'parallel'), index: split.index, source: { rangeReader: reads.reader }, rangeReads });
    expect(r.archiveVerified).toBe(true);
    expect(reads.calls.length).toBeGreaterThan(rangeReads.parallel + 1);
    expect(reads.maxOpen()).toBe(rangeReads.parallel);
    expect(reads.open()).toBe(0);

    const exp = objectReader(split.own, split.objects, { delayMs: 15 });
    await collect(exportArchive(split.index, exp.reader));
    expect(exp.maxOpen()).toBe(READ_AHEAD + 1);
    expect(exp.open()).toBe(0);
  });

  it('overlap their latency: many slow reads take far less than one after another', async () => {
    const { split } = get('zstd');
    const serial = objectReader(split.own, split.objects, { delayMs: 40 });
    const started = performance.now();
    await collect(exportArchive(split.index, serial.reader));
    const elapsed = performance.now() - started;
    expect(serial.calls.length).toBeGreaterThan(10);
    expect(elapsed).toBeLessThan((serial.calls.length * 40) / 2);
  });

  it('segments split at every change of object and every jump in offsets, even where offsets happen to follow on', () => {
    const blk = (object: string | undefined, at: number, len: number, u: number) => ({
      ...(object ? { object } : {}),
      compressedOffset: at,
      compressedLength: len,
      uncompressedOffset: u,
      uncompressedLength: 10,
    });
    const blocks = [
      blk(undefined, 0, 100, 0),
      blk('B1', 100, 50, 10),
      blk('B1', 150, 50, 20),
      blk(undefined, 100, 30, 30),
      blk('B1', 300, 5, 40),
      blk('B2', 305, 5, 50),
    ];
    expect([...segmentsOf(blocks, 0, 5)]).toEqual([
      { object: undefined, firstBlock: 0, lastBlock: 0, start: 0, end: 99 },
      { object: 'B1', firstBlock: 1, lastBlock: 2, start: 100, end: 199 },
      { object: undefined, firstBlock: 3, lastBlock: 3, start: 100, end: 129 },
      { object: 'B1', firstBlock: 4, lastBlock: 4, start: 300, end: 304 },
      { object: 'B2', firstBlock: 5, lastBlock: 5, start: 305, end: 309 },
    ]);
    expect([...segmentsOf(blocks, 2, 3)].map((x) => [x.firstBlock, x.lastBlock])).toEqual([
      [2, 2],
      [3, 3],
    ]);
  });

  it('RangeReadAhead hands streams out in order and opens no more bytes ahead than allowed', async () => {
    const segments: Segment[] = [0, 1, 2, 3, 4].map((i) => ({ object: `o${i}`, firstBlock: i, lastBlock: i, start: 0, end: 59 }));
    const opened: string[] = [];
    const reader: RangeReader = async (_s, _e, object) => {
      opened.push(object!);
      return Readable.from([Buffer.from(object!)]);
    };
    const ahead = new RangeReadAhead(reader, segments, 4, 100);
    const order: string[] = [];
    for (let r = await ahead.next(); r; r = await ahead.next()) {
      // 60 bytes being consumed, the next 60 opened (60 <= 100), the one after not (120 > 100).
      expect(opened.length).toBeLessThanOrEqual(order.length + 2);
      order.push((await collect(r.stream)).toString());
    }
    expect(order).toEqual(['o0', 'o1', 'o2', 'o3', 'o4']);
  });
});

describe('verification', () => {
  it('a zstd frame in another object without its content checksum restores, but the archive is not reported verified', async () => {
    const { archive, index } = get('zstd');
    const j = index.blocks.findIndex((b, i) => assign(i) === 'B2' && b.compressedLength > 100);
    // Rewrite block j's frame without its checksum: clear Content_Checksum_flag, drop the last 4 bytes.
    const parts: Buffer[] = [];
    let at = 0;
    const blocks = index.blocks.map((b, i) => {
      let frame = archive.subarray(b.compressedOffset, b.compressedOffset + b.compressedLength);
      if (i === j) {
        frame = Buffer.from(frame.subarray(0, frame.length - 4));
        frame[4]! &= ~0x04;
      }
      parts.push(frame);
      const out = { ...b, compressedOffset: at, compressedLength: frame.length };
      at += frame.length;
      return out;
    });
    const split = splitArchive(Buffer.concat(parts), { ...index, blocks }, assign);
    const target = path.join(work, 'no-checksum');
    const r = await unpackArchive({ target, index: split.index, source: { rangeReader: objectReader(split.own, split.objects).reader } });
    expect(r.archiveVerified).toBe(false);
    expectSameTree(path.join(target, 'vol'), source);
  });
});

describe('failures', () => {
  it('a corrupt frame in another object fails the unpack naming that object, and every read is closed', async () => {
    const { split } = get('zstd');
    const i = split.index.blocks.findIndex((b) => b.object === 'B2' && b.compressedLength > 4096);
    expect(i).toBeGreaterThan(0);
    const b = split.index.blocks[i]!;
    const bad = Buffer.from(split.objects.get('B2')!);
    bad[b.compressedOffset + Math.floor(b.compressedLength / 2)]! ^= 0x5a;
    const objects = new Map(split.objects).set('B2', bad);
    const reads = objectReader(split.own, objects, { delayMs: 5 });
    const target = path.join(work, 'corrupt');
    const err = await rejection(unpackArchive({ target, index: split.index, source: { rangeReader: reads.reader } }));
    expect(isCairnError(err, 'archive-corrupt')).toBe(true);
    expect(err.message).toContain(`block ${i} `);
    expect(err.message).toContain('backup B2');
    await vi.waitFor(() => expect(reads.open()).toBe(0), { timeout: 2000 });

    // exportPathsAsTar of a file in that block fails the same way.
    const e = split.index.entries.find((x) => x.type === 'file' && blocksOf(split.index, x).includes(i))!;
    const exp = objectReader(split.own, objects);
    const err2 = await streamError(exportPathsAsTar(split.index, exp.reader, [e.path]));
    expect(isCairnError(err2, 'archive-corrupt')).toBe(true);
    expect(err2.message).toContain('backup B2');
  });

  it('a stored (none) frame in another object that does not match its sha256 fails unpack, export and exportArchive', async () => {
    const { split } = get('none');
    expect(split.index.blocks.every((b) => typeof b.sha256 === 'string')).toBe(true);
    const i = split.index.blocks.findIndex((b) => b.object === 'B1' && b.compressedLength > 4096);
    const b = split.index.blocks[i]!;
    const bad = Buffer.from(split.objects.get('B1')!);
    bad[b.compressedOffset + 100]! ^= 0x01;
    const objects = new Map(split.objects).set('B1', bad);

    const err = await rejection(
      unpackArchive({ target: path.join(work, 'bad-none'), index: split.index, source: { rangeReader: objectReader(split.own, objects).reader } }),
    );
    expect(isCairnError(err, 'checksum-mismatch')).toBe(true);
    expect(err.message).toContain('backup B1');

    const e = split.index.entries.find((x) => x.type === 'file' && blocksOf(split.index, x).includes(i))!;
    const err2 = await streamError(exportPathsAsTar(split.index, objectReader(split.own, objects).reader, [e.path]));
    expect(isCairnError(err2, 'checksum-mismatch')).toBe(true);

    const err3 = await streamError(exportArchive(split.index, objectReader(split.own, objects).reader));
    expect(isCairnError(err3, 'checksum-mismatch')).toBe(true);
    expect(err3.message).toContain(`block ${i} `);
  });

  it('a short range read fails exportArchive instead of sending a truncated archive', async () => {
    const { split } = get('zstd');
    const reader: RangeReader = async (start, end, object) => {
      const data = object === undefined ? split.own : split.objects.get(object)!;
      // One byte short.
      return Readable.from([data.subarray(start, end)]);
    };
    const err = await streamError(exportArchive(split.index, reader));
    expect(isCairnError(err, 'archive-corrupt')).toBe(true);
    expect(err.message).toMatch(/ends inside block/);
  });

  it('a missing object fails with the range reader error', async () => {
    const { split } = get('zstd');
    const objects = new Map(split.objects);
    objects.delete('B2');
    const err = await rejection(
      unpackArchive({ target: path.join(work, 'missing'), index: split.index, source: { rangeReader: objectReader(split.own, objects).reader } }),
    );
    expect(err.message).toContain('no object B2');
  });

  it('a stream source is refused for an archive with blocks in other objects', async () => {
    const { split } = get('zstd');
    const stream = Readable.from([split.own]);
    const err = await rejection(unpackArchive({ target: path.join(work, 'stream'), index: split.index, source: { stream } }));
    expect(isCairnError(err, 'internal')).toBe(true);
    expect(err.message).toMatch(/range reader/);
    expect(stream.destroyed).toBe(true);
    expect(fs.existsSync(path.join(work, 'stream'))).toBe(false);
  });

  it('a destroyed export stops its reads', async () => {
    const { split } = get('zstd');
    const reads = objectReader(split.own, split.objects, { delayMs: 10, chunk: 512 });
    const out = exportArchive(split.index, reads.reader);
    await new Promise<void>((resolve) => out.once('data', () => resolve()));
    out.destroy();
    await vi.waitFor(() => expect(reads.open()).toBe(0), { timeout: 2000 });
    expect(reads.served()).toBeLessThan(archiveLength(split.index));
  });

  it('an aborted export ends with a cancelled error', async () => {
    const { split } = get('zstd');
    const ac = new AbortController();
    const reads = objectReader(split.own, split.objects, { delayMs: 10 });
    const out = exportArchive(split.index, reads.reader, { signal: ac.signal });
    setTimeout(() => ac.abort(new Error('client gone')), 20);
    const err = await streamError(out);
    expect(isCairnError(err, 'cancelled')).toBe(true);
    await vi.waitFor(() => expect(reads.open()).toBe(0), { timeout: 2000 });
  });
});

describe('format 1 indexes read as before', () => {
  const v1 = (): ArchiveIndex => ({ ...get('zstd').index, version: 1 });

  it('unpack from the stream and through range reads without an object argument, verifying the whole sha256', async () => {
    const { archive } = get('zstd');
    const index = v1();
    const s = await unpackArchive({ target: path.join(work, 'v1-stream'), index, source: { stream: Readable.from([archive]) } });
    expect(s.archiveVerified).toBe(true);
    expectSameTree(path.join(work, 'v1-stream', 'vol'), source);

    const args: unknown[][] = [];
    const reader: RangeReader = async (...a) => {
      args.push(a);
      return Readable.from([archive.subarray(a[0], a[1] + 1)]);
    };
    const r = await unpackArchive({ target: path.join(work, 'v1-range'), index, source: { rangeReader: reader } });
    expect(r.archiveVerified).toBe(true);
    expectSameTree(path.join(work, 'v1-range', 'vol'), source);
    expect(args).toEqual([[0, archive.length - 1]]);

    // The whole object's sha256 is still compared.
    const err = await rejection(
      unpackArchive({ target: path.join(work, 'v1-badsha'), index: { ...index, sha256: '0'.repeat(64) }, source: { rangeReader: reader } }),
    );
    expect(isCairnError(err, 'checksum-mismatch')).toBe(true);
  });

  it('exportPathsAsTar and exportArchive of a format 1 archive', async () => {
    const { archive } = get('zstd');
    const index = v1();
    const reads = objectReader(archive, new Map());
    const tar = await collect(exportPathsAsTar(index, reads.reader, ['vol/plain.txt']));
    const dir = path.join(work, 'v1-export');
    fs.mkdirSync(dir);
    execFileSync('tar', ['-xf', '-', '-C', dir], { input: tar });
    expect(fs.readFileSync(path.join(dir, 'vol/plain.txt'), 'utf8')).toBe('hello, cairn\n');
    expect(reads.calls.every(([, , o]) => o === undefined)).toBe(true);

    const whole = objectReader(archive, new Map());
    expect((await collect(exportArchive(index, whole.reader))).equals(archive)).toBe(true);
    expect(whole.calls).toEqual([[0, archive.length - 1, undefined]]);
  });

  it('a format 1 index naming another object is refused', async () => {
    const { split } = get('zstd');
    const err = await rejection(
      unpackArchive({
        target: path.join(work, 'v1-bad'),
        index: { ...split.index, version: 1 },
        source: { rangeReader: objectReader(split.own, split.objects).reader },
      }),
    );
    expect(isCairnError(err, 'archive-corrupt')).toBe(true);
  });
});
