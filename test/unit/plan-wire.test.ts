/** The extract worker's plan items survive their compact form (plan-wire.ts) unchanged, every optional field included. */
import { describe, expect, it } from 'vitest';
import type { PlanItem } from '@cairn/core/archive/extractor.ts';
import { decodePlan, encodePlan } from '@cairn/core/archive/plan-wire.ts';

const base = { mode: 0o644, uid: 1000, gid: 100, mtime: '1733500000123456789' };

describe('plan items on the wire', () => {
  it('decode(encode(items)) gives the same items', () => {
    const items: PlanItem[] = [
      { ...base, headerOffset: 0, dataOffset: 512, path: 'data', type: 'dir', size: 0, mode: 0o755, mtime: '-1500000001' },
      { ...base, headerOffset: 512, dataOffset: 1536, path: 'data/a.txt', type: 'file', size: 11, sha256: 'ab'.repeat(32), verified: true, written: true },
      { ...base, headerOffset: 2048, dataOffset: 3072, path: 'data/b.bin', type: 'file', size: 0, sha256: 'cd'.repeat(32), hashedAhead: true },
      {
        ...base,
        headerOffset: 3072,
        dataOffset: 4096,
        path: 'data/é/\udcff',
        type: 'file',
        size: 5,
        sha256: 'ef'.repeat(32),
        written: true,
        writeErrnos: [1, 0],
      },
      { ...base, headerOffset: 4096, dataOffset: 5120, path: 'data/l', type: 'symlink', size: 0, linkTarget: '../x y' },
      { ...base, headerOffset: 5120, dataOffset: 6144, path: 'data/h', type: 'hardlink', size: 0, linkTarget: 'data/a.txt', covered: true },
      { ...base, headerOffset: 6144, dataOffset: 7168, path: 'data/src', type: 'file', size: 3, sha256: '01'.repeat(32), outputs: ['data/h1', 'data/h2'] },
      { ...base, headerOffset: 2 ** 40, dataOffset: 2 ** 40 + 512, path: 'data/far', type: 'file', size: 2 ** 36, uid: 4_000_000_000, gid: 0, linkTarget: '' },
    ];
    const wire = encodePlan(items);
    expect(decodePlan(structuredClone(wire))).toEqual(items);
  });

  it('an empty block has an empty plan', () => {
    expect(decodePlan(encodePlan([]))).toEqual([]);
  });
});
