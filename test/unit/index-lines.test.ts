/**
 * The index written from a pack's spill batches without re-parsing them (encodeIndexStreamFromArrays):
 * JSON arrays turned into lines in place must give back exactly the entries, whatever their
 * names hold, and refuse a batch whose count does not match.
 */
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { decodeIndex, encodeIndexStreamFromArrays, readIndex } from '@cairn/core/archive/archive-index.ts';
import { ARCHIVE_FORMAT, type ArchiveEntry, type ArchiveIndexHead } from '@cairn/core/archive/archive-types.ts';
import { Readable } from 'node:stream';

const head: ArchiveIndexHead = {
  format: ARCHIVE_FORMAT,
  version: 2,
  createdAt: '2026-12-05T00:00:00.000Z',
  meta: {},
  codec: 'none',
  level: 0,
  blockSize: 4096,
  sha256: '0'.repeat(64),
  volumes: [],
  totals: { entries: 0, files: 0, dirs: 0, symlinks: 0, hardlinks: 0, logicalBytes: 0, tarBytes: 0, storedBytes: 0, blocks: 0, warnings: 0 },
  blocks: [],
  warnings: [],
};

function entry(path: string, extra: Partial<ArchiveEntry> = {}): ArchiveEntry {
  return { path, type: 'file', size: 0, mode: 0o644, uid: 0, gid: 0, mtime: '1', headerOffset: 0, dataOffset: 0, ...extra };
}

const tricky = [
  entry('v/a},{"b'),
  entry('v/c\\"},{"d', { linkTarget: 'x},{"y', chunks: ['a', 'b'] }),
  entry('v/\n newline "quote" \\ backslash'),
  entry('v/\udc80\udcff bytes'),
  entry('v/plain', { sha256: 'f'.repeat(64), ino: 5, dev: 7, ctimeMs: 1.5 }),
];

describe('encodeIndexStreamFromArrays', () => {
  it('gives back exactly the entries, names with JSON-looking text included', async () => {
    const batches = [tricky.slice(0, 2), [], tricky.slice(2)];
    const arrays = batches.map((b) => ({ json: Buffer.from(JSON.stringify(b)), count: b.length }));
    const bytes = await buffer(encodeIndexStreamFromArrays(head, tricky.length, arrays));
    expect(decodeIndex(bytes).entries).toEqual(tricky);
    const streamed = await readIndex(Readable.from([bytes]));
    expect([...streamed.entries.batches()].flat()).toEqual(tricky);
    streamed.entries.close();
  });

  it('refuses a batch that does not hold the entries its writer counted', async () => {
    const arrays = [{ json: Buffer.from(JSON.stringify(tricky)), count: tricky.length - 1 }];
    await expect(buffer(encodeIndexStreamFromArrays(head, tricky.length - 1, arrays))).rejects.toThrow(/holds 5 entries, its writer counted 4/);
  });
});
