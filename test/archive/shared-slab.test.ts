/**
 * The shared slab of an unpack (shared-slab.ts): zstd blocks decoded into its slots reach the
 * extract and hash-ahead workers as slot numbers. A restore must come out the same with the slab,
 * with too few slots for the blocks in flight (the rest go as buffers of their own, interleaved),
 * and without it; slots held by the extractor for a record split between blocks come back.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { fileSource, unpackArchive } from '@cairn/core/archive/index.ts';
import { loadNativeReads, nativeAddonPath } from '@cairn/core/archive/native-reads.ts';
import { MIN_SLOTS, SharedSlab } from '@cairn/core/archive/shared-slab.ts';
import { packToFile } from './helpers/archive.ts';

const nativeCopy = loadNativeReads(nativeAddonPath())?.copyBytes !== undefined;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-slab-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('SharedSlab', () => {
  it('hands out each slot once until it is given back, and makes views of them', () => {
    const slab = SharedSlab.create(1024, 5)!;
    const taken = Array.from({ length: 5 }, () => slab.take());
    expect(new Set(taken)).toEqual(new Set([0, 1024, 2048, 3072, 4096]));
    expect(slab.take()).toBeUndefined();
    slab.give(2048);
    expect(slab.take()).toBe(2048);
    const v = slab.view(3072, 10);
    v.fill(7);
    expect(new Uint8Array(slab.sab, 3072, 11)).toEqual(Uint8Array.from([7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 0]));
    expect(slab.slotOf(v)).toBe(3072);
    expect(slab.slotOf(Buffer.alloc(10))).toBeUndefined();
  });

  it('is not made when fewer than its minimum of slots would fit or are asked for', () => {
    expect(SharedSlab.create(1024, MIN_SLOTS - 1)).toBeUndefined();
    expect(SharedSlab.create(64 * 1024 * 1024, 16)).toBeUndefined();
    expect(SharedSlab.create(0, 16)).toBeUndefined();
    expect(SharedSlab.create(16 * 1024 * 1024, 100)?.sab.byteLength).toBe(64 * 1024 * 1024);
  });
});

describe('restores through the shared slab', () => {
  it('come out the same with it, with too few slots, and without it (whole stream and range reads)', async () => {
    // 4 KiB blocks: large files span blocks (hashed ahead), small ones fill blocks of their own
    // (checked and written by the codec workers), and a path of ~3,000 bytes makes a record longer
    // than a block (the extractor holds its blocks until it is whole).
    const src = path.join(work, 'src');
    const want = new Map<string, Buffer>();
    const put = (rel: string, content: Buffer): void => {
      fs.mkdirSync(path.dirname(path.join(src, rel)), { recursive: true });
      fs.writeFileSync(path.join(src, rel), content);
      want.set(rel, content);
    };
    for (let i = 0; i < 6; i++) {
      put(`d${i}/large.bin`, randomBytes(30_000 + i * 777));
      for (let j = 0; j < 30; j++) put(`d${i}/small-${j}`, randomBytes(50 + j * 31));
    }
    const deep = Array.from({ length: 12 }, (_, i) => `${String(i).padStart(2, '0')}-${'x'.repeat(240)}`).join('/');
    put(`${deep}/long-named.bin`, randomBytes(9_000));
    const archive = path.join(work, 'a.tar.zst');
    const r = await packToFile({ volumes: [{ name: 'data', dir: src }], codec: 'zstd', blockSize: 4096 }, archive);
    expect(r.index.blocks.length).toBeGreaterThan(100);

    // Which way the blocks went: slots taken, slots given back, and blocks that found none free.
    const take = vi.spyOn(SharedSlab.prototype, 'take');
    const give = vi.spyOn(SharedSlab.prototype, 'give');
    // Range reads by the store thread also cut the stored frames into a slab: the main thread
    // makes a view of each frame's slot (the second slab an unpack creates).
    const create = vi.spyOn(SharedSlab, 'create');
    const view = vi.spyOn(SharedSlab.prototype, 'view');
    let n = 0;
    for (const sharedSlots of [undefined, MIN_SLOTS, 0]) {
      for (const [how, source] of [
        ['stream', () => ({ stream: fs.createReadStream(archive) })],
        ['ranges', () => fileSource(archive)],
      ] as const) {
        take.mockClear();
        give.mockClear();
        create.mockClear();
        view.mockClear();
        const target = path.join(work, `out-${n++}`);
        const u = await unpackArchive({ target, index: r.index, source: source(), ...(sharedSlots === undefined ? {} : { sharedSlots }) });
        expect(u.archiveVerified).toBe(true);
        expect(u.filesWritten).toBe(want.size);
        for (const [rel, content] of want) expect(fs.readFileSync(path.join(target, 'data', rel)).equals(content), `${sharedSlots}: ${rel}`).toBe(true);
        const slotted = take.mock.results.filter((x) => x.value !== undefined).length;
        const none = take.mock.results.length - slotted;
        if (sharedSlots === 0) expect(take).not.toHaveBeenCalled();
        else {
          // The slots taken came back (but the last acks', which may come after the unpack returned);
          // with the default, (nearly) every block went in one.
          expect(give.mock.calls.length).toBeLessThanOrEqual(slotted);
          expect(give.mock.calls.length).toBeGreaterThanOrEqual(slotted - 8);
          if (sharedSlots === undefined) expect(slotted).toBeGreaterThan(r.index.blocks.length * 0.9);
          else expect(none).toBeGreaterThan(0);
        }
        const frameSlab = create.mock.results[1]?.value as SharedSlab | undefined;
        const frameViews = view.mock.contexts.filter((c) => c === frameSlab).length;
        // The store thread uses the frame slab only with the native helper's copy (frame-reader-job.ts).
        if (how === 'ranges' && sharedSlots !== 0 && nativeCopy) expect(frameViews).toBeGreaterThan(r.index.blocks.length * 0.9);
        else expect(frameViews).toBe(0);
      }
    }
    vi.restoreAllMocks();

    // A wrong sha256 in the index is still found, in a block decoded into a slot.
    const index = structuredClone(r.index);
    index.entries.find((e) => e.path === 'data/d3/large.bin')!.sha256 = '0'.repeat(64);
    await expect(unpackArchive({ target: path.join(work, 'bad'), index, source: fileSource(archive) })).rejects.toThrow(/d3\/large\.bin/);
  }, 120_000);
});
