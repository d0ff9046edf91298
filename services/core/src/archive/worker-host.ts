/**
 * The worker threads running `archive.worker.ts` (see worker-bundle.ts for how they load it):
 * codec workers shared by every pack/unpack of the process and kept between jobs, unref'd so
 * they never hold the process open; and a job's own threads, started for it and stopped after.
 */
import { availableParallelism } from 'node:os';
import { Worker, type Transferable } from 'node:worker_threads';
import { CairnError } from '../errors.ts';
import { workerSpec } from './worker-bundle.ts';
import { deserializeError, type SerializedError } from './worker-errors.ts';

/**
 * Young generation of each archive thread, in MiB (V8's default grows to 48 under load; six
 * threads' were ~100 MiB of a node worker's RSS during two backups). 16 cost no measurable time
 * on a 100k-file pack against the default (4.76 against 4.69 s, 3 alternating runs each); 6 cost
 * ~7% there (5.16 against 4.80 s), the reader and scanner making an object or two per file. The
 * main thread gets 6 MiB through the --max-semi-space-size=2 flag its start commands pass.
 */
export const ARCHIVE_THREAD_YOUNG_GENERATION_MB = 16;

/** The store thread (WorkerHost.acquireStoreThread) stops after this long without a job. */
export const STORE_THREAD_IDLE_MS = 60_000;

/** CAIRN_ARCHIVE_PROFILE=<dir>: every archive thread writes a V8 CPU profile there as it ends (where a pack or restore spends its time). */
const ARCHIVE_PROFILE_DIR = process.env.CAIRN_ARCHIVE_PROFILE;

interface WorkerReply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: SerializedError;
}

export class PooledWorker {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private failure: Error | undefined;
  /** Requests sent and not yet answered (used to spread codec tasks). */
  get load(): number {
    return this.pending.size;
  }
  get dead(): boolean {
    return this.failure !== undefined;
  }

  constructor(readonly worker: Worker) {
    worker.on('message', (m: WorkerReply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(deserializeError(m.error ?? { name: 'Error', message: 'worker failed' }));
    });
    const fail = (err: Error): void => {
      this.failure ??= err;
      for (const p of this.pending.values()) p.reject(this.failure);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new CairnError('internal', `archive worker exited (code ${code})`)));
  }

  request<T>(kind: string, payload: Record<string, unknown>, transfer: Transferable[] = []): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, kind, ...payload }, transfer);
    });
  }
}

/** Codec workers per pack or unpack: one per core, at most 4. */
export function defaultConcurrency(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

export class WorkerHost {
  /**
   * Codec workers, shared by every pack and unpack of the process: two jobs side by side (a node
   * worker runs WORKER_CONCURRENCY of them) queue blocks on the same threads instead of each
   * starting its own, which held ~10+ MiB of RSS per extra thread for no extra throughput (both
   * are CPU-bound on the same cores).
   */
  private readonly codecs: PooledWorker[] = [];
  private codecUsers = 0;
  private codecsGrowing: Promise<unknown> = Promise.resolve();
  private store: Promise<PooledWorker> | undefined;
  private storeUsers = 0;
  private storeIdle: NodeJS.Timeout | undefined;

  /**
   * Codec workers kept while no job runs: one codec pool's worth. More would only hold ~10 MiB
   * of RSS each in a long-running node worker after jobs that asked for more.
   */
  constructor(private readonly maxIdle = defaultConcurrency()) {}

  /** At least `n` of the shared codec workers (started as needed); give them back with releaseCodecs(). */
  async acquireCodecs(n: number): Promise<PooledWorker[]> {
    this.codecUsers++;
    try {
      // One caller at a time grows the set, so two jobs starting together do not both add threads.
      const grow = this.codecsGrowing.then(async () => {
        for (let i = this.codecs.length - 1; i >= 0; i--) if (this.codecs[i]!.dead) this.codecs.splice(i, 1);
        while (this.codecs.length < n) this.codecs.push(await this.acquire());
      });
      this.codecsGrowing = grow.catch(() => undefined);
      await grow;
    } catch (err) {
      this.releaseCodecs();
      throw err;
    }
    for (const w of this.codecs) w.worker.ref();
    return this.codecs.slice(0, n);
  }

  /**
   * Ends one user's share of the codec workers. They are never stopped for one user's failure
   * (others may be using them; a failed job's last few blocks just finish); when nobody uses
   * them they stay, unref'd, for the next job.
   */
  releaseCodecs(): void {
    if (--this.codecUsers > 0) return;
    this.codecUsers = 0;
    while (this.codecs.length > this.maxIdle) void this.codecs.pop()!.worker.terminate();
    for (const w of this.codecs) w.worker.unref();
  }

  /** A new worker of its own for a long job (reader, scanner, extractor); discard() it when done. */
  async acquire(): Promise<PooledWorker> {
    const spec = await workerSpec();
    const resourceLimits = { maxYoungGenerationSizeMb: ARCHIVE_THREAD_YOUNG_GENERATION_MB };
    const execArgv = ARCHIVE_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${ARCHIVE_PROFILE_DIR}`] : [];
    const worker =
      spec.kind === 'eval'
        ? // Not the parent's flags: tsx's loader would cost each worker ~25 MB and ~200 ms (worker-bundle.ts).
          new Worker(spec.code, { eval: true, execArgv, resourceLimits })
        : // The compiled worker, or an entry that registers tsx itself (inherited loader flags would register it twice).
          new Worker(spec.url, { workerData: spec.workerData, execArgv, resourceLimits });
    const pooled = new PooledWorker(worker);
    await new Promise<void>((resolve, reject) => {
      const onMsg = (m: { ready?: boolean }): void => {
        if (m.ready) {
          cleanup();
          resolve();
        }
      };
      const onErr = (err: Error): void => {
        cleanup();
        reject(err);
      };
      const onExit = (code: number): void => {
        cleanup();
        reject(new CairnError('internal', `archive worker exited while starting (code ${code})`));
      };
      const cleanup = (): void => {
        worker.off('message', onMsg);
        worker.off('error', onErr);
        worker.off('exit', onExit);
      };
      worker.on('message', onMsg);
      worker.on('error', onErr);
      worker.on('exit', onExit);
    });
    return pooled;
  }

  /**
   * The store thread: one worker of the process for the jobs that talk to the object store in
   * bulk (a restore's range reads, a backup's upload), so their bytes stay out of the main
   * thread's heap (frame-reader-job.ts, upload-job.ts). Shared by every such job (each on a port
   * of its own) rather than one per job: the S3 SDK it loads costs ~110 ms and ~8 MiB once, and
   * its clients keep their connections between jobs. Stopped after STORE_THREAD_IDLE_MS unused.
   */
  async acquireStoreThread(): Promise<PooledWorker> {
    this.storeUsers++;
    clearTimeout(this.storeIdle);
    try {
      for (;;) {
        // One start however many jobs ask together; a thread that failed to start or died is replaced.
        const p = (this.store ??= this.acquire());
        let w: PooledWorker;
        try {
          w = await p;
        } catch (err) {
          if (this.store === p) this.store = undefined;
          throw err;
        }
        if (w.dead) {
          if (this.store === p) this.store = undefined;
          continue;
        }
        w.worker.ref();
        return w;
      }
    } catch (err) {
      this.releaseStoreThread();
      throw err;
    }
  }

  /** Ends one job's use of the store thread. */
  releaseStoreThread(): void {
    if (--this.storeUsers > 0) return;
    this.storeUsers = 0;
    const store = this.store;
    if (!store) return;
    void store.then(
      (w) => w.worker.unref(),
      () => undefined,
    );
    this.storeIdle = setTimeout(() => {
      if (this.storeUsers > 0 || this.store !== store) return;
      this.store = undefined;
      void store.then(
        (w) => w.worker.terminate(),
        () => undefined,
      );
    }, STORE_THREAD_IDLE_MS);
    this.storeIdle.unref();
  }

  /** Stops a worker that may still be busy (abort, failure). */
  discard(w: PooledWorker): void {
    void w.worker.terminate();
  }

  /** V8 heap statistics of the idle workers (diagnostics). */
  async heapStats(): Promise<{ used_heap_size: number; total_heap_size: number; external_memory: number }[]> {
    const idle = this.codecUsers === 0 ? [...this.codecs] : [];
    for (const w of idle) w.worker.ref();
    try {
      return await Promise.all(idle.map((w) => w.request<{ used_heap_size: number; total_heap_size: number; external_memory: number }>('heap-stats', {})));
    } finally {
      for (const w of idle) w.worker.unref();
    }
  }

  /** Stops the codec workers and the store thread when no job uses them (tests, shutdown). */
  async close(): Promise<void> {
    const all = this.codecUsers === 0 ? this.codecs.splice(0) : [];
    if (this.storeUsers === 0 && this.store) {
      clearTimeout(this.storeIdle);
      const store = this.store;
      this.store = undefined;
      const w = await store.catch(() => undefined);
      if (w) all.push(w);
    }
    await Promise.all(all.map((w) => w.worker.terminate()));
  }
}

let shared: WorkerHost | undefined;

export function sharedWorkerHost(): WorkerHost {
  shared ??= new WorkerHost();
  return shared;
}
