import type { Readable } from 'node:stream';

const ignore = (): void => {};
const prematureClose = (): Error => Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });

/**
 * Hands every chunk of `body` to `take` as it was written, in order. A stream's async iterator
 * reads in paused mode, where read() joins whatever is buffered into one new buffer: a copy of
 * every byte and as much garbage again as the data (for an upload, frames already waiting for the
 * collector). Here the stream flows, and pauses while the promise `take` returns is pending.
 *
 * Resolves at the body's end, once the last `take` settled. Rejects with the body's own error, or
 * with the error `take` threw or rejected with; the body is then destroyed (its writer learns the
 * reading stopped), as breaking out of an async iterator would.
 */
export function eachChunk(body: Readable, take: (chunk: Buffer) => Promise<void> | void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    let ended = false;
    let pending: Promise<void> | undefined;

    const finish = (err?: unknown, destroy = false): void => {
      if (settled) return;
      settled = true;
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      body.off('close', onClose);
      // A late error (one already on its way, or from the destroy below) is not an uncaught exception.
      body.on('error', ignore);
      if (destroy) body.destroy();
      if (err === undefined) resolve();
      else reject(err);
    };
    const onData = (piece: Buffer | Uint8Array | string): void => {
      if (settled) return;
      let waiting: Promise<void> | void;
      try {
        waiting = take(Buffer.isBuffer(piece) ? piece : Buffer.from(piece as Uint8Array));
      } catch (err) {
        finish(err, true);
        return;
      }
      if (!waiting) return;
      body.pause();
      pending = waiting.then(
        () => {
          pending = undefined;
          if (ended) finish();
          else if (!settled) body.resume();
        },
        (err: unknown) => finish(err, true),
      );
    };
    const onEnd = (): void => {
      ended = true;
      if (!pending) finish();
    };
    const onError = (err: Error): void => finish(err);
    const onClose = (): void => {
      if (!ended) finish(prematureClose());
    };

    body.on('data', onData);
    body.on('end', onEnd);
    body.on('error', onError);
    body.on('close', onClose);
    if (body.readableEnded) onEnd();
    else if (body.destroyed) finish(body.errored ?? prematureClose());
    // A body paused on purpose (pause()) does not flow for a new 'data' listener by itself.
    else body.resume();
  });
}

/**
 * The chunks of `body` as it wrote them, as an async iterator (eachChunk's flowing read, with
 * none of the paused-mode joins of a stream's own iterator). The body stays paused while the
 * consumer works on a chunk. A consumer that stops early (break, throw) destroys the body.
 */
export async function* chunksOf(body: Readable): AsyncGenerator<Buffer> {
  let handoff: { chunk: Buffer; taken: () => void } | undefined;
  let wake: (() => void) | undefined;
  let done = false;
  let failure: { error: unknown } | undefined;
  eachChunk(
    body,
    (chunk) =>
      new Promise<void>((taken) => {
        handoff = { chunk, taken };
        wake?.();
      }),
  ).then(
    () => {
      done = true;
      wake?.();
    },
    (error: unknown) => {
      done = true;
      failure = { error };
      wake?.();
    },
  );
  try {
    for (;;) {
      if (!handoff && !done) await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
      const h = handoff;
      if (h) {
        handoff = undefined;
        yield h.chunk;
        h.taken();
      } else if (failure) throw failure.error;
      else if (done) return;
    }
  } finally {
    // Stopped early: the body is not read to its end (eachChunk then settles on its close).
    if (!done) {
      body.destroy();
      handoff?.taken();
    }
  }
}
