import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { ArchiveBlock, RangeReader } from '@cairn/core/archive/archive-types.ts';
import type { Segment } from '@cairn/core/archive/block-source.ts';
import { ParallelRangeReads, rangeReadsOf, splitSegments } from '@cairn/core/archive/parallel-range-reads.ts';
import { CairnError } from '@cairn/core/errors.ts';

/** Blocks of the given stored lengths, back to back in the archive's own object. */
function blocksOf(lengths: number[]): ArchiveBlock[] {
  let at = 0;
  return lengths.map((len, i) => {
    const b = { compressedOffset: at, compressedLength: len, uncompressedOffset: i * 10, uncompressedLength: 10 };
    at += len;
    return b;
  });
}

/** An object of `size` bytes whose byte i is i % 251, served in 7-byte chunks after `delayMs`. */
function fakeObject(size: number, opts: { delayMs?: number; failAt?: number; extra?: number } = {}) {
  const data = Buffer.from(Array.from({ length: size }, (_, i) => i % 251));
  let open = 0;
  let maxOpen = 0;
  const calls: [number, number][] = [];
  const streams: Readable[] = [];
  const reader: RangeReader = async (start, end) => {
    calls.push([start, end]);
    open++;
    maxOpen = Math.max(maxOpen, open);
    await new Promise((r) => setTimeout(r, opts.delayMs ?? 1));
    if (opts.failAt !== undefined && start <= opts.failAt && opts.failAt <= end) {
      open--;
      throw new CairnError('unavailable', `read of ${start}..${end} failed`);
    }
    const body = data.subarray(start, end + 1 + (opts.extra ?? 0));
    const out = new PassThrough();
    streams.push(out);
    out.on('close', () => open--);
    void (async () => {
      for (let i = 0; i < body.length; i += 7) {
        if (out.destroyed) return;
        out.write(body.subarray(i, i + 7));
        await new Promise((r) => setImmediate(r));
      }
      out.end();
    })();
    return out;
  };
  return { data, reader, calls, streams, open: () => open, maxOpen: () => maxOpen };
}

async function drain(reads: ParallelRangeReads): Promise<{ segments: Segment[]; bytes: Buffer }> {
  const segments: Segment[] = [];
  const parts: Buffer[] = [];
  for (let r = await reads.next(); r; r = await reads.next()) {
    segments.push(r.segment);
    // Copied: a range's buffer is reused for a later range once the next one is asked for.
    for await (const c of r.stream) parts.push(Buffer.from(c as Buffer));
  }
  return { segments, bytes: Buffer.concat(parts) };
}

const whole = (blocks: ArchiveBlock[]): Segment[] => [
  { object: undefined, firstBlock: 0, lastBlock: blocks.length - 1, start: 0, end: blocks.at(-1)!.compressedOffset + blocks.at(-1)!.compressedLength - 1 },
];

describe('splitSegments', () => {
  it('cuts a segment into ranges of whole blocks of at most rangeBytes; a larger block is a range of its own', () => {
    const blocks = blocksOf([40, 40, 40, 100, 10, 10]);
    expect([...splitSegments(whole(blocks), blocks, 90)].map((s) => [s.firstBlock, s.lastBlock, s.start, s.end])).toEqual([
      [0, 1, 0, 79],
      [2, 2, 80, 119],
      [3, 3, 120, 219],
      [4, 5, 220, 239],
    ]);
  });

  it('keeps the object and never merges across segments', () => {
    const blocks = blocksOf([10, 10, 10, 10]);
    const segments: Segment[] = [
      { object: 'B1', firstBlock: 0, lastBlock: 1, start: 0, end: 19 },
      { object: undefined, firstBlock: 2, lastBlock: 3, start: 20, end: 39 },
    ];
    expect([...splitSegments(segments, blocks, 1000)]).toEqual(segments);
  });
});

describe('ParallelRangeReads', () => {
  it('delivers every byte in order while several ranges are read at once', async () => {
    const blocks = blocksOf(Array.from({ length: 40 }, (_, i) => 50 + (i % 5) * 13));
    const size = blocks.at(-1)!.compressedOffset + blocks.at(-1)!.compressedLength;
    const obj = fakeObject(size, { delayMs: 5 });
    const reads = new ParallelRangeReads(obj.reader, splitSegments(whole(blocks), blocks, 200), { parallel: 4, rangeBytes: 200, bytesInFlight: 10_000 });
    const { segments, bytes } = await drain(reads);
    expect(bytes.equals(obj.data)).toBe(true);
    expect(segments.map((s) => s.start)).toEqual(obj.calls.map((c) => c[0]));
    expect(obj.calls.length).toBeGreaterThan(8);
    expect(reads.peakFetching).toBe(4);
    expect(obj.maxOpen()).toBeLessThanOrEqual(4);
    expect(obj.open()).toBe(0);
  });

  it('holds no more stored bytes than bytesInFlight (fetching, waiting and being consumed), one range at least', async () => {
    const blocks = blocksOf(Array.from({ length: 30 }, () => 100));
    const obj = fakeObject(3000);
    const reads = new ParallelRangeReads(obj.reader, splitSegments(whole(blocks), blocks, 100), { parallel: 8, rangeBytes: 100, bytesInFlight: 350 });
    // A slow consumer: the readers run ahead as far as the cap lets them.
    const parts: Buffer[] = [];
    for (let r = await reads.next(); r; r = await reads.next()) {
      await new Promise((res) => setTimeout(res, 3));
      for await (const c of r.stream) parts.push(Buffer.from(c as Buffer));
    }
    expect(Buffer.concat(parts).equals(obj.data)).toBe(true);
    expect(reads.peakHeld).toBeLessThanOrEqual(350);
    expect(reads.peakFetching).toBe(3);

    // A range larger than the cap is still read, alone.
    const big = new ParallelRangeReads(obj.reader, whole(blocks), { parallel: 4, rangeBytes: 5000, bytesInFlight: 100 });
    expect((await drain(big)).bytes.equals(obj.data)).toBe(true);
    expect(big.peakHeld).toBe(3000);
  });

  it('a failed read: the ranges before it are delivered, its error comes at its turn, and no new read starts after it', async () => {
    const blocks = blocksOf(Array.from({ length: 20 }, () => 100));
    const obj = fakeObject(2000, { failAt: 550 });
    const reads = new ParallelRangeReads(obj.reader, splitSegments(whole(blocks), blocks, 100), { parallel: 3, rangeBytes: 100, bytesInFlight: 10_000 });
    const got: number[] = [];
    const err = await (async () => {
      try {
        for (let r = await reads.next(); r; r = await reads.next()) {
          got.push(r.segment.start);
          for await (const _ of r.stream);
        }
      } catch (e) {
        return e;
      }
    })();
    expect(err).toMatchObject({ code: 'unavailable', message: 'read of 500..599 failed' });
    expect(got).toEqual([0, 100, 200, 300, 400]);
    // Reads already running when it failed may finish; none is started after the failure.
    expect(obj.calls.length).toBeLessThanOrEqual(8);
    await new Promise((r) => setTimeout(r, 20));
    expect(obj.open()).toBe(0);
  });

  it('an answer longer than asked for is an error, never buffered beyond the range', async () => {
    const blocks = blocksOf([100, 100]);
    const obj = fakeObject(300, { extra: 50 });
    const reads = new ParallelRangeReads(obj.reader, splitSegments(whole(blocks), blocks, 100), { parallel: 2, rangeBytes: 100, bytesInFlight: 1000 });
    await expect(drain(reads)).rejects.toMatchObject({ code: 'archive-corrupt', message: expect.stringContaining('more bytes than its index describes') });
  });

  it('destroy: every read in flight is destroyed, and next() throws the error given', async () => {
    const blocks = blocksOf(Array.from({ length: 20 }, () => 1000));
    const obj = fakeObject(20_000, { delayMs: 2 });
    const reads = new ParallelRangeReads(obj.reader, splitSegments(whole(blocks), blocks, 1000), { parallel: 4, rangeBytes: 1000, bytesInFlight: 5000 });
    const first = await reads.next();
    expect(first?.segment.start).toBe(0);
    await new Promise((r) => setTimeout(r, 5));
    reads.destroy(new CairnError('cancelled', 'stop'));
    await expect(reads.next()).rejects.toMatchObject({ code: 'cancelled', message: 'stop' });
    await new Promise((r) => setTimeout(r, 30));
    expect(obj.open()).toBe(0);
    expect(obj.streams.every((s) => s.destroyed || s.readableEnded)).toBe(true);
    // Nothing more was started after the stop; before it, no more than the 5000 bytes held allow.
    const started = obj.calls.length;
    await new Promise((r) => setTimeout(r, 20));
    expect(obj.calls.length).toBe(started);
    expect(started).toBeLessThanOrEqual(5);
  });

  it('reads every range into one of a few reused buffers, not into as many new ones as it reads', async () => {
    const blocks = blocksOf(Array.from({ length: 40 }, () => 100));
    const obj = fakeObject(4000);
    // Every chunk in memory of its own, as a socket's are.
    const own: RangeReader = async (start, end) => (await obj.reader(start, end)).map((c: Buffer) => Buffer.from(new Uint8Array(c).buffer));
    const reads = new ParallelRangeReads(own, splitSegments(whole(blocks), blocks, 200), { parallel: 3, rangeBytes: 200, bytesInFlight: 10_000 });
    const buffers = new Set<ArrayBufferLike>();
    const parts: Buffer[] = [];
    for (let r = await reads.next(); r; r = await reads.next()) {
      for await (const c of r.stream) {
        buffers.add((c as Buffer).buffer);
        parts.push(Buffer.from(c as Buffer));
      }
    }
    expect(Buffer.concat(parts).equals(obj.data)).toBe(true);
    expect(obj.calls.length).toBe(20);
    // The reads in flight, and the one being consumed.
    expect(buffers.size).toBeLessThanOrEqual(4);
  });

  it('rejects settings that are not positive, and takes RESTORE_* from the configuration with defaults', () => {
    expect(() => new ParallelRangeReads(async () => Readable.from([]), [], { parallel: 0, rangeBytes: 1, bytesInFlight: 1 })).toThrow(/positive/);
    expect(rangeReadsOf({ RESTORE_PARALLEL_RANGES: 6 })).toEqual({ parallel: 6, rangeBytes: 8 * 1024 * 1024, bytesInFlight: 32 * 1024 * 1024 });
  });
});
