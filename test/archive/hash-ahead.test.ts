/**
 * The hash-ahead worker's hashing (hash-ahead-job.ts): files whose content spans blocks get their
 * sha256 from the blocks fed in order, each reported with the block holding its last byte.
 */
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SpanningHashes } from '@cairn/core/archive/hash-ahead-job.ts';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('SpanningHashes', () => {
  it('hashes content spanning blocks, reporting each file in the block of its last byte', () => {
    // A tar-like stream: file A's content at 1024..4096+100, file B's at 5120..5120+300.
    const stream = randomBytes(8192);
    const a = { headerOffset: 0, dataOffset: 1024, size: 3172 };
    const b = { headerOffset: 4608, dataOffset: 5120, size: 300 };
    const h = new SpanningHashes();
    const blockSize = 1536;
    const got: [number, string, number][] = [];
    for (let at = 0; at < stream.length; at += blockSize) {
      const files = [a, b].filter((f) => f.headerOffset >= at && f.headerOffset < at + blockSize);
      for (const [off, digest] of h.feed(files, at, stream.subarray(at, at + blockSize))) got.push([off, digest, at]);
    }
    expect(got).toEqual([
      [0, sha(stream.subarray(1024, 1024 + 3172)), 3072],
      [4608, sha(stream.subarray(5120, 5420)), 4608],
    ]);
  });
});
