export interface Progress {
  stage: string;
  bytesDone: number;
  bytesTotal: number;
  filesDone: number;
  filesTotal: number;
  percent: number;
  etaSeconds: number | null;
}

export interface ProgressCounters {
  bytesDone: number;
  bytesTotal: number;
  filesDone: number;
  filesTotal: number;
}

/**
 * Turns raw counters into a Progress and forwards it at most every `intervalMs` (SPEC §4:
 * progress is throttled). Writes are ordered: one at a time, and while one is in flight only the
 * newest value waits behind it, so an older value can never land after a newer one. `drain()`
 * forwards the latest value and resolves once every write has settled (the job's terminal write
 * comes after it). A failed write never fails the job: it goes to `onError` (a log line).
 */
export class ProgressThrottle {
  private last = Number.NEGATIVE_INFINITY;
  private latest: Progress | null = null;
  private pending: Progress | null = null;
  private written: Progress | null = null;
  private inFlight: Promise<void> | null = null;
  /**
   * The trailing write of an update that came too soon after the last: without it, a quick burst of
   * updates then a long quiet spell (an archive packed into the upload's buffer, then uploaded)
   * would show the burst's first value throughout.
   */
  private trailing: NodeJS.Timeout | null = null;
  private readonly startedAt: number;

  constructor(
    private readonly sink: (p: Progress) => Promise<unknown> | unknown,
    private readonly intervalMs = 500,
    private readonly now: () => number = Date.now,
    private readonly onError: (err: unknown) => void = () => {},
  ) {
    this.startedAt = now();
  }

  update(stage: string, counters: ProgressCounters): void {
    const { bytesDone, bytesTotal } = counters;
    const fraction = bytesTotal > 0 ? Math.min(1, bytesDone / bytesTotal) : counters.filesTotal > 0 ? Math.min(1, counters.filesDone / counters.filesTotal) : 0;
    const elapsed = (this.now() - this.startedAt) / 1000;
    const etaSeconds = fraction > 0.01 && fraction < 1 ? Math.round((elapsed / fraction) * (1 - fraction)) : fraction >= 1 ? 0 : null;
    this.latest = { stage, ...counters, percent: Math.round(fraction * 1000) / 10, etaSeconds };
    const wait = this.intervalMs - (this.now() - this.last);
    if (wait <= 0) this.emit();
    else if (!this.trailing) {
      this.trailing = setTimeout(() => {
        this.trailing = null;
        if (this.latest && this.latest !== this.pending && this.latest !== this.written) this.emit();
      }, wait);
      this.trailing.unref?.();
    }
  }

  stage(stage: string): void {
    this.latest = { ...(this.latest ?? { bytesDone: 0, bytesTotal: 0, filesDone: 0, filesTotal: 0, percent: 0, etaSeconds: null }), stage };
    this.emit();
  }

  /** Forwards the latest value and waits until every write has settled. */
  async drain(): Promise<void> {
    this.cancelTrailing();
    if (this.latest && this.latest !== this.pending && this.latest !== this.written) this.emit();
    while (this.inFlight) await this.inFlight;
  }

  private cancelTrailing(): void {
    if (this.trailing) clearTimeout(this.trailing);
    this.trailing = null;
  }

  private emit(): void {
    this.cancelTrailing();
    this.last = this.now();
    const p = this.latest!;
    if (this.inFlight) {
      this.pending = p;
      return;
    }
    this.write(p);
  }

  private write(p: Progress): void {
    this.written = p;
    this.inFlight = (async () => {
      try {
        await this.sink(p);
      } catch (err) {
        this.onError(err);
      }
    })().then(() => {
      this.inFlight = null;
      const next = this.pending;
      this.pending = null;
      if (next) this.write(next);
    });
  }
}
