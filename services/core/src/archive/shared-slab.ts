/**
 * Fixed slots of one SharedArrayBuffer, for an unpack's decoded blocks and its stored frames. A
 * block decoded into a slot goes from the codec worker to the extract worker as a slot number, a
 * frame from the store thread to a codec worker likewise: no ArrayBuffer enters the main thread.
 * Each one that did (a transfer makes a new ArrayBuffer object in the receiving thread, counted as
 * external memory until its next collection) made V8 mark the main thread's whole heap every few
 * hundred milliseconds: with a service's heap, ~20 full collections and ~2 CPU seconds per 2 GiB
 * restored (DESIGN §10). The other threads are each given the SharedArrayBuffer once and make
 * views of its slots.
 */
import { randomUUID } from 'node:crypto';

/** At most this many bytes in one slab (blocks can be up to 64 MiB). */
const MAX_SLAB_BYTES = 64 * 1024 * 1024;
/** Fewer slots than this would run out at once: then no slab, and buffers are transferred. */
export const MIN_SLOTS = 4;

/** How a worker thread finds a slab: by id, with the buffer itself the first time it is sent there. */
export interface SlabRef {
  id: string;
  sab?: SharedArrayBuffer;
}

export class SharedSlab {
  readonly id = randomUUID();
  readonly sab: SharedArrayBuffer;
  private readonly free: number[] = [];

  private constructor(
    sab: SharedArrayBuffer,
    readonly slotSize: number,
  ) {
    this.sab = sab;
    for (let i = Math.floor(sab.byteLength / slotSize) - 1; i >= 0; i--) this.free.push(i * slotSize);
  }

  /** A slab of up to `slots` slots of `slotSize` bytes, or undefined when fewer than MIN_SLOTS would fit (or are asked for). */
  static create(slotSize: number, slots: number): SharedSlab | undefined {
    if (slotSize <= 0) return undefined;
    const n = Math.min(slots, Math.floor(MAX_SLAB_BYTES / slotSize));
    return n >= MIN_SLOTS ? new SharedSlab(new SharedArrayBuffer(slotSize * n), slotSize) : undefined;
  }

  /** Another thread's side of a slab made there, every slot free (the thread that hands them out keeps the free list). */
  static over(sab: SharedArrayBuffer, slotSize: number): SharedSlab {
    return new SharedSlab(sab, slotSize);
  }

  /** A free slot's byte offset, or undefined when all are in use (the caller falls back to a buffer of its own). */
  take(): number | undefined {
    return this.free.pop();
  }

  /** A slot back, by the offset take() gave. */
  give(offset: number): void {
    this.free.push(offset);
  }

  /** A view of `length` bytes at `offset`. */
  view(offset: number, length: number): Buffer {
    return Buffer.from(this.sab, offset, length);
  }

  /** The slot that `b` starts, when it is a view of this slab. */
  slotOf(b: Buffer): number | undefined {
    return b.buffer === this.sab ? b.byteOffset : undefined;
  }
}
