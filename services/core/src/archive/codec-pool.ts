/**
 * Compresses or decompresses blocks on worker threads, several at a time. Callers keep the
 * returned promises in order, so output order never depends on which worker finished first.
 */
import type { Codec } from './archive-types.ts';
import { fromView, transferView, type TransferView } from './buffers.ts';
import type { SharedSlab, SlabRef } from './shared-slab.ts';
import type { PooledWorker, WorkerHost } from './worker-host.ts';

interface CodecTask {
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
  /** `data` is a view of this slab (shared-slab.ts): it is read there, not transferred. */
  inputSlab?: SharedSlab;
  /** Or a slot of a shared slab to decode into (zstd): the result's data is then a view of it. */
  slab?: SharedSlab;
  outputAt?: number;
  /**
   * Files in the output to check against their sha256 (decompress; content-checks.ts), transferred:
   * the first that does not match comes back as `mismatch`.
   */
  checks?: ArrayBuffer;
  /** The native helper's path (native-reads.ts), when built: it hashes the checks and makes the writes. */
  native?: string | undefined;
  /** Checked files to write once the checks pass (direct-writes.ts), transferred, with whose unpack they are. */
  writes?: { buf: ArrayBuffer; token: string };
}

export interface CodecResult {
  data: Buffer;
  input?: ArrayBuffer;
  inputSha?: string;
  outputSha?: string;
  /** The first of the task's checks that failed: its position in `checks` and the sha256 found. */
  mismatch?: { check: number; actual: string };
  /** The answers to `writes` (direct-writes.ts). */
  written?: ArrayBuffer;
}

export class CodecPool {
  private closed = false;
  /** The workers each shared slab was sent to (they keep it until told to forget it). */
  private readonly slabbed = new Map<string, Set<PooledWorker>>();

  private constructor(
    private readonly host: WorkerHost,
    private readonly workers: PooledWorker[],
  ) {}

  /**
   * `jobs` workers of its own for long jobs (reader, scanner, extractor) plus a share of the
   * process's codec workers, or nothing (what was started is stopped) on failure.
   */
  static async openWith(host: WorkerHost, size: number, jobs = 1): Promise<{ jobs: PooledWorker[]; pool: CodecPool }> {
    const [codecs, ...own] = await Promise.allSettled([host.acquireCodecs(Math.max(1, size)), ...Array.from({ length: jobs }, () => host.acquire())]);
    const ok = own.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const bad = [codecs, ...own].find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (bad) {
      for (const w of ok) host.discard(w);
      if (codecs!.status === 'fulfilled') host.releaseCodecs();
      throw bad.reason;
    }
    return { jobs: ok, pool: new CodecPool(host, (codecs as PromiseFulfilledResult<PooledWorker[]>).value) };
  }

  get size(): number {
    return this.workers.length;
  }

  async run(task: CodecTask): Promise<CodecResult> {
    let w = this.workers[0]!;
    for (const c of this.workers) if (c.load < w.load) w = c;
    const input = task.inputSlab
      ? { inSlab: this.slabRef(task.inputSlab, w), offset: task.data.byteOffset, length: task.data.length }
      : transferView(task.data);
    const slab = task.slab ? this.slabRef(task.slab, w) : undefined;
    const r = await w.request<TransferView & Omit<CodecResult, 'data'> & { shared?: boolean }>(
      'codec',
      {
        op: task.op,
        codec: task.codec,
        level: task.level,
        ...input,
        expectedLength: task.expectedLength ?? -1,
        hashInput: task.hashInput ?? false,
        hashOutput: task.hashOutput ?? false,
        returnInput: task.returnInput ?? false,
        output: task.output,
        slab,
        outputAt: task.outputAt,
        checks: task.checks,
        native: task.native,
        writes: task.writes,
      },
      [
        ...('buf' in input ? [input.buf] : []),
        ...(task.output ? [task.output] : []),
        ...(task.checks ? [task.checks] : []),
        ...(task.writes ? [task.writes.buf] : []),
      ],
    );
    const data = r.shared ? task.slab!.view(r.offset, r.length) : fromView(r);
    return { data, input: r.input, inputSha: r.inputSha, outputSha: r.outputSha, mismatch: r.mismatch, written: r.written };
  }

  /** Gives this operation's share of the codec workers back; they forget its slabs (after the tasks sent before). */
  release(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [id, workers] of this.slabbed) for (const w of workers) w.request('forget-slab', { data: id }).catch(() => undefined);
    this.slabbed.clear();
    this.host.releaseCodecs();
  }

  /** How worker `w` finds `slab`: the buffer itself only the first time. */
  private slabRef(slab: SharedSlab, w: PooledWorker): SlabRef {
    let sent = this.slabbed.get(slab.id);
    if (!sent) this.slabbed.set(slab.id, (sent = new Set()));
    if (sent.has(w)) return { id: slab.id };
    sent.add(w);
    return { id: slab.id, sab: slab.sab };
  }

  /**
   * After a failure: the same as release(). The workers are shared, so they are not stopped;
   * this operation's few blocks in flight finish and their results are dropped.
   */
  destroy(): void {
    this.release();
  }
}
