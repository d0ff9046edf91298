/**
 * Restores whose range reads the store thread makes (frame-reader-job.ts, threaded-frames.ts):
 * from an archive file, and from a backup's objects in a store the thread reopens from its spec
 * (format 2: frames in other backups' objects too). The tree must come back whole, the archive's
 * sha256 checked, and a corrupt frame, a wrong sha256, a missing object or a missing file must
 * fail with the same clear errors as reads on the main thread.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupRangeSource } from '@cairn/core/domain/backup-range-reader.ts';
import { archiveKey } from '@cairn/core/domain/object-layout.ts';
import { DEFAULT_RANGE_READS, fileSource, unpackArchive, type ArchiveIndex, type Codec, type UnpackSource } from '@cairn/core/archive/index.ts';
import { FsObjectStore } from '@cairn/core/storage/fs.object-store.ts';
import { packToFile } from './helpers/archive.ts';
import { splitArchive, type SplitArchive } from './helpers/multi-object.ts';
import { buildFixture, diffSnapshots, IS_ROOT, snapshot, type Fixture, type Snapshot } from './helpers/tree.ts';

const KiB = 1024;
/** Small ranges, so there are many. */
const THREADED = { ...DEFAULT_RANGE_READS, rangeBytes: 256 * KiB };
const INSTANCE = 'inst-reader';
const BACKUP = 'bk-own';

let work: string;
let fx: Fixture;
let want: Snapshot;
const packed = new Map<Codec, { file: string; index: ArchiveIndex; split: SplitArchive }>();

/** Blocks 4..9 in backup B1's object, every fifth other one in B2's; the rest stay in the own object. */
const assign = (i: number): string | undefined => (i >= 4 && i <= 9 ? 'B1' : i % 5 === 3 ? 'B2' : undefined);

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-reader-thread-'));
  fx = await buildFixture(path.join(work, 'src', 'vol'));
  const special = new Set(fx.special);
  want = snapshot(fx.root, { skip: (rel) => special.has(rel) });
  for (const codec of ['zstd', 'gzip', 'none'] as const) {
    const file = path.join(work, `archive.${codec}`);
    const r = await packToFile({ volumes: [{ name: 'vol', dir: fx.root }], codec, blockSize: 64 * KiB }, file);
    const index = r.index;
    r.close();
    packed.set(codec, { file, index, split: splitArchive(fs.readFileSync(file), index, assign) });
  }
}, 180_000);

afterAll(async () => {
  await fx?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

/** The source with its main-thread reader refusing: every read must be the store thread's. */
function threadOnly(source: UnpackSource): UnpackSource {
  if (!('thread' in source) || !source.thread) throw new Error('no store thread recipe');
  return {
    rangeReader: async () => {
      throw new Error('read on the main thread');
    },
    thread: source.thread,
  };
}

/** A store directory holding the split archive as backup BACKUP's object and B1's and B2's. */
function storeWith(codec: Codec, name: string, change?: (key: string, bytes: Buffer) => Buffer | undefined): { source: UnpackSource; store: FsObjectStore } {
  const { split } = packed.get(codec)!;
  const store = new FsObjectStore({ directory: path.join(work, 'stores', name) });
  const put = (key: string, bytes: Buffer): void => {
    const out = change ? change(key, bytes) : bytes;
    if (!out) return;
    const file = path.join(store.directory, ...key.split('/'));
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, out);
  };
  const storageKey = archiveKey(INSTANCE, BACKUP, codec);
  put(storageKey, split.own);
  for (const [id, bytes] of split.objects) put(archiveKey(INSTANCE, id, codec), bytes);
  return { source: threadOnly(backupRangeSource(store, { id: BACKUP, instanceId: INSTANCE, storageKey }, codec)), store };
}

function expectTree(root: string): void {
  expect(diffSnapshots(want, snapshot(root), { ownership: IS_ROOT })).toEqual([]);
}

for (const codec of ['zstd', 'gzip', 'none'] as const) {
  describe(`${codec}: range reads by a store thread`, () => {
    it('restores an archive file whole, its sha256 checked', async () => {
      const { file, index } = packed.get(codec)!;
      const source = fileSource(file);
      expect('thread' in source && source.thread?.recipe).toEqual({ kind: 'file', path: file });
      const target = path.join(work, `file-${codec}`);
      const r = await unpackArchive({ target, index, source: threadOnly(source), rangeReads: THREADED });
      expect(r.archiveVerified).toBe(true);
      expectTree(path.join(target, 'vol'));
    });

    it('restores a backup whose frames are in three objects of a store the thread reopens, whole and by path', async () => {
      const { split } = packed.get(codec)!;
      const { source } = storeWith(codec, `whole-${codec}`);
      expect('thread' in source && source.thread?.recipe.kind).toBe('backup');
      const target = path.join(work, `store-${codec}`);
      const r = await unpackArchive({ target, index: split.index, source, rangeReads: THREADED });
      // Frames in other objects: each verified by its codec where it can be (zstd and gzip always check).
      if (codec !== 'none') expect(r.archiveVerified).toBe(true);
      expectTree(path.join(target, 'vol'));

      const big = [...want.entries()].filter(([, e]) => e.type === 'file').sort((a, b) => (b[1].size ?? 0) - (a[1].size ?? 0))[0]![0];
      const one = path.join(work, `store-path-${codec}`);
      await unpackArchive({ target: one, index: split.index, source, rangeReads: THREADED, paths: [`vol/${big}`] });
      expect(fs.readFileSync(path.join(one, 'vol', big)).equals(fs.readFileSync(path.join(fx.root, big)))).toBe(true);
    });
  });
}

describe('store thread failures', () => {
  it('a wrong expected sha256 fails the restore as a checksum mismatch', async () => {
    const { file, index } = packed.get('zstd')!;
    const err = await unpackArchive({
      target: path.join(work, 'bad-sha'),
      index,
      source: fileSource(file),
      rangeReads: THREADED,
      expectedSha256: '0'.repeat(64),
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'checksum-mismatch', message: expect.stringContaining('does not match the expected') });
  });

  it("a corrupt frame in another backup's object is named, with where it is stored", async () => {
    const { split } = packed.get('zstd')!;
    const b = split.index.blocks[5]!;
    const { source } = storeWith('zstd', 'corrupt', (key, bytes) => {
      if (!key.includes('/B1/')) return bytes;
      const out = Buffer.from(bytes);
      out[b.compressedOffset + Math.floor(b.compressedLength / 2)]! ^= 0xff;
      return out;
    });
    const err = await unpackArchive({ target: path.join(work, 'corrupt'), index: split.index, source, rangeReads: THREADED }).catch((e: unknown) => e);
    expect(err).toMatchObject({ message: expect.stringContaining('block 5') });
    expect((err as Error).message).toContain('backup B1');
    expect(['checksum-mismatch', 'archive-corrupt']).toContain((err as { code: string }).code);
  });

  it('a missing object of another backup is archive-missing, naming that backup', async () => {
    const { split } = packed.get('zstd')!;
    const { source } = storeWith('zstd', 'missing', (key, bytes) => (key.includes('/B2/') ? undefined : bytes));
    const err = await unpackArchive({ target: path.join(work, 'missing'), index: split.index, source, rangeReads: THREADED }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'archive-missing', message: expect.stringContaining('backup B2') });
  });

  it('a missing archive file fails with the file named, and a cancel stops the reads', async () => {
    const { index, file } = packed.get('zstd')!;
    const gone = path.join(work, 'no-such-archive');
    const err = await unpackArchive({ target: path.join(work, 'nofile'), index, source: fileSource(gone), rangeReads: THREADED }).catch((e: unknown) => e);
    expect((err as Error).message).toContain(gone);

    const ac = new AbortController();
    const cancelled = unpackArchive({
      target: path.join(work, 'cancelled'),
      index,
      source: fileSource(file),
      rangeReads: THREADED,
      signal: ac.signal,
      // Cancelled at the first progress report: the store thread is mid-way.
      onProgress: () => ac.abort(),
    }).catch((e: unknown) => e);
    // The first report comes with the first block written, long before the last range is read.
    expect(await cancelled).toMatchObject({ code: 'cancelled' });
  });
});
