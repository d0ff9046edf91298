/**
 * Compression of one block as an independent frame (a zstd frame, a gzip member, or the bytes
 * as they are). Synchronous: it runs inside worker threads, so the main thread never waits.
 *
 * zstd goes through zstd-napi's low-level binding with one reused context and output buffer
 * per thread: the high-level API allocates a compressBound()-sized buffer per call, and that
 * garbage (external memory V8 collects late) dominated the workers' RSS.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import * as zstdNs from 'zstd-napi/binding.js';
import { CairnError } from '../errors.ts';
import type { Codec } from './archive-types.ts';

// A CommonJS module without static export names: under ESM its exports sit on `default`.
const zstd = (zstdNs as unknown as { default?: typeof zstdNs }).default ?? zstdNs;

export const DEFAULT_LEVEL: Record<Codec, number> = { zstd: 3, gzip: 6, none: 0 };

// A context per level, for the last two: a pack's reader compresses its index entries at level 1
// and its small blocks at the archive's level, and a new context for every switch would cost more than either.
const cctxs = new Map<number, InstanceType<typeof zstd.CCtx>>();
let dctx: InstanceType<typeof zstd.DCtx> | undefined;
let dest = Buffer.alloc(0);

/** Returns the frame in a Buffer of its own, or `data` itself for `none`. */
export function compressBlock(codec: Codec, level: number, data: Uint8Array): Buffer {
  if (codec === 'zstd') {
    let cctx = cctxs.get(level);
    if (!cctx) {
      // Two levels at most: a codec thread serves every pack of the process, whatever its level.
      if (cctxs.size >= 2) cctxs.delete(cctxs.keys().next().value!);
      cctx = new zstd.CCtx();
      cctx.setParameter(zstd.CParameter.compressionLevel, level);
      // The frame checksum (xxh64) lets every block be verified on its own when decoded.
      cctx.setParameter(zstd.CParameter.checksumFlag, 1);
      cctxs.set(level, cctx);
    }
    // Into one reused buffer, then an exact-size copy: a fresh compressBound()-sized buffer per
    // frame measured slower (page faults, and V8 counts it all as external memory).
    const bound = zstd.compressBound(data.length);
    if (dest.length < bound) dest = Buffer.allocUnsafeSlow(bound);
    const n = cctx.compress2(dest, data);
    const out = Buffer.allocUnsafeSlow(n);
    dest.copy(out, 0, 0, n);
    return out;
  }
  if (codec === 'gzip') return gzipSync(data, { level });
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** `into`: memory to decode a zstd frame into (reused by the caller; used when it holds `expectedLength` bytes). */
export function decompressBlock(codec: Codec, data: Uint8Array, expectedLength: number, into?: ArrayBuffer | Buffer): Buffer {
  let out: Buffer;
  try {
    if (codec === 'zstd') {
      dctx ??= new zstd.DCtx();
      out = into && into.byteLength >= expectedLength ? intoView(into, expectedLength) : Buffer.allocUnsafeSlow(Math.max(0, expectedLength));
      const n = dctx.decompress(out, data);
      if (n !== expectedLength) throw new Error(`frame holds ${n} bytes`);
    } else if (codec === 'gzip') {
      out = gunzipSync(data);
    } else {
      out = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    }
  } catch (err) {
    throw new CairnError('archive-corrupt', `block is corrupt: it does not decode (${codec}): ${(err as Error).message}`, { cause: err });
  }
  if (out.length !== expectedLength) {
    throw new CairnError('archive-corrupt', `block decodes to ${out.length} bytes, index says ${expectedLength}`);
  }
  return out;
}

function intoView(into: ArrayBuffer | Buffer, length: number): Buffer {
  return Buffer.isBuffer(into) ? into.subarray(0, length) : Buffer.from(into, 0, length);
}
