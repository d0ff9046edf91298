/**
 * Restore with the index read as a stream (readIndex): entries go to a temporary file and are
 * read in passes, so a node worker's memory does not grow with the file count. Same results as
 * the in-memory index; a damaged index is refused before anything is written.
 */
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeIndex, readIndex, unpackArchive, type ArchiveIndex, type PackResult, type StreamedIndex } from '@cairn/core/archive/index.ts';
import { isCairnError } from '@cairn/core/errors.ts';
import { countingRangeReader, packToFile } from './helpers/archive.ts';
import { diffSnapshots, snapshot } from './helpers/tree.ts';

let work: string;
let vol: string;
let archive: string;
let packed: PackResult;

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-six-'));
  vol = path.join(work, 'vol');
  // Enough entries for several spilled batches (~256 KiB of JSON each).
  for (let d = 0; d < 40; d++) {
    fs.mkdirSync(path.join(vol, `dir-${d}`), { recursive: true });
    for (let f = 0; f < 100; f++) fs.writeFileSync(path.join(vol, `dir-${d}`, `file-${f}.txt`), `${d}/${f}\n`.repeat(f % 7));
  }
  fs.writeFileSync(path.join(vol, 'a-first'), 'linked\n');
  fs.linkSync(path.join(vol, 'a-first'), path.join(vol, 'dir-39', 'hard'));
  fs.symlinkSync('a-first', path.join(vol, 'sym'));
  archive = path.join(work, 'archive.tar.zst');
  packed = await packToFile({ volumes: [{ name: 'vol', dir: vol }], codec: 'zstd', blockSize: 64 * 1024 }, archive);
}, 60_000);

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const streamOf = (buf: Buffer): Readable => Readable.from([buf.subarray(0, 7), buf.subarray(7, 5000), buf.subarray(5000)]);

async function entriesOf(ix: StreamedIndex): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const b of ix.entries.batches()) out.push(...b);
  return out;
}

describe('readIndex', () => {
  it('reads an index in pieces into a temporary file: the same index as decodeIndex, in several batches', async () => {
    const ix = await readIndex(streamOf(encodeIndex(packed.index)));
    try {
      expect([...ix.entries.batches()].length).toBeGreaterThan(1);
      expect(await entriesOf(ix)).toEqual(packed.index.entries);
      const { entries: _e, ...head } = packed.index;
      expect({ ...ix, entries: undefined }).toEqual({ ...head, entries: undefined });
    } finally {
      ix.entries.close();
    }
  });

  it('reads a plain JSON document too: gzipped or not, on one line or several', async () => {
    for (const doc of [
      gzipSync(JSON.stringify(packed.index)),
      Buffer.from(JSON.stringify(packed.index, null, 2)),
      gzipSync(JSON.stringify(packed.index, null, 1)),
    ]) {
      const ix = await readIndex(streamOf(doc));
      expect(await entriesOf(ix)).toEqual(packed.index.entries);
      ix.entries.close();
    }
  });

  it('reads a head line far longer than a chunk (a big block table)', async () => {
    const many: ArchiveIndex = { ...packed.index, meta: { pad: 'x'.repeat(32 * 1024 * 1024) } };
    const ix = await readIndex(Readable.from([encodeIndex(many)]));
    expect(ix.meta.pad).toHaveLength(32 * 1024 * 1024);
    expect(await entriesOf(ix)).toEqual(packed.index.entries);
    ix.entries.close();
  });

  it('refuses a damaged index (truncated, miscounted, not JSON) and fails with a failing source', async () => {
    const good = encodeIndex(packed.index);
    for (const bad of [good.subarray(0, good.length - 40), gzipSync('{"format":"cairn-archive"'), gzipSync('not json\n')]) {
      const err = await readIndex(streamOf(bad)).catch((e: unknown) => e);
      expect(isCairnError(err) && err.code).toBe('archive-corrupt');
    }
    // A source that fails part-way fails the read (it must not wait forever).
    const failing = new Readable({ read() {} });
    failing.push(good.subarray(0, 3000));
    setTimeout(() => failing.destroy(new Error('connection reset')), 20);
    const dropped = await readIndex(failing).catch((e: unknown) => e);
    expect((dropped as Error).message).toBe('connection reset');
    expect(isCairnError(dropped)).toBe(false);
    // The header counts the entries: drop one line from a well-formed index.
    const lines = gunzipSync(good).toString('utf8').split('\n');
    const short = gzipSync(lines.filter((_, i) => i !== 5).join('\n'));
    const err = await readIndex(streamOf(short)).catch((e: unknown) => e);
    expect(isCairnError(err) && err.code).toBe('archive-corrupt');
    expect((err as Error).message).toMatch(/lists \d+ entries, holds \d+/);
  });
});

describe('unpackArchive with a streamed index', () => {
  it('restores the whole archive identically', async () => {
    const ix = await readIndex(streamOf(encodeIndex(packed.index)));
    const target = path.join(work, 'whole');
    const r = await unpackArchive({ target, index: ix, source: { stream: fs.createReadStream(archive) } });
    ix.entries.close();
    expect(r.archiveVerified).toBe(true);
    expect(diffSnapshots(snapshot(vol), snapshot(path.join(target, 'vol')))).toEqual([]);
  });

  it('restores chosen paths from only their blocks, a hard link bringing its file along', async () => {
    const ix = await readIndex(streamOf(encodeIndex(packed.index)));
    const range = countingRangeReader(archive);
    const target = path.join(work, 'chosen');
    const r = await unpackArchive({ target, index: ix, paths: ['vol/dir-39'], source: { rangeReader: range.reader } });
    ix.entries.close();
    expect(r.filesWritten).toBe(101);
    expect(fs.readFileSync(path.join(target, 'vol', 'dir-39', 'hard'), 'utf8')).toBe('linked\n');
    expect(fs.existsSync(path.join(target, 'vol', 'a-first'))).toBe(false);
    expect(range.served()).toBeLessThan(fs.statSync(archive).size / 4);
  });

  it('refuses an index without entries as corrupt', async () => {
    const { entries: _e, ...head } = packed.index;
    const stream = fs.createReadStream(archive);
    const err = await unpackArchive({ target: path.join(work, 'no-entries'), index: head as ArchiveIndex, source: { stream } }).catch((e: unknown) => e);
    expect(isCairnError(err) && err.code).toBe('archive-corrupt');
    await once(stream, 'close');
  });

  it('refuses entries that overlap or are out of order before writing anything', async () => {
    const ix: ArchiveIndex = structuredClone(packed.index);
    const [a, b] = [ix.entries[10]!, ix.entries[11]!];
    ix.entries[10] = b;
    ix.entries[11] = a;
    const target = path.join(work, 'disorder');
    const stream = fs.createReadStream(archive);
    const err = await unpackArchive({ target, index: ix, source: { stream } }).catch((e: unknown) => e);
    expect(isCairnError(err) && err.code).toBe('archive-corrupt');
    expect(fs.existsSync(target)).toBe(false);
    expect(stream.destroyed).toBe(true);
    await once(stream, 'close');
  });
});
