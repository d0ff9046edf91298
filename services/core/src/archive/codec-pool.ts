/**
 * Compresses or decompresses blocks on worker threads, several at a time. Callers keep the
 * returned promises in order, so output order never depends on which worker finished first.
 */
import type { Codec } from './archive-types.ts';
import { fromView, transferView, type TransferView } from './buffers.ts';
import type { PooledWorker, WorkerHost } from './worker-host.ts';

export interface CodecTask {
  op: 'compress' | 'decompress';
  codec: Codec;
  level: number;
  /** Transferred to the worker: the caller must own its ArrayBuffer and not touch it again. */
  data: Buffer;
  expectedLength?: number;
  hashInput?: boolean;
  hashOutput?: boolean;
  /** Return the input's ArrayBuffer (as `input`) when the output does not reuse it. */
  returnInput?: boolean;
  /** A buffer to decode into (zstd), transferred; a fresh one is allocated without it. */
  output?: ArrayBuffer;
}

export interface CodecResult {
  data: Buffer;
  input?: ArrayBuffer;
  inputSha?: string;
  outputSha?: string;
}

export class CodecPool {
  private closed = false;

  private constructor(
    private readonly host: WorkerHost,
    private readonly workers: PooledWorker[],
  ) {}

  static async open(host: WorkerHost, size: number): Promise<CodecPool> {
    return new CodecPool(host, await host.acquireMany(Math.max(1, size)));
  }

  /** `jobs` workers for long jobs plus a pool, or nothing (what was started is stopped) on failure. */
  static async openWith(host: WorkerHost, size: number, jobs = 1): Promise<{ jobs: PooledWorker[]; pool: CodecPool }> {
    const all = await Promise.allSettled(Array.from({ length: Math.max(1, size) + jobs }, () => host.acquire()));
    const ok = all.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const bad = all.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (bad) {
      for (const w of ok) host.discard(w);
      throw bad.reason;
    }
    return { jobs: ok.slice(0, jobs), pool: new CodecPool(host, ok.slice(jobs)) };
  }

  get size(): number {
    return this.workers.length;
  }

  async run(task: CodecTask): Promise<CodecResult> {
    let w = this.workers[0]!;
    for (const c of this.workers) if (c.load < w.load) w = c;
    const view = transferView(task.data);
    const r = await w.request<TransferView & { inputSha?: string; outputSha?: string; input?: ArrayBuffer }>(
      'codec',
      {
        op: task.op,
        codec: task.codec,
        level: task.level,
        ...view,
        expectedLength: task.expectedLength ?? -1,
        hashInput: task.hashInput ?? false,
        hashOutput: task.hashOutput ?? false,
        returnInput: task.returnInput ?? false,
        output: task.output,
      },
      task.output ? [view.buf, task.output] : [view.buf],
    );
    return { data: fromView(r), input: r.input, inputSha: r.inputSha, outputSha: r.outputSha };
  }

  /** Gives the workers back for reuse (all tasks must have settled). */
  release(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.workers) this.host.release(w);
  }

  /** Stops the workers at once, whatever they are doing. */
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.workers) this.host.discard(w);
  }
}
