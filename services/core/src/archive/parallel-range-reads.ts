/**
 * Parallel range reads for restores: the stored bytes to read are cut into ranges at frame
 * boundaries, a bounded number of ranges is fetched at once (each read whole into memory, so
 * several transfers really run side by side instead of waiting paused behind the one being
 * consumed), and they are handed to the consumer strictly in order. Memory is bounded by
 * `bytesInFlight`: the ranges being fetched, fetched and waiting, and the one being consumed.
 *
 * Each range is copied, as it arrives, into a buffer of its own that is reused for a later range
 * once consumed. Keeping the socket's chunks instead made them outlive young-generation
 * collections while their range waited its turn: promoted, they stayed counted until a full
 * collection. With that and V8's late concurrent sweeping of dead buffers (memory-flags.ts), the
 * store thread ran ~100 full collections per 2 GiB restore; either fix alone left ~80–90 (DESIGN §10).
 */
import { Readable } from 'node:stream';
import { CairnError } from '../errors.ts';
import { eachChunk } from '../storage/each-chunk.ts';
import type { ArchiveBlock, RangeReader, RangeReadSettings } from './archive-types.ts';
import type { RangeSource, Segment } from './block-source.ts';

/** Defaults of RESTORE_PARALLEL_RANGES, RESTORE_RANGE_SIZE and RESTORE_BYTES_IN_FLIGHT. */
export const DEFAULT_RANGE_READS: RangeReadSettings = { parallel: 4, rangeBytes: 8 * 1024 * 1024, bytesInFlight: 32 * 1024 * 1024 };

/** The settings from the configuration (RESTORE_*), defaults for what it leaves out. */
export function rangeReadsOf(config: { RESTORE_PARALLEL_RANGES?: number; RESTORE_RANGE_SIZE?: number; RESTORE_BYTES_IN_FLIGHT?: number }): RangeReadSettings {
  return {
    parallel: config.RESTORE_PARALLEL_RANGES ?? DEFAULT_RANGE_READS.parallel,
    rangeBytes: config.RESTORE_RANGE_SIZE ?? DEFAULT_RANGE_READS.rangeBytes,
    bytesInFlight: config.RESTORE_BYTES_IN_FLIGHT ?? DEFAULT_RANGE_READS.bytesInFlight,
  };
}

/** Cuts each segment into ranges of at most `rangeBytes` stored bytes, at block boundaries. */
export function* splitSegments(segments: Iterable<Segment>, blocks: readonly ArchiveBlock[], rangeBytes: number): Generator<Segment> {
  for (const s of segments) {
    let first = s.firstBlock;
    for (let i = s.firstBlock; i <= s.lastBlock; i++) {
      const b = blocks[i]!;
      const end = b.compressedOffset + b.compressedLength - 1;
      const start = blocks[first]!.compressedOffset;
      const next = blocks[i + 1];
      const full = i === s.lastBlock || next!.compressedOffset + next!.compressedLength - start > rangeBytes;
      if (!full) continue;
      yield { object: s.object, firstBlock: first, lastBlock: i, start, end };
      first = i + 1;
    }
  }
}

function lengthOf(s: Segment): number {
  return s.end - s.start + 1;
}

interface Fetch {
  segment: Segment;
  bytes: number;
  /** The range's bytes, once read whole (a view of a reused buffer). */
  data: Promise<Buffer>;
  /** The range's stream while it is being read (destroyed on close). */
  stream?: Readable;
  /** The buffer its bytes are read into (back to the spares once consumed). */
  buffer?: ArrayBuffer;
}

function noop(): void {}

/**
 * Fetches the ranges of a sequence of segments, up to `parallel` at once and `bytesInFlight`
 * stored bytes held, and hands each out (as a stream over its buffered bytes) in order. A failed
 * read stops new reads from starting; its error is thrown when its turn comes, so the ranges
 * before it are still delivered.
 */
export class ParallelRangeReads implements RangeSource {
  private readonly queue: Fetch[] = [];
  private readonly segments: Iterator<Segment>;
  private upcoming: IteratorResult<Segment>;
  private fetching = 0;
  private held = 0;
  private consuming: Fetch | undefined;
  /** The stream handed out last (destroyed on close, so its consumer stops). */
  private current: Readable | undefined;
  /** Range buffers consumed and free for the next reads (at most as many as can be held at once). */
  private readonly spare: ArrayBuffer[] = [];
  private failedAhead = false;
  private error: Error | undefined;
  private closed = false;
  /** Most ranges read at once so far, and most stored bytes held at once (tests, measurements). */
  peakFetching = 0;
  peakHeld = 0;

  constructor(
    private readonly reader: RangeReader,
    segments: Iterable<Segment>,
    private readonly settings: RangeReadSettings = DEFAULT_RANGE_READS,
  ) {
    if (!(settings.parallel >= 1 && settings.rangeBytes >= 1 && settings.bytesInFlight >= 1))
      throw new CairnError('config', `range read settings must be positive, got ${JSON.stringify(settings)}`);
    this.segments = segments[Symbol.iterator]();
    this.upcoming = this.segments.next();
  }

  async next(): Promise<{ segment: Segment; stream: Readable } | undefined> {
    this.throwIfClosed();
    this.release();
    this.fill();
    const head = this.queue.shift();
    if (!head) return undefined;
    this.consuming = head;
    const data = await head.data;
    this.throwIfClosed();
    this.current = Readable.from([data], { objectMode: false });
    // Destroyed with the error on close: its reader sees it, an abandoned one must not throw it.
    this.current.on('error', noop);
    return { segment: head.segment, stream: this.current };
  }

  destroy(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.error = err;
    this.current?.destroy(err);
    this.current = undefined;
    for (const f of this.queue) f.stream?.destroy(err);
    this.queue.length = 0;
    this.consuming = undefined;
  }

  close(): void {
    this.destroy();
  }

  private throwIfClosed(): void {
    if (this.closed) throw this.error ?? new CairnError('cancelled', 'range reads stopped');
  }

  /** The range handed out before has been consumed: its bytes no longer count, its buffer is free. */
  private release(): void {
    this.current = undefined;
    if (!this.consuming) return;
    this.held -= this.consuming.bytes;
    const done = this.consuming.buffer;
    if (done && this.spare.length < this.settings.parallel + 1) this.spare.push(done);
    this.consuming = undefined;
  }

  /** A buffer for a range of `bytes`: a spare one large enough, or a new one. */
  private bufferFor(bytes: number): ArrayBuffer {
    const i = this.spare.findIndex((b) => b.byteLength >= bytes);
    if (i >= 0) return this.spare.splice(i, 1)[0]!;
    return new ArrayBuffer(Math.max(bytes, Math.min(this.settings.rangeBytes, this.settings.bytesInFlight)));
  }

  /** Starts reads while fewer than `parallel` run and their bytes fit (one always may). */
  private fill(): void {
    const { parallel, bytesInFlight } = this.settings;
    while (!this.closed && !this.failedAhead && !this.upcoming.done && this.fetching < parallel) {
      const segment = this.upcoming.value;
      const bytes = lengthOf(segment);
      if (this.held > 0 && this.held + bytes > bytesInFlight) break;
      this.upcoming = this.segments.next();
      this.held += bytes;
      this.fetching++;
      this.peakFetching = Math.max(this.peakFetching, this.fetching);
      this.peakHeld = Math.max(this.peakHeld, this.held);
      const f: Fetch = { segment, bytes, data: Promise.resolve(Buffer.alloc(0)) };
      f.data = this.read(f);
      // Awaited in order by next(); until then a failure is held, not reported as unhandled.
      f.data.catch(noop);
      this.queue.push(f);
    }
  }

  private async read(f: Fetch): Promise<Buffer> {
    const { segment: s } = f;
    try {
      const stream = await (s.object === undefined ? this.reader(s.start, s.end) : this.reader(s.start, s.end, s.object));
      f.stream = stream;
      if (this.closed) stream.destroy(this.error);
      f.buffer = this.bufferFor(f.bytes);
      const into = Buffer.from(f.buffer, 0, f.bytes);
      let got = 0;
      // Copied as each chunk comes, the stream flowing: no pause, resume or promise per chunk.
      await eachChunk(stream, (chunk) => {
        // Never buffer more than asked for: an overlong answer is an error (the body is destroyed), not more memory.
        if (got + chunk.length > f.bytes) throw new CairnError('archive-corrupt', 'the archive holds more bytes than its index describes');
        chunk.copy(into, got);
        got += chunk.length;
      });
      f.stream = undefined;
      return into.subarray(0, got);
    } catch (err) {
      this.failedAhead = true;
      throw err;
    } finally {
      this.fetching--;
      this.fill();
    }
  }
}
