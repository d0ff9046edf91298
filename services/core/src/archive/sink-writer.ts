/** Writes to a caller's stream with backpressure, turning its errors into rejections. */
import { CairnError } from '../errors.ts';
import type { PackSink } from './archive-types.ts';

export class SinkWriter {
  private error: Error | undefined;
  private drained = false;
  private finished = false;
  private wake: (() => void) | undefined;
  private readonly onError = (err: Error): void => {
    this.error ??= err;
    this.wake?.();
  };
  private readonly onClose = (): void => {
    if (!this.finished) this.error ??= new CairnError('internal', 'the output stream closed before the archive was complete', { permanent: false });
    this.wake?.();
  };
  private readonly onDrain = (): void => {
    this.drained = true;
    this.wake?.();
  };
  private readonly onFinish = (): void => {
    this.finished = true;
    this.wake?.();
  };

  constructor(private readonly sink: PackSink) {
    // Stays attached after we are done: a late 'error' must not become an uncaught exception.
    sink.on('error', this.onError);
    sink.on('close', this.onClose);
    sink.on('drain', this.onDrain);
    sink.on('finish', this.onFinish);
  }

  async write(buf: Buffer, signal?: AbortSignal): Promise<void> {
    if (this.error) throw this.error;
    this.drained = false;
    if (this.sink.write(buf)) return;
    await this.waitFor(() => this.drained, signal);
  }

  async end(signal?: AbortSignal): Promise<void> {
    if (this.error) throw this.error;
    this.sink.end();
    try {
      await this.waitFor(() => this.finished, signal);
    } finally {
      this.sink.off('drain', this.onDrain);
      this.sink.off('finish', this.onFinish);
      this.sink.off('close', this.onClose);
    }
  }

  private waitFor(ready: () => boolean, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => check();
      const check = (): void => {
        let outcome: 'ok' | Error | undefined;
        if (this.error) outcome = this.error;
        else if (signal?.aborted) outcome = signal.reason instanceof Error ? signal.reason : new CairnError('cancelled', 'cancelled');
        else if (ready()) outcome = 'ok';
        if (outcome === undefined) return;
        this.wake = undefined;
        signal?.removeEventListener('abort', onAbort);
        if (outcome === 'ok') resolve();
        else reject(outcome);
      };
      this.wake = check;
      signal?.addEventListener('abort', onAbort, { once: true });
      check();
    });
  }
}
