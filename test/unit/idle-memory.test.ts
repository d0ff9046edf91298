import { describe, expect, it } from 'vitest';
import { IdleMemoryRelease } from '../../services/worker/src/node/idle-memory.ts';
import { loadNativeReads, nativeAddonPath } from '../../services/core/src/archive/native-reads.ts';

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('IdleMemoryRelease', () => {
  it('releases after each delay once idle, and not while a job runs', async () => {
    let calls = 0;
    const memory = new IdleMemoryRelease(() => ++calls, [10, 40]);
    memory.idle();
    await wait(80);
    expect(calls).toBe(2);
    // A job starts before the first delay: nothing is released until it ends.
    memory.idle();
    memory.busy();
    await wait(80);
    expect(calls).toBe(2);
    memory.idle();
    await wait(20);
    expect(calls).toBe(3);
    memory.busy();
    await wait(40);
    expect(calls).toBe(3);
    expect(memory.released).toBe(3);
  });

  it('does nothing without the native helper', async () => {
    const memory = new IdleMemoryRelease(null, [1]);
    memory.idle();
    await wait(10);
    expect(memory.released).toBe(0);
  });

  it("reaches glibc's malloc_trim through the native helper when it is built", () => {
    const native = loadNativeReads(nativeAddonPath());
    // The helper is optional (no compiler: plain-Node paths); CI builds it.
    if (!native) return;
    expect([0, 1]).toContain(native.releaseFreeMemory!());
  });
});
