/**
 * Gives a quiet node worker's free C-heap memory back to the system. glibc keeps what the process
 * frees (buffers, archive threads' allocations, V8's compiler zones) in its arenas for reuse, so
 * a worker's RSS after its jobs stays near its busiest; malloc_trim returns the free pages among
 * them (measured: 125 MiB 70 s after two backups, against 177 MiB without; README, worker RSS).
 * It runs once the worker has started, and when its last job ends: a second later and again after the
 * archive threads' own idle timers (the store thread stops after STORE_THREAD_IDLE_MS, idle part
 * buffers go after 30 s) have let go of theirs. A job starting cancels what is pending. Needs the
 * native helper (native-reads.ts); without it nothing is released.
 */
import { STORE_THREAD_IDLE_MS } from '@cairn/core/archive/worker-host.ts';
import { loadNativeReads, nativeAddonPath } from '@cairn/core/archive/native-reads.ts';

/** After the last job: soon, then once the store thread has stopped (with a margin). */
export const RELEASE_DELAYS_MS = [1_000, STORE_THREAD_IDLE_MS + 5_000];

export class IdleMemoryRelease {
  private timers: NodeJS.Timeout[] = [];
  /** Releases so far (tests). */
  released = 0;

  constructor(
    /** null: nothing to release with (no native helper). */
    private readonly release: (() => number) | null = nativeRelease(),
    private readonly delaysMs: readonly number[] = RELEASE_DELAYS_MS,
  ) {}

  /** A job started: nothing is released while one runs. */
  busy(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }

  /** No job runs any more (or the worker has just started). */
  idle(): void {
    this.busy();
    const release = this.release;
    if (!release) return;
    this.timers = this.delaysMs.map((ms) =>
      setTimeout(() => {
        release();
        this.released++;
      }, ms).unref(),
    );
  }
}

function nativeRelease(): (() => number) | null {
  const native = loadNativeReads(nativeAddonPath());
  return native?.releaseFreeMemory ? () => native.releaseFreeMemory!() : null;
}
