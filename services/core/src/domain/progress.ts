export interface Progress {
  stage: string;
  bytesDone: number;
  bytesTotal: number;
  filesDone: number;
  filesTotal: number;
  percent: number;
  etaSeconds: number | null;
}

/**
 * Turns raw counters into a Progress and forwards it at most every `intervalMs` (SPEC §4:
 * progress is throttled). `flush` forwards the latest value regardless. Sink failures are
 * swallowed: a failed progress write never fails the job.
 */
export class ProgressThrottle {
  private last = 0;
  private latest: Progress | null = null;
  private readonly startedAt = Date.now();

  constructor(
    private readonly sink: (p: Progress) => Promise<unknown> | unknown,
    private readonly intervalMs = 500,
    private readonly now: () => number = Date.now,
  ) {}

  update(stage: string, counters: { bytesDone: number; bytesTotal: number; filesDone: number; filesTotal: number }): void {
    const { bytesDone, bytesTotal } = counters;
    const fraction = bytesTotal > 0 ? Math.min(1, bytesDone / bytesTotal) : counters.filesTotal > 0 ? Math.min(1, counters.filesDone / counters.filesTotal) : 0;
    const elapsed = (this.now() - this.startedAt) / 1000;
    const etaSeconds = fraction > 0.01 && fraction < 1 ? Math.round((elapsed / fraction) * (1 - fraction)) : fraction >= 1 ? 0 : null;
    this.latest = { stage, ...counters, percent: Math.round(fraction * 1000) / 10, etaSeconds };
    if (this.now() - this.last >= this.intervalMs) this.emit();
  }

  stage(stage: string): void {
    this.latest = { ...(this.latest ?? { bytesDone: 0, bytesTotal: 0, filesDone: 0, filesTotal: 0, percent: 0, etaSeconds: null }), stage };
    this.emit();
  }

  flush(): void {
    if (this.latest) this.emit();
  }

  private emit(): void {
    this.last = this.now();
    const p = this.latest!;
    try {
      void Promise.resolve(this.sink(p)).catch(() => {});
    } catch {
      /* best effort */
    }
  }
}
