import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { encodeIndex, type ArchiveEntry, type ArchiveIndex } from '@cairn/core/archive/index.ts';
import { ARCHIVE_FORMAT } from '@cairn/core/archive/archive-types.ts';
import { PagedIndex } from '@cairn/gateway/services/paged-index.ts';

/**
 * An index in archive order (a directory, then what is below it, names sorted by bytes, as the
 * scanner walks): 3 volumes, 16 directories of 150 files each, plus names that sort around `/`
 * (`dir-07.txt`, `dir-07/`...) so that path order and archive order differ. ~7,300 entries: several
 * batches of the index's spill file.
 */
function bigIndex(): ArchiveIndex {
  const entries: ArchiveEntry[] = [];
  let offset = 0;
  const add = (path: string, type: ArchiveEntry['type'], size = 0) => {
    entries.push({ path, type, size, mode: 0o644, uid: 0, gid: 0, mtime: '1700000000000000000', headerOffset: offset, dataOffset: offset + 512 });
    offset += 512 + Math.ceil(size / 512) * 512;
  };
  for (const volume of ['conf', 'data', 'logs']) {
    add(volume, 'dir');
    for (let d = 0; d < 16; d++) {
      const dir = `${volume}/dir-${String(d).padStart(2, '0')}`;
      add(dir, 'dir');
      for (let f = 0; f < 150; f++) add(`${dir}/file-${String(f).padStart(4, '0')}-${'x'.repeat(40)}.bin`, 'file', 10);
      add(`${dir}.txt`, 'file', 3);
    }
  }
  offset += 1024;
  return {
    format: ARCHIVE_FORMAT,
    version: 2,
    createdAt: '2026-12-05T09:00:00.000Z',
    meta: {},
    codec: 'none',
    level: 0,
    blockSize: offset,
    sha256: '0'.repeat(64),
    volumes: [],
    totals: { files: 0, dirs: 0, symlinks: 0, hardlinks: 0, bytes: 0 } as unknown as ArchiveIndex['totals'],
    blocks: [{ compressedOffset: 0, compressedLength: offset, uncompressedOffset: 0, uncompressedLength: offset }] as ArchiveIndex['blocks'],
    entries,
    warnings: [],
  };
}

/** What a listing must answer: every matching path after the cursor, in path order, `take` of them. */
function naivePage(entries: ArchiveEntry[], take: number, prefix: string, recursive: boolean, cursor?: string): string[] {
  const below = `${prefix}/`;
  return entries
    .map((e) => e.path)
    .filter((p) =>
      prefix === ''
        ? recursive || !p.includes('/')
        : (recursive && p === prefix) || (p.startsWith(below) && (recursive || !p.slice(below.length).includes('/'))),
    )
    .filter((p) => cursor === undefined || p > cursor)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .slice(0, take);
}

function matcher(prefix: string, recursive: boolean) {
  const below = `${prefix}/`;
  return prefix === ''
    ? (p: string) => recursive || !p.includes('/')
    : (p: string) => (recursive && p === prefix) || (p.startsWith(below) && (recursive || p.indexOf('/', below.length) === -1));
}

describe('PagedIndex', () => {
  it('pages every listing exactly as a sort of the whole index would, reading only the batches that can answer', async () => {
    const index = bigIndex();
    const paged = await PagedIndex.read(Readable.from(encodeIndex(index)));
    try {
      expect(paged.ranges.length).toBeGreaterThan(4);
      const cases: Array<[string, boolean]> = [
        ['', false],
        ['', true],
        ['data', false],
        ['data/dir-07', true],
        ['data/dir-07', false],
        ['logs/dir-15', true],
        ['conf/dir-00.txt', true],
        ['data/nothing-here', true],
      ];
      for (const [prefix, recursive] of cases) {
        // Walk the whole listing a page at a time, as a client following nextCursor does.
        const all = naivePage(index.entries, Number.MAX_SAFE_INTEGER, prefix, recursive);
        let cursor: string | undefined;
        const seen: string[] = [];
        for (let pages = 0; pages < 100; pages++) {
          const page = (await paged.page(201, { prefix, cursor, matches: matcher(prefix, recursive) })).map((e) => e.path);
          const expected = all.filter((p) => cursor === undefined || p > cursor).slice(0, 201);
          expect(page, `${prefix} ${recursive} after ${cursor}`).toEqual(expected);
          seen.push(...page.slice(0, 200));
          if (page.length <= 200) break;
          cursor = page[199];
        }
        expect(seen).toEqual(all);
      }

      // A page deep in the listing reads a couple of batches, not the index.
      const before = paged.batchesRead;
      const deep = await paged.page(51, { prefix: 'data', cursor: 'data/dir-10/file-0100', matches: matcher('data', true) });
      expect(deep[0]!.path).toBe(`data/dir-10/file-0100-${'x'.repeat(40)}.bin`);
      expect(paged.batchesRead - before).toBeLessThanOrEqual(3);
    } finally {
      paged.close();
    }
  });

  it('finds paths and directories, and nothing else', async () => {
    const paged = await PagedIndex.read(Readable.from(encodeIndex(bigIndex())));
    try {
      for (const p of ['conf', 'data/dir-07', 'data/dir-07.txt', `logs/dir-15/file-0149-${'x'.repeat(40)}.bin`]) expect(await paged.contains(p), p).toBe(true);
      for (const p of ['data/dir-7', 'data/dir-07/file', 'dat', 'data/dir-16', 'zzz']) expect(await paged.contains(p), p).toBe(false);
    } finally {
      paged.close();
    }
  });
});
