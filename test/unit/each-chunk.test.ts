import { PassThrough, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { chunksOf, eachChunk } from '@cairn/core/storage/each-chunk.ts';

/** Writes `chunks` into a PassThrough with backpressure, then ends it. */
async function writeAll(pipe: PassThrough, chunks: Buffer[]): Promise<void> {
  for (const c of chunks) if (!pipe.write(c)) await new Promise((resolve) => pipe.once('drain', resolve));
  pipe.end();
}

/**
 * Eight 300 kB chunks written into a PassThrough, read by `read` (slowly) into `seen`: the same
 * Buffer objects come out, no copy, no concatenation (a paused stream's read() joins them).
 */
async function expectChunksAsWritten(read: (pipe: PassThrough, seen: Buffer[]) => Promise<void>): Promise<void> {
  const pipe = new PassThrough({ highWaterMark: 1 << 20 });
  const written = Array.from({ length: 8 }, (_, i) => Buffer.alloc(300_000, i));
  const writing = writeAll(pipe, written);
  const seen: Buffer[] = [];
  await read(pipe, seen);
  await writing;
  expect(seen.length).toBe(written.length);
  for (const [i, chunk] of seen.entries()) expect(chunk).toBe(written[i]);
}

describe('eachChunk', () => {
  it('hands over each chunk as written, never joined, even while the reader is slow', async () => {
    await expectChunksAsWritten((pipe, seen) =>
      eachChunk(pipe, async (chunk) => {
        seen.push(chunk);
        await sleep(5);
      }),
    );
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

describe('chunksOf', () => {
  it('yields each chunk as written, never joined, even while the consumer is slow', async () => {
    await expectChunksAsWritten(async (pipe, seen) => {
      for await (const chunk of chunksOf(pipe)) {
        seen.push(chunk);
        await sleep(5);
      }
    });
  });

  it('reads a body that was paused on purpose (a range read waiting its turn)', async () => {
    const pipe = new PassThrough();
    pipe.on('data', () => undefined);
    pipe.pause();
    pipe.end(Buffer.from('waited'));
    const seen: string[] = [];
    for await (const chunk of chunksOf(pipe)) seen.push(chunk.toString());
    expect(seen).toEqual(['waited']);
  });

  it("throws the body's own error", async () => {
    const body = new PassThrough();
    body.write(Buffer.from('x'));
    const seen: string[] = [];
    const reading = (async () => {
      for await (const chunk of chunksOf(body)) {
        seen.push(chunk.toString());
        body.destroy(new Error('connection reset'));
      }
    })();
    await expect(reading).rejects.toThrow('connection reset');
    expect(seen).toEqual(['x']);
  });

  it('destroys the body when the consumer stops early', async () => {
    const body = new PassThrough();
    body.write(Buffer.from('a'));
    body.write(Buffer.from('b'));
    for await (const chunk of chunksOf(body)) {
      expect(chunk.toString()).toBe('a');
      break;
    }
    expect(body.destroyed).toBe(true);
  });

  it('ends at once on a body already ended and read', async () => {
    const body = Readable.from([Buffer.from('z')]);
    for await (const _ of body) {
      // read to its end
    }
    const seen: Buffer[] = [];
    for await (const chunk of chunksOf(body)) seen.push(chunk);
    expect(seen).toEqual([]);
  });
});
