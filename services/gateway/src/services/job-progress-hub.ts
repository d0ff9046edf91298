import type { Logger } from '@cairn/core';
import { TERMINAL_JOB_STATES, type JobView } from '@cairn/core/api/index.ts';

/** `json`: the job as JSON, serialized once per change for all of its streams. */
export type JobEvent = { event: 'state' | 'progress'; job: JobView; json: string };

/** A view with its JSON, made once per read and shared by every watcher. */
interface Snapshot {
  view: JobView;
  json: string;
}

export interface JobProgressHubOptions {
  /** The current views of these jobs, in one read for all of them; a job missing from the answer is gone. */
  load(ids: string[]): Promise<Map<string, JobView>>;
  /**
   * How often every watched job is re-read even without a change notice (a notice lost to a Redis
   * blip, a writer that publishes none): one read for all watched jobs, not one per stream.
   */
  pollIntervalMs: number;
  /** Notices arriving within this window are served by one read. */
  coalesceMs?: number;
  logger: Logger;
}

/** Stream writes made in one turn of the event loop before requests waiting behind them are served. */
const FANOUT_SLICE = 32;

const isTerminal = (status: string) => (TERMINAL_JOB_STATES as readonly string[]).includes(status);

/** One stream's mailbox: only the newest view waits, so a slow client never makes it grow. */
class Watcher {
  private pending: Snapshot | null = null;
  private wake: (() => void) | null = null;
  gone = false;
  /** Joined since the entry's last read: the next read is offered even if the entry saw it before. */
  fresh = true;

  offer(snapshot: Snapshot): void {
    this.fresh = false;
    this.pending = snapshot;
    this.wake?.();
  }

  end(): void {
    this.gone = true;
    this.wake?.();
  }

  /** The next view, or null once the job is gone or `signal` aborted. */
  async take(signal: AbortSignal): Promise<Snapshot | null> {
    while (!this.pending && !this.gone && !signal.aborted) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.wake = null;
          signal.removeEventListener('abort', done);
          resolve();
        };
        this.wake = done;
        signal.addEventListener('abort', done, { once: true });
      });
    }
    if (signal.aborted || (this.gone && !this.pending)) return null;
    const snapshot = this.pending;
    this.pending = null;
    return snapshot;
  }
}

interface Entry {
  last: string;
  watchers: Set<Watcher>;
}

/**
 * The gateway's one source of job progress (issue 17): every stream watching a job shares one
 * entry, refreshed by one read per change notice (coalesced across jobs) and by one periodic read
 * for all watched jobs; the entry goes away with its last watcher. Database reads therefore grow
 * with the number of changing jobs, not with the number of open streams.
 */
export class JobProgressHub {
  private readonly entries = new Map<string, Entry>();
  private readonly dirty = new Set<string>();
  private readonly coalesceMs: number;
  private flushTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private pollTimer: NodeJS.Timeout | null = null;

  constructor(private readonly options: JobProgressHubOptions) {
    this.coalesceMs = options.coalesceMs ?? 20;
  }

  /**
   * `initial` (the job as just read for this stream) at once, then each change until the job
   * ends, is gone, or `signal` aborts. Views equal to the last one sent are not repeated; a change
   * of status or error is a `state` event, anything else `progress`.
   */
  async *watch(initial: JobView, signal: AbortSignal): AsyncGenerator<JobEvent> {
    let sentJson = JSON.stringify(initial);
    yield { event: 'state', job: initial, json: sentJson };
    if (isTerminal(initial.status) || signal.aborted) return;
    const watcher = new Watcher();
    const entry = this.enter(initial, watcher);
    // Whatever changed between this stream's read and joining the entry is read again.
    this.notify(initial.id);
    try {
      let sent = initial;
      for (let next = await watcher.take(signal); next; next = await watcher.take(signal)) {
        const { view, json } = next;
        if (json === sentJson) continue;
        const event = view.status !== sent.status || view.error !== sent.error ? 'state' : 'progress';
        sent = view;
        sentJson = json;
        yield { event, job: view, json };
        if (isTerminal(view.status)) return;
      }
    } finally {
      this.leave(initial.id, entry, watcher);
    }
  }

  /** A change notice: the job (if watched here) is read again shortly, with any others noticed meanwhile. */
  notify(jobId: string): void {
    if (!this.entries.has(jobId)) return;
    this.dirty.add(jobId);
    this.scheduleFlush();
  }

  /** Jobs watched by at least one stream. */
  get watchedJobs(): number {
    return this.entries.size;
  }

  /** Streams watching `jobId`. */
  watchers(jobId: string): number {
    return this.entries.get(jobId)?.watchers.size ?? 0;
  }

  private enter(initial: JobView, watcher: Watcher): Entry {
    let entry = this.entries.get(initial.id);
    if (!entry) {
      entry = { last: JSON.stringify(initial), watchers: new Set() };
      this.entries.set(initial.id, entry);
    }
    entry.watchers.add(watcher);
    if (!this.pollTimer) {
      this.pollTimer = setInterval(() => this.pollAll(), this.options.pollIntervalMs);
      this.pollTimer.unref();
    }
    return entry;
  }

  private leave(jobId: string, entry: Entry, watcher: Watcher): void {
    entry.watchers.delete(watcher);
    if (entry.watchers.size > 0 || this.entries.get(jobId) !== entry) return;
    this.entries.delete(jobId);
    this.dirty.delete(jobId);
    if (this.entries.size === 0 && this.pollTimer) {
      clearInterval(this.pollTimer);
      this.pollTimer = null;
    }
  }

  private pollAll(): void {
    for (const id of this.entries.keys()) this.dirty.add(id);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    // One flush at a time: notices arriving during a read are served by the next one.
    if (this.flushTimer || this.flushing) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      this.flushing = this.flush().finally(() => {
        this.flushing = null;
        if (this.dirty.size > 0) this.scheduleFlush();
      });
    }, this.coalesceMs);
    this.flushTimer.unref();
  }

  private async flush(): Promise<void> {
    const ids = [...this.dirty].filter((id) => this.entries.has(id));
    this.dirty.clear();
    if (ids.length === 0) return;
    let views: Map<string, JobView>;
    try {
      views = await this.options.load(ids);
    } catch (err) {
      // The periodic read tries again; the streams stay open meanwhile.
      this.options.logger.warn({ err: err instanceof Error ? err.message : String(err), jobs: ids.length }, 'reading watched jobs failed');
      return;
    }
    const offers: [Watcher, Snapshot][] = [];
    for (const id of ids) {
      const entry = this.entries.get(id);
      if (!entry) continue;
      const view = views.get(id);
      if (!view) {
        for (const w of entry.watchers) w.end();
        continue;
      }
      const json = JSON.stringify(view);
      const changed = json !== entry.last;
      entry.last = json;
      const snapshot = { view, json };
      for (const w of entry.watchers) if (changed || w.fresh) offers.push([w, snapshot]);
    }
    // Each offer ends in a socket write: a few hundred in one turn of the event loop would hold
    // every request behind them, so they go out in slices with the loop's other work in between.
    for (let i = 0; i < offers.length; i += FANOUT_SLICE) {
      if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      for (const [w, snapshot] of offers.slice(i, i + FANOUT_SLICE)) w.offer(snapshot);
    }
  }
}
