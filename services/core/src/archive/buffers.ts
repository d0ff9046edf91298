/**
 * Buffers handed between threads are transferred, not copied. Only an ArrayBuffer that nothing
 * else uses may be transferred: Node's small-buffer pool is shared, so small views are copied.
 */

export interface TransferView {
  buf: ArrayBuffer;
  offset: number;
  length: number;
}

/** A transferable view of `b`, which the caller must own exclusively when it is large. */
export function transferView(b: Buffer): TransferView {
  const ab = b.buffer as ArrayBuffer;
  // Allocations above half of Buffer.poolSize get their own ArrayBuffer; 64 KiB is well above it.
  if (ab.byteLength > 65536 || (b.byteOffset === 0 && b.byteLength === ab.byteLength)) {
    return { buf: ab, offset: b.byteOffset, length: b.byteLength };
  }
  const copy = new ArrayBuffer(b.length);
  new Uint8Array(copy).set(b);
  return { buf: copy, offset: 0, length: b.length };
}

export function fromView(v: TransferView): Buffer {
  return Buffer.from(v.buf, v.offset, v.length);
}
