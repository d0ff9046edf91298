/**
 * Stored archive bytes -> the frames of the block table. cutFrames cuts one stream that covers
 * blocks [first..last]; blocks nobody needs are skipped without copying (but still hashed when
 * the whole archive's sha256 is being checked). Through a range reader, a run of blocks is read
 * as segments (format 2: a run may cross objects), a few range reads open ahead (RangeReadAhead),
 * or fetched in parallel (ParallelRangeReads, restores).
 */
import type { Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { CairnError } from '../errors.ts';
import { chunksOf } from '../storage/each-chunk.ts';
import type { ArchiveBlock, RangeReader } from './archive-types.ts';

export interface Frame {
  block: number;
  /** The stored bytes of the block (an ArrayBuffer of its own), or undefined when not needed. */
  data: Buffer | undefined;
}

/** Copies `length` bytes of `src` from `srcOffset` into `dst` at `dstOffset`. */
export type FrameCopy = (dst: Buffer, dstOffset: number, src: Buffer, srcOffset: number, length: number) => void;

const copyChunk: FrameCopy = (dst, dstOffset, src, srcOffset, length) => void src.copy(dst, dstOffset, srcOffset, srcOffset + length);

export async function* cutFrames(
  stream: Readable,
  blocks: readonly ArchiveBlock[],
  first: number,
  last: number,
  needed: (block: number) => boolean,
  hash?: Hash,
  /** Buffer for a frame of `len` bytes; it must own its ArrayBuffer (it is transferred), or be a slot of a frame slab. */
  alloc: (len: number) => Buffer = (len) => Buffer.allocUnsafeSlow(len),
  /** Copies into a frame (a slot of a frame slab needs the native copy: shared-slab.ts). */
  copy: FrameCopy = copyChunk,
): AsyncGenerator<Frame> {
  let i = first;
  let filled = 0;
  let cur: Buffer | undefined;
  let want = i <= last ? needed(i) : false;
  for await (const chunk of chunksOf(stream)) {
    let pos = 0;
    while (pos < chunk.length) {
      if (i > last) throw new CairnError('archive-corrupt', 'the archive holds more bytes than its index describes');
      const b = blocks[i]!;
      const take = Math.min(b.compressedLength - filled, chunk.length - pos);
      if (want) {
        cur ??= alloc(b.compressedLength);
        copy(cur, filled, chunk, pos, take);
        // Hashed from the copy, still in the cache: a quarter less CPU than hashing the chunk first.
        hash?.update(cur.subarray(filled, filled + take));
      } else hash?.update(chunk.subarray(pos, pos + take));
      filled += take;
      pos += take;
      if (filled === b.compressedLength) {
        yield { block: i, data: cur };
        cur = undefined;
        filled = 0;
        i++;
        want = i <= last ? needed(i) : false;
      }
    }
  }
  if (i <= last) throw new CairnError('archive-corrupt', `the archive ends inside block ${i} of ${blocks.length}`);
}

/**
 * One range read: consecutive blocks [firstBlock..lastBlock] stored back to back in one object
 * (format 2: a run of blocks may cross objects, or jump within one).
 */
export interface Segment {
  /** The backup whose archive object holds the blocks; undefined: the archive's own object. */
  object: string | undefined;
  firstBlock: number;
  lastBlock: number;
  /** Stored byte range in that object (end inclusive). */
  start: number;
  end: number;
}

/** Splits blocks [first..last] into maximal segments: same object, contiguous stored offsets. */
export function* segmentsOf(blocks: readonly ArchiveBlock[], first: number, last: number): Generator<Segment> {
  let cur: Segment | undefined;
  for (let i = first; i <= last; i++) {
    const b = blocks[i]!;
    const end = b.compressedOffset + b.compressedLength - 1;
    if (cur && cur.object === b.object && cur.end + 1 === b.compressedOffset) {
      cur.lastBlock = i;
      cur.end = end;
      continue;
    }
    if (cur) yield cur;
    cur = { object: b.object, firstBlock: i, lastBlock: i, start: b.compressedOffset, end };
  }
  if (cur) yield cur;
}

/** Where a block's stored bytes are, for error messages. */
export function describeBlock(blocks: readonly ArchiveBlock[], block: number): string {
  const b = blocks[block];
  if (!b) return `block ${block}`;
  const where = b.object === undefined ? "the archive's own object" : `the archive object of backup ${b.object}`;
  return `block ${block} (stored bytes ${b.compressedOffset}..${b.compressedOffset + b.compressedLength - 1} of ${where})`;
}

/** A CairnError about a block, with where the block is stored in front of its message. */
export function blockError(err: unknown, blocks: readonly ArchiveBlock[], block: number): unknown {
  if (!(err instanceof CairnError) || err.code === 'cancelled') return err;
  return new CairnError(err.code, `${describeBlock(blocks, block)}: ${err.message}`, { details: err.details, permanent: err.permanent, cause: err });
}

/** Range reads open at once: the one being consumed and up to this many after it. */
export const READ_AHEAD = 4;
/**
 * A read is opened ahead only while the stored bytes before it (still to be consumed) stay under
 * this: a read opened far ahead would sit idle while a large segment is consumed (and an idle
 * connection may be dropped by the server), where its latency no longer matters anyway.
 */
export const READ_AHEAD_BYTES = 64 * 1024 * 1024;

function segmentLength(s: Segment): number {
  return s.end - s.start + 1;
}

function noop(): void {}

/** Range reads of a sequence of segments, handed out in order as streams. */
export interface RangeSource {
  /**
   * The next segment and its stream, or undefined after the last. The stream handed out before
   * must have been consumed (or abandoned: close() or destroy() then). Its chunks may be views of
   * a buffer the source reuses after this call: a consumer copies what it keeps.
   */
  next(): Promise<{ segment: Segment; stream: Readable } | undefined>;
  /** Stops: every stream opened and not consumed is destroyed (with `err`, if given). */
  destroy(err?: Error): void;
  /** destroy() without an error: the consumer stopped early. */
  close(): void;
}

/**
 * Opens the range reads of a sequence of segments a few at a time ahead of the one being
 * consumed, so the latency of reads from several objects overlaps; hands their streams out
 * strictly in order. Memory stays bounded: a stream not yet consumed holds only what its own
 * buffers take before backpressure stops it (nothing is read into memory here).
 */
export class RangeReadAhead implements RangeSource {
  private readonly queue: { segment: Segment; stream: Promise<Readable> }[] = [];
  private readonly segments: Iterator<Segment>;
  private upcoming: IteratorResult<Segment>;
  private current: Readable | undefined;
  private error: Error | undefined;
  private closed = false;

  constructor(
    private readonly reader: RangeReader,
    segments: Iterable<Segment>,
    private readonly ahead = READ_AHEAD,
    private readonly aheadBytes = READ_AHEAD_BYTES,
  ) {
    this.segments = segments[Symbol.iterator]();
    this.upcoming = this.segments.next();
  }

  /**
   * The next segment and its stream, or undefined after the last. The stream handed out before
   * must have been consumed (or abandoned: close() or destroy() then).
   */
  async next(): Promise<{ segment: Segment; stream: Readable } | undefined> {
    this.throwIfClosed();
    this.current = undefined;
    this.fill();
    const head = this.queue.shift();
    if (!head) return undefined;
    const stream = await head.stream;
    if (this.closed) {
      stream.destroy(this.error);
      this.throwIfClosed();
    }
    this.current = stream;
    return { segment: head.segment, stream };
  }

  /** Stops: every stream opened and not consumed is destroyed (with `err`, if given). */
  destroy(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.error = err;
    this.current?.destroy(err);
    this.current = undefined;
    for (const q of this.queue) q.stream.then((s) => s.destroy(err), noop);
    this.queue.length = 0;
  }

  /** destroy() without an error: the consumer stopped early. */
  close(): void {
    this.destroy();
  }

  private throwIfClosed(): void {
    if (this.closed) throw this.error ?? new CairnError('cancelled', 'range reads stopped');
  }

  /** Opens segments until READ_AHEAD are queued behind the next one, or their bytes are enough. */
  private fill(): void {
    let queued = 0;
    for (const q of this.queue) queued += segmentLength(q.segment);
    while (!this.upcoming.done && this.queue.length < this.ahead + 1 && (this.queue.length === 0 || queued <= this.aheadBytes)) {
      const segment = this.upcoming.value;
      this.upcoming = this.segments.next();
      const stream = this.open(segment);
      // Awaited in order by next(); until then a failure is held, not reported as unhandled.
      stream.catch(noop);
      this.queue.push({ segment, stream });
      queued += segmentLength(segment);
    }
  }

  private async open(s: Segment): Promise<Readable> {
    const stream = await (s.object === undefined ? this.reader(s.start, s.end) : this.reader(s.start, s.end, s.object));
    // An error while it waits its turn surfaces when it is consumed, not as an uncaught event.
    stream.on('error', noop);
    // Paused until its turn: a stream the reader put in flowing mode (a 'data' listener that
    // counts bytes) must not emit its data before it is consumed.
    stream.pause();
    if (this.closed) stream.destroy(this.error);
    return stream;
  }
}

/**
 * The frames of the segments a RangeSource serves, in order. `hash` sees every stored byte
 * read (the whole archive's sha256 when the segments cover its own object).
 */
export async function* rangeFrames(
  reads: RangeSource,
  blocks: readonly ArchiveBlock[],
  alloc?: (len: number) => Buffer,
  hash?: Hash,
  copy?: FrameCopy,
): AsyncGenerator<Frame> {
  try {
    for (let r = await reads.next(); r; r = await reads.next()) {
      const { segment, stream } = r;
      try {
        yield* cutFrames(stream, blocks, segment.firstBlock, segment.lastBlock, () => true, hash, alloc, copy);
      } catch (err) {
        throw segmentError(err, segment);
      }
    }
  } finally {
    reads.close();
  }
}

/** A short or overlong range read, named by what was asked of which object. */
export function segmentError(err: unknown, s: Segment): unknown {
  if (!(err instanceof CairnError) || err.code !== 'archive-corrupt') return err;
  const where = s.object === undefined ? "the archive's own object" : `the archive object of backup ${s.object}`;
  return new CairnError(err.code, `${err.message} (range read of bytes ${s.start}..${s.end} of ${where})`, { details: err.details, cause: err });
}
