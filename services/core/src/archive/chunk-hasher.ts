/**
 * A large file's two hashes while it is packed: the whole file's sha256 and each chunk's own
 * sha256 (the chunk hashes an incremental pack compares, archive-types.ts `chunks`). Both run
 * over the same bytes, so where the native helper has the CPU's SHA extensions one pass feeds
 * both (cairn_native.c, sha256Update): ~1.2× the cost of one hash instead of 2×. Otherwise two
 * OpenSSL hashes, as before. The digests are the same either way.
 */
import { createHash, hash as hashOnce, type Hash } from 'node:crypto';
import type { NativeReads } from './native-reads.ts';

/** The native helper's sha256 context: 8 words of state, the byte count, a 64-byte block. */
const CTX_BYTES = 104;

export interface ChunkHasher {
  /** Starts a new file. */
  reset(): void;
  /** Hashes one chunk of the file (in file order) into the file's hash; returns the chunk's own sha256. */
  chunk(bytes: Uint8Array): string;
  /** The whole file's sha256 (hex). */
  digest(): string;
}

class OpensslChunkHasher implements ChunkHasher {
  private whole: Hash = createHash('sha256');

  reset(): void {
    this.whole = createHash('sha256');
  }

  chunk(bytes: Uint8Array): string {
    this.whole.update(bytes);
    return hashOnce('sha256', bytes, 'hex');
  }

  digest(): string {
    return this.whole.digest('hex');
  }
}

class DualChunkHasher implements ChunkHasher {
  // Own ArrayBuffers: 8-byte aligned, as the helper requires.
  private readonly whole = new Uint8Array(new ArrayBuffer(CTX_BYTES));
  private readonly part = new Uint8Array(new ArrayBuffer(CTX_BYTES));
  private readonly out = Buffer.alloc(32);

  constructor(private readonly native: Required<Pick<NativeReads, 'sha256Init' | 'sha256Update' | 'sha256Final'>>) {
    native.sha256Init(this.whole);
  }

  reset(): void {
    this.native.sha256Init(this.whole);
  }

  chunk(bytes: Uint8Array): string {
    const n = this.native;
    n.sha256Init(this.part);
    // Chunks are whole multiples of 64 bytes but the last: both contexts stay at the same block offset.
    n.sha256Update(bytes, this.whole, this.part);
    n.sha256Final(this.part, this.out);
    return this.out.toString('hex');
  }

  digest(): string {
    this.native.sha256Final(this.whole, this.out);
    return this.out.toString('hex');
  }
}

export function chunkHasher(native: NativeReads | undefined): ChunkHasher {
  if (native?.sha256Dual === 1 && native.sha256Init && native.sha256Update && native.sha256Final) {
    return new DualChunkHasher({ sha256Init: native.sha256Init, sha256Update: native.sha256Update, sha256Final: native.sha256Final });
  }
  return new OpensslChunkHasher();
}
