/**
 * Small files' sha256, checked by the codec worker that decodes their block (unpack, verify). They
 * travel with the block as one transferred buffer rather than an array of objects with hex strings,
 * so nothing is cloned per file, and the worker compares raw digests. Layout per file: its offset
 * in the decoded block and its length (uint32 LE; a block is at most 64 MiB), then its sha256 (32
 * raw bytes).
 */
import { createHash } from 'node:crypto';
import type { NativeReads } from './native-reads.ts';

const RECORD = 40;

/** A file whose whole content lies in a decoded block. */
export interface CheckedContent {
  dataOffset: number;
  size: number;
  sha256?: string;
}

/** The checks for `files` (each with a sha256) of the block starting at tar offset `blockStart`. */
export function encodeContentChecks(files: readonly CheckedContent[], blockStart: number): ArrayBuffer {
  const buf = Buffer.from(new ArrayBuffer(files.length * RECORD));
  files.forEach((f, i) => {
    const at = i * RECORD;
    buf.writeUInt32LE(f.dataOffset - blockStart, at);
    buf.writeUInt32LE(f.size, at + 4);
    // A malformed hash (not 64 hex digits) leaves zeros behind: it fails as a mismatch.
    buf.write(f.sha256 ?? '', at + 8, 32, 'hex');
  });
  return buf.buffer as ArrayBuffer;
}

/**
 * The first check of `checks` that `block` does not pass: its position and the sha256 found.
 * `native`: the helper, when loaded; with the SHA extensions it hashes the block's files in one
 * call, two at a time (file-hash-batch.ts), instead of one OpenSSL hash per file.
 */
export function firstContentMismatch(block: Buffer, checks: ArrayBuffer, native?: NativeReads): { check: number; actual: string } | undefined {
  const c = Buffer.from(checks);
  const count = Math.floor(c.length / RECORD);
  for (let i = 0, at = 0; i < count; i++, at += RECORD) {
    if (c.readUInt32LE(at) + c.readUInt32LE(at + 4) > block.length) return { check: i, actual: 'outside the block' };
  }
  if (native?.sha256Dual === 1 && native.sha256Spans) {
    const spans = new Float64Array(count * 2);
    for (let i = 0, at = 0; i < count; i++, at += RECORD) {
      spans[2 * i] = c.readUInt32LE(at);
      spans[2 * i + 1] = c.readUInt32LE(at + 4);
    }
    const digests = Buffer.allocUnsafe(32 * count);
    native.sha256Spans(block, spans, count, digests);
    for (let i = 0, at = 0; i < count; i++, at += RECORD) {
      if (digests.compare(c, at + 8, at + RECORD, 32 * i, 32 * i + 32) !== 0) return { check: i, actual: digests.toString('hex', 32 * i, 32 * i + 32) };
    }
    return undefined;
  }
  for (let i = 0, at = 0; i < count; i++, at += RECORD) {
    const offset = c.readUInt32LE(at);
    const actual = createHash('sha256')
      .update(block.subarray(offset, offset + c.readUInt32LE(at + 4)))
      .digest();
    if (!actual.equals(c.subarray(at + 8, at + RECORD))) return { check: i, actual: actual.toString('hex') };
  }
  return undefined;
}
