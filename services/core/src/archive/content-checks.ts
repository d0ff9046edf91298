/**
 * Small files' sha256, checked by the codec worker that decodes their block (unpack, verify). They
 * travel with the block as one transferred buffer rather than an array of objects with hex strings,
 * so nothing is cloned per file, and the worker compares raw digests. Layout per file: its offset
 * in the decoded block and its length (uint32 LE; a block is at most 64 MiB), then its sha256 (32
 * raw bytes).
 */
import { createHash } from 'node:crypto';

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

/** The first check of `checks` that `block` does not pass: its position and the sha256 found. */
export function firstContentMismatch(block: Buffer, checks: ArrayBuffer): { check: number; actual: string } | undefined {
  const c = Buffer.from(checks);
  for (let i = 0, at = 0; at + RECORD <= c.length; i++, at += RECORD) {
    const offset = c.readUInt32LE(at);
    const length = c.readUInt32LE(at + 4);
    if (offset + length > block.length) return { check: i, actual: 'outside the block' };
    const actual = createHash('sha256')
      .update(block.subarray(offset, offset + length))
      .digest();
    if (!actual.equals(c.subarray(at + 8, at + RECORD))) return { check: i, actual: actual.toString('hex') };
  }
  return undefined;
}
