import { PassThrough, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { eachChunk } from '@cairn/core/storage/each-chunk.ts';

/** Writes `chunks` into a PassThrough with backpressure, then ends it. */
async function writeAll(pipe: PassThrough, chunks: Buffer[]): Promise<void> {
  for (const c of chunks) if (!pipe.write(c)) await new Promise((resolve) => pipe.once('drain', resolve));
  pipe.end();
}

describe('eachChunk', () => {
  it('hands over each chunk as written, never joined, even while the reader is slow', async () => {
    const pipe = new PassThrough({ highWaterMark: 1 << 20 });
    const written = Array.from({ length: 8 }, (_, i) => Buffer.alloc(300_000, i));
    const writing = writeAll(pipe, written);
    const seen: Buffer[] = [];
    await eachChunk(pipe, async (chunk) => {
      seen.push(chunk);
      await sleep(5);
    });
    await writing;
    // The same Buffer objects: no copy, no concatenation (a paused stream's read() joins them).
    expect(seen.length).toBe(written.length);
    for (const [i, chunk] of seen.entries()) expect(chunk).toBe(written[i]);
  });

  it('does not take the next chunk before the previous take settled', async () => {
    const pipe = new PassThrough();
    const writing = writeAll(pipe, [Buffer.from('a'), Buffer.from('b'), Buffer.from('c')]);
    let busy = false;
    const order: string[] = [];
    await eachChunk(pipe, (chunk) => {
      expect(busy).toBe(false);
      order.push(chunk.toString());
      if (chunk.toString() === 'c') return undefined;
      busy = true;
      return sleep(10).then(() => {
        busy = false;
      });
    });
    await writing;
    expect(order).toEqual(['a', 'b', 'c']);
  });

  it('resolves once the last take settled, after the end', async () => {
    let settled = false;
    await eachChunk(Readable.from([Buffer.from('x')]), () =>
      sleep(20).then(() => {
        settled = true;
      }),
    );
    expect(settled).toBe(true);
  });

  it("rejects with the body's own error", async () => {
    const pipe = new PassThrough();
    const boom = new Error('producer failed');
    const reading = eachChunk(pipe, () => undefined);
    pipe.write(Buffer.from('a'));
    setImmediate(() => pipe.destroy(boom));
    await expect(reading).rejects.toBe(boom);
  });

  it('rejects with what take threw or rejected with, and destroys the body so its writer stops', async () => {
    const thrown = new Error('part failed');
    const a = new PassThrough();
    a.write(Buffer.from('a'));
    await expect(
      eachChunk(a, () => {
        throw thrown;
      }),
    ).rejects.toBe(thrown);
    expect(a.destroyed).toBe(true);

    const b = new PassThrough();
    b.write(Buffer.from('b'));
    await expect(eachChunk(b, () => Promise.reject(thrown))).rejects.toBe(thrown);
    expect(b.destroyed).toBe(true);
  });

  it('rejects a body closed before its end', async () => {
    const pipe = new PassThrough();
    const reading = eachChunk(pipe, () => undefined);
    pipe.write(Buffer.from('a'));
    setImmediate(() => pipe.destroy());
    await expect(reading).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
  });

  it('resolves for a body that already ended, and rejects for one already destroyed', async () => {
    const ended = new PassThrough();
    ended.end();
    ended.resume();
    await new Promise((resolve) => ended.once('end', resolve));
    await expect(eachChunk(ended, () => undefined)).resolves.toBeUndefined();

    const destroyed = new PassThrough();
    destroyed.destroy(new Error('gone'));
    await expect(eachChunk(destroyed, () => undefined)).rejects.toThrow('gone');
  });
});
