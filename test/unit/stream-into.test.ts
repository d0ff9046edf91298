import type { Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CairnError, retryWrite, streamInto } from '@cairn/core';

async function drain(source: Readable): Promise<number> {
  let n = 0;
  for await (const chunk of source) n += (chunk as Buffer).length;
  return n;
}

function writeAll(sink: Writable, chunks: number, size = 64 * 1024): Promise<string> {
  return (async () => {
    for (let i = 0; i < chunks; i++) if (!sink.write(Buffer.alloc(size, i))) await new Promise((r) => sink.once('drain', r));
    return 'packed';
  })();
}

describe('streamInto', () => {
  it('connects a producer to a consumer with bounded buffering and returns both results', async () => {
    const { produced, consumed } = await streamInto(
      (sink) => writeAll(sink, 64),
      (source) => drain(source),
      { signal: new AbortController().signal, highWaterMark: 128 * 1024 },
    );
    expect(produced).toBe('packed');
    expect(consumed).toBe(64 * 64 * 1024);
  });

  it("a consumer's own error wins over the producer's consequent one", async () => {
    const err = await streamInto(
      async (sink, signal) => {
        await writeAll(sink, 4);
        // The producer finished; then the upload is refused.
        signal.throwIfAborted();
        return 'packed';
      },
      async (source) => {
        for await (const _ of source) throw new CairnError('internal', 'InvalidPart: the store refused the upload');
        return 0;
      },
      { signal: new AbortController().signal },
    ).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/InvalidPart/);
  });

  it("a producer failure is reported as the producer's error and stops the consumer", async () => {
    let consumerSaw: unknown;
    const err = await streamInto(
      async (sink) => {
        await writeAll(sink, 2);
        throw new CairnError('unsafe-path', 'volume escapes its root');
      },
      async (source) => {
        try {
          return await drain(source);
        } catch (e) {
          consumerSaw = e;
          throw new CairnError('cancelled', 'upload aborted');
        }
      },
      { signal: new AbortController().signal },
    ).catch((e: unknown) => e);
    expect((err as CairnError).code).toBe('unsafe-path');
    expect(consumerSaw).toBeDefined();
  });

  it('the caller aborting stops both sides', async () => {
    const ctrl = new AbortController();
    const err = streamInto(
      async (sink, signal) => {
        for (;;) {
          signal.throwIfAborted();
          if (!sink.write(Buffer.alloc(1024))) await new Promise((r) => setTimeout(r, 5));
        }
      },
      (source, signal) =>
        new Promise<number>((_, reject) => {
          source.resume();
          signal.addEventListener('abort', () => reject(new CairnError('cancelled', 'upload aborted')));
        }),
      { signal: ctrl.signal },
    ).catch((e: unknown) => e);
    setTimeout(() => ctrl.abort(new Error('cancelled by token t')), 20);
    expect(await err).toBeDefined();
    expect(ctrl.signal.aborted).toBe(true);
  });
});

describe('retryWrite', () => {
  it('tries again with a growing pause and returns the first success', async () => {
    let calls = 0;
    const retried: number[] = [];
    const value = await retryWrite(
      async () => {
        if (++calls < 3) throw new Error('Connection terminated unexpectedly');
        return 'written';
      },
      { attempts: 3, delayMs: 1, onRetry: (_e, attempt) => retried.push(attempt) },
    );
    expect(value).toBe('written');
    expect(retried).toEqual([1, 2]);
  });

  it('throws the last error once every try failed', async () => {
    let calls = 0;
    await expect(
      retryWrite(
        async () => {
          calls++;
          throw new Error(`down ${calls}`);
        },
        { attempts: 4, delayMs: 1 },
      ),
    ).rejects.toThrow('down 4');
    expect(calls).toBe(4);
  });
});
