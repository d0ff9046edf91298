/**
 * Corruption is caught: a damaged block (each codec), a wrong archive sha256, a truncated
 * archive, a tampered index; restore fails and corrupt bytes are not left as restored files.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeIndex, encodeIndex, unpackArchive, type ArchiveIndex, type Codec, type PackResult } from '@cairn/core/archive/index.ts';
import { isCairnError } from '@cairn/core/errors.ts';
import { packToFile } from './helpers/archive.ts';

const MiB = 1024 * 1024;
let work: string;
const packed = new Map<Codec, { file: string; r: PackResult }>();

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-integrity-'));
  const vol = path.join(work, 'vol');
  fs.mkdirSync(vol);
  fs.writeFileSync(path.join(vol, 'a.txt'), 'first file\n');
  fs.writeFileSync(path.join(vol, 'b.bin'), randomBytes(2 * MiB));
  fs.writeFileSync(path.join(vol, 'c.txt'), 'text '.repeat(100_000));
  for (const codec of ['zstd', 'gzip', 'none'] as const) {
    const file = path.join(work, `archive.${codec}`);
    packed.set(codec, { file, r: await packToFile({ volumes: [{ name: 'vol', dir: vol }], codec, blockSize: 256 * 1024 }, file) });
  }
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

async function restoreFrom(bytes: Buffer, index: ArchiveIndex, target: string, expectedSha256?: string): Promise<unknown> {
  try {
    await unpackArchive({ target, index, source: { stream: Readable.from([bytes]) }, ...(expectedSha256 ? { expectedSha256 } : {}) });
  } catch (err) {
    return err;
  }
  return undefined;
}

describe('integrity', () => {
  for (const codec of ['zstd', 'gzip', 'none'] as const) {
    it(`${codec}: a flipped byte inside a block fails the restore before that block is written`, async () => {
      const { file, r } = packed.get(codec)!;
      const bytes = fs.readFileSync(file);
      // Damage the middle of the block holding the end of b.bin.
      const b = r.index.entries.find((e) => e.path === 'vol/b.bin')!;
      const k = r.index.blocks.findIndex((x) => x.uncompressedOffset + x.uncompressedLength >= b.dataOffset + b.size);
      const blk = r.index.blocks[k]!;
      bytes[blk.compressedOffset + Math.floor(blk.compressedLength / 2)]! ^= 0x5a;
      const target = path.join(work, `flip-${codec}`);
      const err = await restoreFrom(bytes, r.index, target);
      expect(isCairnError(err, 'archive-corrupt') || isCairnError(err, 'checksum-mismatch'), String(err)).toBe(true);
      // b.bin was not completed from corrupt bytes, and nothing after it was written.
      const written = fs.existsSync(path.join(target, 'vol')) ? fs.readdirSync(path.join(target, 'vol')) : [];
      expect(written.filter((f) => f !== 'a.txt' && f !== 'b.bin')).toEqual([]);
      if (written.includes('b.bin')) expect(fs.statSync(path.join(target, 'vol', 'b.bin')).size).toBeLessThan(2 * MiB);
    });
  }

  it('a different archive sha256 than expected fails the restore', async () => {
    const { file, r } = packed.get('zstd')!;
    const err = await restoreFrom(fs.readFileSync(file), r.index, path.join(work, 'sha'), '0'.repeat(64));
    expect(isCairnError(err, 'checksum-mismatch')).toBe(true);
  });

  it('a truncated archive and one with trailing bytes are corrupt', async () => {
    const { file, r } = packed.get('zstd')!;
    const bytes = fs.readFileSync(file);
    const short = await restoreFrom(bytes.subarray(0, bytes.length - 100), r.index, path.join(work, 'short'));
    expect(isCairnError(short, 'archive-corrupt'), String(short)).toBe(true);
    const long = await restoreFrom(Buffer.concat([bytes, Buffer.from('extra')]), r.index, path.join(work, 'long'));
    expect(isCairnError(long, 'archive-corrupt'), String(long)).toBe(true);
  });

  it("a file whose content does not match the index's sha256 is removed and fails the restore", async () => {
    const { file, r } = packed.get('zstd')!;
    const index = structuredClone(r.index);
    index.entries.find((e) => e.path === 'vol/c.txt')!.sha256 = 'f'.repeat(64);
    const target = path.join(work, 'tampered');
    const err = await restoreFrom(fs.readFileSync(file), index, target);
    expect(isCairnError(err, 'checksum-mismatch')).toBe(true);
    expect(fs.existsSync(path.join(target, 'vol', 'c.txt'))).toBe(false);
  });

  // A small file's content lies in one block: its sha256 is checked by the codec worker that
  // decodes the block (before anything of it is written), with or without the native helper.
  for (const flag of ['1', '0']) {
    it(`a small file whose content does not match the index's sha256 fails the restore and is not written (native ${flag})`, async () => {
      const { file, r } = packed.get('zstd')!;
      const index = structuredClone(r.index);
      index.entries.find((e) => e.path === 'vol/a.txt')!.sha256 = 'e'.repeat(64);
      const target = path.join(work, `tampered-small-${flag}`);
      const before = process.env.CAIRN_NATIVE_READS;
      process.env.CAIRN_NATIVE_READS = flag;
      try {
        const err = await restoreFrom(fs.readFileSync(file), index, target);
        expect(isCairnError(err, 'checksum-mismatch'), String(err)).toBe(true);
        expect((err as Error).message).toContain('content of vol/a.txt does not match its sha256');
      } finally {
        if (before === undefined) delete process.env.CAIRN_NATIVE_READS;
        else process.env.CAIRN_NATIVE_READS = before;
      }
      expect(fs.existsSync(path.join(target, 'vol', 'a.txt'))).toBe(false);
    });
  }

  it('an index whose tar entries do not match the archive is corrupt', async () => {
    const { file, r } = packed.get('zstd')!;
    const index = structuredClone(r.index);
    index.entries.find((e) => e.path === 'vol/c.txt')!.path = 'vol/renamed.txt';
    const err = await restoreFrom(fs.readFileSync(file), index, path.join(work, 'renamed'));
    expect(isCairnError(err, 'archive-corrupt')).toBe(true);
  });

  it('an index that renames a small file (one a codec worker writes ahead) is corrupt too', async () => {
    // The file's content matches its sha256, so only the tar's own header can tell (extractor.ts, skipEntry).
    const { file, r } = packed.get('zstd')!;
    const index = structuredClone(r.index);
    index.entries.find((e) => e.path === 'vol/a.txt')!.path = 'vol/other.txt';
    const err = await restoreFrom(fs.readFileSync(file), index, path.join(work, 'renamed-small'));
    expect(isCairnError(err, 'archive-corrupt'), String(err)).toBe(true);
    expect((err as Error).message).toContain('vol/other.txt');
  });

  it('the index is gzipped JSON lines, and plain (gzipped) JSON decodes too', () => {
    const ix = packed.get('zstd')!.r.index;
    const text = gunzipSync(encodeIndex(ix)).toString('utf8');
    const lines = text.trimEnd().split('\n');
    expect(lines).toHaveLength(ix.entries.length + 1);
    expect(JSON.parse(lines[1]!)).toEqual(ix.entries[0]);
    expect(decodeIndex(gzipSync(JSON.stringify(ix)))).toEqual(ix);
    expect(decodeIndex(Buffer.from(JSON.stringify(ix)))).toEqual(ix);
    // A truncated entry list is caught.
    expect(() => decodeIndex(gzipSync(lines.slice(0, -1).join('\n')))).toThrow(/entries/);
  });

  it('decodeIndex refuses garbage and inconsistent block tables', () => {
    expect(() => decodeIndex(Buffer.from('not an index'))).toThrow(expect.objectContaining({ code: 'archive-corrupt' }));
    const ix = structuredClone(packed.get('zstd')!.r.index);
    ix.blocks[1]!.compressedOffset += 1;
    expect(() => decodeIndex(encodeIndex(ix))).toThrow(/not contiguous/);
    const ix2 = structuredClone(packed.get('zstd')!.r.index);
    ix2.entries.at(-1)!.dataOffset = ix2.totals.tarBytes + 10;
    expect(() => decodeIndex(encodeIndex(ix2))).toThrow(/past the end/);
  });

  it('an unpack is cancelled promptly by its AbortSignal', async () => {
    const { file, r } = packed.get('zstd')!;
    const ac = new AbortController();
    // A source that never ends: only the signal can stop the restore.
    const bytes = fs.readFileSync(file);
    const stalled = new Readable({ read() {} });
    stalled.push(bytes.subarray(0, 1000));
    const p = unpackArchive({ target: path.join(work, 'abort'), index: r.index, source: { stream: stalled }, signal: ac.signal });
    await new Promise((res) => setTimeout(res, 200));
    const t = performance.now();
    ac.abort(new Error('stop'));
    const err = await p.catch((e: unknown) => e);
    expect(isCairnError(err, 'cancelled')).toBe(true);
    expect(performance.now() - t).toBeLessThan(1000);
  });

  it('an unpack is cancelled by an abort that lands while its threads are being started', async () => {
    const { r } = packed.get('zstd')!;
    const ac = new AbortController();
    const stalled = new Readable({ read() {} });
    const p = unpackArchive({ target: path.join(work, 'abort-early'), index: r.index, source: { stream: stalled }, signal: ac.signal });
    ac.abort(new Error('stop'));
    const err = await p.catch((e: unknown) => e);
    expect(isCairnError(err, 'cancelled')).toBe(true);
  });
});
