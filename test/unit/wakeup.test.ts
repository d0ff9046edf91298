/** Wakeup: the credit-window wait of the store thread's jobs and the extract channel. */
import { describe, expect, it } from 'vitest';
import { Wakeup } from '@cairn/core/archive/async-queue.ts';

describe('Wakeup', () => {
  it('resolves at once when the condition already holds', async () => {
    await expect(new Wakeup().until(() => true)).resolves.toBeUndefined();
  });

  it('re-checks on every notify and resolves only once the condition holds', async () => {
    const w = new Wakeup();
    let credits = 0;
    let checks = 0;
    let done = false;
    const waiting = w
      .until(() => {
        checks++;
        return credits > 1;
      })
      .then(() => (done = true));
    for (let i = 0; i < 2; i++) {
      credits++;
      w.notify();
      await new Promise((r) => setImmediate(r));
    }
    await waiting;
    expect(done).toBe(true);
    expect(checks).toBe(3);
  });

  it('rejects with what the condition throws (a failure woke it)', async () => {
    const w = new Wakeup();
    let failed: Error | undefined;
    const waiting = w.until(() => {
      if (failed) throw failed;
      return false;
    });
    failed = new Error('the upload failed');
    w.notify();
    await expect(waiting).rejects.toThrow('the upload failed');
  });

  it('a notify with nobody waiting is not remembered', async () => {
    const w = new Wakeup();
    w.notify();
    let ready = false;
    const waiting = w.until(() => ready);
    let settled = false;
    void waiting.then(() => (settled = true));
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false);
    ready = true;
    w.notify();
    await waiting;
    expect(settled).toBe(true);
  });
});
