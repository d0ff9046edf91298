import { describe, expect, it } from 'vitest';
import { PartBufferPool } from '../../services/core/src/storage/s3-upload.ts';

const SIZE = 1024;

describe('PartBufferPool', () => {
  it('lets one upload take queueSize + 1 buffers and makes the next wait for one back', async () => {
    const pool = new PartBufferPool(SIZE, 2);
    pool.begin();
    const held = [await pool.take(), await pool.take(), await pool.take()];
    let fourth: Buffer | undefined;
    const waiting = pool.take().then((b) => (fourth = b));
    await new Promise((r) => setImmediate(r));
    expect(fourth).toBeUndefined();
    pool.give(held[0]!);
    await waiting;
    // The buffer given back is the one handed on.
    expect(fourth).toBe(held[0]);
    expect(pool.inUse).toBe(3);
    expect(pool.allocated).toBe(3);
    pool.end();
  });

  it('raises the limit to two buffers per upload running, and serves waiters in turn', async () => {
    const pool = new PartBufferPool(SIZE, 1);
    pool.begin();
    const a = [await pool.take(), await pool.take()];
    const order: string[] = [];
    const first = pool.take().then(() => order.push('first'));
    const second = pool.take().then(() => order.push('second'));
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual([]);
    // A second upload starts: four may be out now.
    pool.begin();
    await Promise.all([first, second]);
    expect(order).toEqual(['first', 'second']);
    expect(pool.inUse).toBe(4);
    pool.end();
    pool.end();
    void a;
  });

  it('rejects a wait when its upload is stopped, and a dropped buffer frees its place without being reused', async () => {
    const pool = new PartBufferPool(SIZE, 1);
    pool.begin();
    const [b1] = [await pool.take(), await pool.take()];
    const stop = new AbortController();
    const stopped = pool.take(SIZE, stop.signal);
    stop.abort();
    await expect(stopped).rejects.toMatchObject({ name: 'AbortError' });
    expect(pool.inUse).toBe(2);
    pool.drop();
    const next = await pool.take();
    expect(next).not.toBe(b1);
    expect(pool.allocated).toBe(3);
    expect(pool.inUse).toBe(2);
    pool.end();
  });
});
