import { describe, expect, it } from 'vitest';
import { BlockCredits } from '@cairn/core/archive/block-credits.ts';

const slot = (): Int32Array => new Int32Array(new SharedArrayBuffer(4));

/** The reader's side: takes n credits, as it does for n blocks. */
function take(ctrl: Int32Array, n: number): void {
  expect(Atomics.load(ctrl, 0)).toBeGreaterThanOrEqual(n);
  Atomics.sub(ctrl, 0, n);
}

describe('BlockCredits', () => {
  it('gives a pack alone 8 blocks per codec thread, and gives each credit back as its frame is written', () => {
    const ctrl = slot();
    const a = new BlockCredits(ctrl, 0, 2);
    try {
      expect(Atomics.load(ctrl, 0)).toBe(16);
      take(ctrl, 16);
      a.giveBack();
      expect(Atomics.load(ctrl, 0)).toBe(1);
    } finally {
      a.close();
    }
  });

  it('splits the budget when a second pack starts, and hands it back when one ends', () => {
    const ca = slot();
    const cb = slot();
    const a = new BlockCredits(ca, 0, 2);
    const b = new BlockCredits(cb, 0, 2);
    try {
      // b starts with its share of the two; a owns 16 until its frames are written.
      expect(Atomics.load(cb, 0)).toBe(8);
      take(ca, 16);
      // a's next 8 credits are kept back, then each comes back again.
      for (let i = 0; i < 8; i++) a.giveBack();
      expect(Atomics.load(ca, 0)).toBe(0);
      a.giveBack();
      expect(Atomics.load(ca, 0)).toBe(1);
      b.close();
      // a alone again: its next written frame brings it back to 16 owned (6 still in flight).
      a.giveBack();
      expect(Atomics.load(ca, 0)).toBe(10);
    } finally {
      a.close();
      b.close();
    }
  });

  it('floors the share at 2 per codec thread plus 2', () => {
    const packs = Array.from({ length: 4 }, () => new BlockCredits(slot(), 0, 2));
    const last = slot();
    const e = new BlockCredits(last, 0, 2);
    try {
      expect(Atomics.load(last, 0)).toBe(6);
    } finally {
      e.close();
      for (const p of packs) p.close();
    }
  });
});
