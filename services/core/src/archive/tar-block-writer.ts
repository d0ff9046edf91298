/**
 * The pack reader's output: the tar stream written straight into fixed-size block buffers, each
 * handed on whole (for compression on the main thread) as soon as it is full.
 */
import type { Hash } from 'node:crypto';
import { readSync } from 'node:fs';

const ZEROS = Buffer.alloc(64 * 1024);

/**
 * Sends a full block (its first `length` bytes) and returns the buffer to continue in: the
 * buffer is transferred away, so it must not be used after the call.
 */
export type ShipBlock = (block: Buffer, length: number) => Buffer;

/** A frame of another archive object reused as it is (an incremental pack: pack-reuse.ts). */
export interface ReusedFrame {
  /** The backup whose archive object holds it. */
  object: string;
  compressedOffset: number;
  compressedLength: number;
  uncompressedLength: number;
  sha256?: string;
  /** The last frame of its (encrypted) object. */
  last?: boolean;
}

/** Sends frames reused from other objects, which stand for the next `length` bytes of the tar. */
export type ShipFrames = (frames: ReusedFrame[], length: number) => void;

export class TarBlockWriter {
  /**
   * The current block and where the next byte goes in it. Written through the methods below,
   * or in place by a caller that checked `room` first (the native helper reads into it).
   */
  block: Buffer;
  pos = 0;
  /** Tar offset of block[0]. */
  private start = 0;
  /** Called with the current block before it is shipped or its content dropped (deferred hashing). */
  beforeShip: ((block: Buffer) => void) | undefined;

  constructor(
    readonly blockSize: number,
    private readonly ship: ShipBlock,
    private readonly shipFrames: ShipFrames = () => {
      throw new Error('this pack reuses no frames');
    },
  ) {
    this.block = Buffer.allocUnsafeSlow(blockSize);
  }

  /** Tar offset of the next byte written. */
  get tarPos(): number {
    return this.start + this.pos;
  }

  /** Bytes left in the current block. */
  get room(): number {
    return this.blockSize - this.pos;
  }

  put(src: Buffer): void {
    // TypedArray set/fill: Buffer.copy costs ~1 µs of view creation per call, at 100k files.
    if (src.length <= this.blockSize - this.pos) {
      this.block.set(src, this.pos);
      this.pos += src.length;
      return;
    }
    let i = 0;
    while (i < src.length) {
      if (this.pos === this.blockSize) this.flush();
      const n = src.copy(this.block, this.pos, i, Math.min(src.length, i + this.blockSize - this.pos));
      this.pos += n;
      i += n;
    }
  }

  /** Writes `count` zero bytes, hashing them into `hash` when given (a file's missing tail). */
  putZeros(count: number, hash?: Hash): void {
    while (count > 0) {
      if (this.pos === this.blockSize) this.flush();
      const n = Math.min(count, this.blockSize - this.pos, ZEROS.length);
      this.block.fill(0, this.pos, this.pos + n);
      hash?.update(ZEROS.subarray(0, n));
      this.pos += n;
      count -= n;
    }
  }

  /**
   * Reads up to `max` bytes of `fd` at `position` into the current block (no further than its
   * end, which must not have been reached: see `room`) and hashes them into `hash` when given.
   * Returns the count, 0 at end of file; a read error is thrown.
   */
  readFrom(fd: number, max: number, position: number, hash?: Hash): number {
    const n = readSync(fd, this.block, this.pos, Math.min(max, this.blockSize - this.pos), position);
    hash?.update(this.block.subarray(this.pos, this.pos + n));
    this.pos += n;
    return n;
  }

  /**
   * Puts reused frames in the stream in place of `length` tar bytes. The current block must be
   * empty (flushed, or its content dropped with `discard`): frames never share a block.
   */
  reuse(frames: ReusedFrame[], length: number): void {
    if (this.pos !== 0) throw new Error('reused frames must start a block');
    this.shipFrames(frames, length);
    this.start += length;
  }

  /** Drops what the current block holds (a chunk that turned out to be reusable). */
  discard(): void {
    this.beforeShip?.(this.block);
    this.pos = 0;
  }

  /** Ships the current block if it holds anything. */
  flush(): void {
    if (this.pos === 0) return;
    this.beforeShip?.(this.block);
    const next = this.ship(this.block, this.pos);
    this.start += this.pos;
    this.block = next;
    this.pos = 0;
  }
}
