/**
 * Writeback started during a restore (cairn_native.c startWriteback, extractor.ts): a large file's
 * pages go to disk as it is written, so the flush before the swap has little left. It must not
 * change a byte of what is restored, holes included.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileSource, packArchive, unpackArchive } from '@cairn/core/archive/index.ts';
import { loadNativeReads, nativeAddonPath } from '@cairn/core/archive/native-reads.ts';

let work: string;
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-writeback-'));
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const sha = (p: string): string => createHash('sha256').update(fs.readFileSync(p)).digest('hex');

describe('startWriteback', () => {
  const native = loadNativeReads(nativeAddonPath());

  it('starts writeback of a written range, reports a bad descriptor, and checks its arguments', () => {
    expect(native?.startWriteback).toBeTypeOf('function');
    const p = path.join(work, 'one');
    const fd = fs.openSync(p, 'w');
    try {
      fs.writeSync(fd, randomBytes(1 << 20));
      expect(native!.startWriteback!(fd, 0, 1 << 20)).toBe(0);
    } finally {
      fs.closeSync(fd);
    }
    // -1, not the closed descriptor: another open in this process could have been given its number.
    expect(native!.startWriteback!(-1, 0, 1 << 20)).toBe(os.constants.errno.EBADF);
    expect(() => (native!.startWriteback as unknown as (fd: number) => number)(fd)).toThrow(/startWriteback/);
    expect(() => native!.startWriteback!(fd, -1, 10)).toThrow(/startWriteback/);
  });

  it('leaves a restored large file exact, holes and all', async () => {
    const src = path.join(work, 'src');
    fs.mkdirSync(src);
    // 40 MiB: data, a 9 MiB hole, data; several writeback steps of the extractor (8 MiB).
    const big = path.join(src, 'big.bin');
    const fd = fs.openSync(big, 'w');
    fs.writeSync(fd, randomBytes(15 << 20), 0, 15 << 20, 0);
    fs.writeSync(fd, randomBytes(16 << 20), 0, 16 << 20, 24 << 20);
    fs.closeSync(fd);
    fs.writeFileSync(path.join(src, 'small.txt'), 'small\n');
    const archive = path.join(work, 'a.tar.zst');
    const packed = await packArchive({ volumes: [{ name: 'data', dir: src }], codec: 'zstd' }, fs.createWriteStream(archive));
    const target = path.join(work, 'out');
    await unpackArchive({ target, index: packed.index, source: fileSource(archive) });
    const restored = path.join(target, 'data', 'big.bin');
    expect(fs.statSync(restored).size).toBe(40 << 20);
    expect(sha(restored)).toBe(sha(big));
    // The hole stays one: fewer blocks allocated than the file's length.
    expect(fs.statSync(restored).blocks * 512).toBeLessThan(40 << 20);
    expect(fs.readFileSync(path.join(target, 'data', 'small.txt'), 'utf8')).toBe('small\n');
  });
});
