import { PassThrough, type Readable, type Writable } from 'node:stream';
import { CairnError } from '../errors.ts';

export interface StreamIntoOptions<P> {
  signal: AbortSignal;
  /** Bytes buffered between the two sides. */
  highWaterMark?: number;
  /** Releases what the producer made when the pair fails after the producer finished (e.g. a pack's temp file). */
  discard?: (produced: P) => void;
}

/**
 * Connects a producer that writes into a Writable (the archive packer) with a consumer that reads
 * a Readable (an object store upload) through one bounded buffer. Either side failing stops the
 * other, both have settled when it returns, and the error thrown is the one that explains the
 * failure: a consumer error other than a cancel (the store refused the upload; the packer then only
 * saw its output close), otherwise the producer's.
 */
export async function streamInto<P, C>(
  produce: (sink: Writable, signal: AbortSignal) => Promise<P>,
  consume: (source: Readable, signal: AbortSignal) => Promise<C>,
  options: StreamIntoOptions<P>,
): Promise<{ produced: P; consumed: C }> {
  const stop = new AbortController();
  const signal = AbortSignal.any([options.signal, stop.signal]);
  const pipe = new PassThrough({ highWaterMark: options.highWaterMark ?? 1 << 20 });
  // The consumer learns of a producer failure through its reads; when it has already stopped
  // reading, the buffer's 'error' must not become an uncaught exception.
  pipe.on('error', () => {});
  const consuming = consume(pipe, signal);
  consuming.catch((err: unknown) => stop.abort(err));
  const producing = produce(pipe, signal).then(
    (produced) => {
      pipe.end();
      return produced;
    },
    (err: unknown) => {
      pipe.destroy(err instanceof Error ? err : new Error(String(err)));
      stop.abort(err);
      throw err;
    },
  );
  const [p, c] = await Promise.allSettled([producing, consuming]);
  if (p.status === 'fulfilled' && c.status === 'fulfilled') return { produced: p.value, consumed: c.value };
  if (p.status === 'fulfilled') options.discard?.(p.value);
  if (c.status === 'rejected' && !(c.reason instanceof CairnError && c.reason.code === 'cancelled')) throw c.reason;
  throw p.status === 'rejected' ? p.reason : (c as PromiseRejectedResult).reason;
}
