/**
 * An archive operation's progress reports, at most one per `intervalMs` unless forced (the final
 * report). One held back goes out once the interval has passed, even if nothing else reports: a
 * pack whose blocks all fit in the upload's buffers reads everything at once, then waits for the
 * upload to finish, and must not show its earlier figures meanwhile.
 */
export class ProgressLimiter {
  private last = Number.NEGATIVE_INFINITY;
  private trailing: NodeJS.Timeout | undefined;

  constructor(
    private readonly emit: () => void,
    private readonly intervalMs = 250,
  ) {}

  update(force = false): void {
    const wait = this.intervalMs - (performance.now() - this.last);
    if (!force && wait > 0) {
      this.trailing ??= setTimeout(() => {
        this.trailing = undefined;
        this.update();
      }, wait).unref();
      return;
    }
    this.stop();
    this.last = performance.now();
    this.emit();
  }

  /** No held-back report goes out after this (the operation ended). */
  stop(): void {
    clearTimeout(this.trailing);
    this.trailing = undefined;
  }
}
