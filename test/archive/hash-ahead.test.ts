/**
 * The hash-ahead worker's hashing (hash-ahead-job.ts): files whose content spans blocks get their
 * sha256 from the blocks fed in order, each reported with the block holding its last byte. And a
 * restore whose blocks reach the extract worker both ways, through that worker and straight from
 * the main thread, interleaved: the extract worker takes them in their order.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SpanningHashes } from '@cairn/core/archive/hash-ahead-job.ts';
import { unpackArchive } from '@cairn/core/archive/index.ts';
import { packToFile } from './helpers/archive.ts';

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

describe('blocks through the hash-ahead worker and straight to the extract worker', () => {
  it('interleaved many times, restore the tree exactly (and a wrong byte in a large file is still found)', async () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-ahead-'));
    try {
      // Small 16 KiB blocks: large files span blocks (hashed ahead), runs of small files fill
      // blocks of their own (sent directly), one after the other, 12 times over.
      const src = path.join(work, 'src');
      const want = new Map<string, Buffer>();
      for (let i = 0; i < 12; i++) {
        const dir = path.join(src, `d${String(i).padStart(2, '0')}`);
        fs.mkdirSync(dir, { recursive: true });
        const large = randomBytes(40_000 + i * 1000);
        fs.writeFileSync(path.join(dir, 'a-large.bin'), large);
        want.set(`d${String(i).padStart(2, '0')}/a-large.bin`, large);
        for (let j = 0; j < 40; j++) {
          const small = randomBytes(100 + j * 17);
          fs.writeFileSync(path.join(dir, `b-small-${j}`), small);
          want.set(`d${String(i).padStart(2, '0')}/b-small-${j}`, small);
        }
      }
      const archive = path.join(work, 'a.tar.zst');
      const r = await packToFile({ volumes: [{ name: 'data', dir: src }], codec: 'zstd', blockSize: 16 * 1024 }, archive);
      expect(r.index.blocks.length).toBeGreaterThan(50);

      const target = path.join(work, 'out');
      const u = await unpackArchive({ target, index: r.index, source: { stream: fs.createReadStream(archive) } });
      expect(u.archiveVerified).toBe(true);
      expect(u.filesWritten).toBe(want.size);
      for (const [rel, content] of want) expect(fs.readFileSync(path.join(target, 'data', rel)).equals(content), rel).toBe(true);

      // The index says another sha256 for one large file: only the hash-ahead digest can find it.
      const index = structuredClone(r.index);
      const victim = index.entries.find((e) => e.path === 'data/d07/a-large.bin')!;
      victim.sha256 = '0'.repeat(64);
      const bad = path.join(work, 'bad');
      await expect(unpackArchive({ target: bad, index, source: { stream: fs.createReadStream(archive) } })).rejects.toThrow(/d07\/a-large\.bin/);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  }, 60_000);
});
