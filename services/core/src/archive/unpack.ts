/**
 * unpackArchive: stored archive -> directories (SPEC §7). The whole archive from a stream, or
 * chosen paths from only the blocks that hold them through a range reader.
 *
 * Threads: the store thread (range reads with a `thread` recipe) or this one reads and hashes the
 * stored bytes and cuts frames; codec workers decode and verify blocks in parallel; an extract
 * worker writes files with synchronous calls. Every
 * block is verified (zstd frame checksum, gzip CRC, sha256 for stored blocks) before its bytes
 * reach the extractor. Each file's sha256 is checked: by the codec worker that decodes its block
 * when the block holds the whole content (small files, checked in parallel); else computed on
 * a worker of its own as the blocks go by (HashAhead) and compared by the extractor once written.
 *
 * The pieces: the plan (unpack-plan.ts); readArchive cuts the stored bytes into frames; a
 * BlockDecoder decodes them in order; an ExtractorChannel sends them to the extract worker with
 * the plan items they hold; a Failure keeps the first error and stops the others.
 *
 * Format 2 (incremental backups): blocks may live in other backups' archive objects. Such an
 * archive is read only through a range reader, each run of blocks as segments (one range read
 * per object and stretch of contiguous bytes). Through a range reader, segments are cut into
 * ranges of whole frames fetched several at a time (ParallelRangeReads), delivered in order.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { abortError, CairnError } from '../errors.ts';
import { hasForeignBlocks, type BlockRun } from './archive-index.ts';
import type { ArchiveBlock, ArchiveIndexHead, ArchiveProgress, Codec, FrameOpener, UnpackOptions, UnpackResult } from './archive-types.ts';
import { Wakeup } from './async-queue.ts';
import { blockError, cutFrames, describeBlock, rangeFrames, segmentsOf, type Frame } from './block-source.ts';
import { CodecPool, type CodecResult, type ContentCheck } from './codec-pool.ts';
import type { ExtractAck, ExtractBlock, ExtractJobData, ExtractJobResult, ExtractMessage } from './extract-job.ts';
import type { HashAheadFile, HashAheadMessage } from './hash-ahead-job.ts';
import type { PlanItem } from './extractor.ts';
import { nativeAddonPath } from './native-reads.ts';
import { DEFAULT_RANGE_READS, ParallelRangeReads, splitSegments } from './parallel-range-reads.ts';
import { ProgressLimiter } from './progress-limiter.ts';
import { ThreadedFrames } from './threaded-frames.ts';
import { PlanCursor, planExtraction, type Plan } from './unpack-plan.ts';
import { defaultConcurrency, sharedWorkerHost, type PooledWorker, type WorkerHost } from './worker-host.ts';

const MAX_UNACKED = 4;
const PROGRESS_INTERVAL_MS = 250;
/** Spare buffers kept for reuse, each way. */
const MAX_SPARE = 8;

/** The first error of an unpack (a failure anywhere, or the abort): the rest stop on it. */
class Failure {
  error: unknown;
  /** The stored bytes being read: destroyed on failure, so a stalled source cannot delay a cancel. */
  reading: Readable | undefined;
  private readonly listeners: (() => void)[] = [];

  get failed(): boolean {
    return this.error !== undefined;
  }

  readonly fail = (err: unknown): void => {
    this.error ??= err;
    for (const l of this.listeners) l();
    this.reading?.destroy(err instanceof Error ? err : new Error(String(err)));
  };

  onFail(listener: () => void): void {
    this.listeners.push(listener);
  }

  throwIfFailed(): void {
    if (this.error !== undefined) throw this.error;
  }
}

/** onProgress, at most every PROGRESS_INTERVAL_MS unless forced (the final report). */
class ProgressReporter {
  private readonly progress: ArchiveProgress;
  private readonly limiter: ProgressLimiter;

  constructor(
    private readonly onProgress: ((p: ArchiveProgress) => void) | undefined,
    plan: Plan,
  ) {
    this.progress = { bytesDone: 0, bytesTotal: plan.bytesTotal, filesDone: 0, filesTotal: plan.filesTotal };
    this.limiter = new ProgressLimiter(() => this.onProgress?.({ ...this.progress }), PROGRESS_INTERVAL_MS);
  }

  update(bytesDone: number, filesDone: number, force = false): void {
    this.progress.bytesDone = bytesDone;
    this.progress.filesDone = filesDone;
    if (this.onProgress) this.limiter.update(force);
  }

  /** No held-back report after the unpack ended. */
  stop(): void {
    this.limiter.stop();
  }
}

/**
 * This side of the extract worker's port: decoded blocks go out numbered in order, with the plan
 * items whose headers they hold, at most MAX_UNACKED unacknowledged (the worker's backpressure),
 * whether sent from here or through the hash-ahead worker; each ack brings the progress and the
 * block's buffer back.
 */
class ExtractorChannel {
  private unacked = 0;
  private seq = 0;
  private readonly wakeup = new Wakeup();

  constructor(
    private readonly port: MessagePort,
    private readonly failure: Failure,
    onAck: (m: ExtractAck) => void,
  ) {
    port.on('message', (m: ExtractAck) => {
      this.unacked--;
      onAck(m);
      this.wakeup.notify();
    });
    failure.onFail(() => this.wakeup.notify());
  }

  /**
   * Once the worker has room, the next block message: `data` at tar offset `at` with the plan
   * items whose headers it holds; `run`: parsing (re)starts at this block. It takes `data`'s
   * buffer (transferred when sent). Rejects once the unpack failed.
   */
  async next(data: Buffer, at: number, run: BlockRun | undefined, plan: PlanItem[]): Promise<ExtractBlock> {
    await this.room();
    this.unacked++;
    const m: ExtractBlock = { t: 'block', seq: this.seq++, buf: data.buffer as ArrayBuffer, offset: data.byteOffset, length: data.length, at, plan };
    if (run) m.run = { start: run.start, limit: run.limit };
    return m;
  }

  /** Sends a block message from next() straight from here. */
  send(m: ExtractBlock): void {
    this.port.postMessage(m satisfies ExtractMessage, [m.buf]);
  }

  /** After the last block (from here or through the hash-ahead worker): it is taken after them. */
  end(): void {
    this.port.postMessage({ t: 'end', seq: this.seq++ } satisfies ExtractMessage);
  }

  close(): void {
    this.port.close();
  }

  /** Resolves once the worker has room for another block; rejects once the unpack failed. */
  private room(): Promise<void> {
    return this.wakeup.until(() => {
      if (this.failure.failed) throw this.failure.error;
      return this.unacked < MAX_UNACKED;
    });
  }
}

/**
 * Decodes stored frames on the codec pool, two per codec worker at a time, and delivers the
 * blocks in archive order once verified. Buffers are reused both ways: frames come back from
 * the codec workers, decoded blocks from the extractor.
 */
class BlockDecoder {
  private readonly inflight: { result: Promise<CodecResult>; block: number; plan: PlanItem[]; checked: PlanItem[] }[] = [];
  private readonly spareFrames: ArrayBuffer[] = [];
  private readonly spareOutputs: ArrayBuffer[] = [];
  private readonly frameSize: number;
  readonly maxInflight: number;

  constructor(
    private readonly pool: CodecPool,
    private readonly index: ArchiveIndexHead,
    private readonly failure: Failure,
    /** The plan items whose headers block `block` holds, asked in block order as blocks are read. */
    private readonly planOf: (block: number) => PlanItem[],
    private readonly deliver: (block: number, data: Buffer, plan: PlanItem[]) => Promise<void>,
    /** An encrypted archive's frames are opened (authenticated) here before they are decoded. */
    private readonly open?: FrameOpener,
  ) {
    this.frameSize = index.blocks.reduce((n, b) => Math.max(n, b.compressedLength), 0);
    this.maxInflight = pool.size * 2;
  }

  /** A buffer for a frame of `len` bytes (cutFrames' allocator). */
  readonly allocFrame = (len: number): Buffer => {
    const ab = this.spareFrames.pop();
    return ab && ab.byteLength >= len ? Buffer.from(ab, 0, len) : Buffer.from(new ArrayBuffer(this.frameSize), 0, len);
  };

  /** A delivered block's buffer, back from the extractor: zstd can decode the next one into it. */
  recycle(buf: ArrayBuffer): void {
    if (this.index.codec === 'zstd' && this.spareOutputs.length < MAX_SPARE) this.spareOutputs.push(buf);
    // Stored blocks are delivered in their frame's buffer: the store thread's, unless decrypted here.
    else if (this.index.codec === 'none' && this.toReader && !this.open) this.toReader(buf);
  }

  /** Blocks decoded whose frame does not verify itself (a zstd frame without its checksum, a stored block without sha256). */
  unverified = 0;
  /** Frames come from the store thread (threaded-frames.ts): their buffers go back to it, not to spareFrames. */
  toReader: ((buf: ArrayBuffer) => void) | undefined;

  async decode(frames: AsyncGenerator<Frame>): Promise<void> {
    for await (const f of frames) {
      this.failure.throwIfFailed();
      if (!f.data) continue;
      const b = this.index.blocks[f.block]!;
      let data = f.data;
      if (this.open) {
        const plain = this.open(b, f.data);
        // Into a buffer that owns its memory: it is transferred to a codec worker.
        data = this.allocFrame(plain.length);
        plain.copy(data);
        this.toReader?.(f.data.buffer as ArrayBuffer);
      } else if (!selfVerifying(this.index.codec, b, f.data)) this.unverified++;
      const out = this.spareOutputs.pop();
      const block = f.block;
      const blocks = this.index.blocks;
      const plan = this.planOf(block);
      const { checks, checked } = contentChecks(plan, b);
      const result = this.pool
        .run({
          op: 'decompress',
          codec: this.index.codec,
          level: 0,
          data,
          expectedLength: b.uncompressedLength,
          hashInput: b.sha256 !== undefined,
          returnInput: this.index.codec !== 'none',
          ...(out && out.byteLength >= b.uncompressedLength ? { output: out } : {}),
          ...(checks.length ? { checks } : {}),
        })
        .catch((err: unknown) => {
          // Which block, in which object: a corrupt frame of another backup is named as such.
          throw blockError(err, blocks, block);
        });
      result.catch(this.failure.fail);
      this.inflight.push({ result, block: f.block, plan, checked });
      if (this.inflight.length >= this.maxInflight) await this.deliverOne();
    }
  }

  /** Delivers the blocks still being decoded. */
  async drain(): Promise<void> {
    while (this.inflight.length) await this.deliverOne();
  }

  private async deliverOne(): Promise<void> {
    const x = this.inflight.shift()!;
    const out = await x.result;
    this.failure.throwIfFailed();
    const b = this.index.blocks[x.block]!;
    if (b.sha256 && out.inputSha !== b.sha256)
      throw new CairnError('checksum-mismatch', `${describeBlock(this.index.blocks, x.block)} does not match its sha256`);
    if (out.mismatch) {
      const p = x.checked[out.mismatch.check]!;
      throw new CairnError('checksum-mismatch', `content of ${p.path} does not match its sha256 (${out.mismatch.actual} != ${p.sha256})`);
    }
    for (const p of x.checked) p.verified = true;
    await this.deliver(x.block, out.data, x.plan);
    if (!out.input) return;
    // Decrypted frames are this thread's own copies; the others are the store thread's.
    if (this.toReader && !this.open) this.toReader(out.input);
    else if (this.spareFrames.length < MAX_SPARE) this.spareFrames.push(out.input);
  }
}

/**
 * Feeds the stored bytes to the decoder: the whole stream (blocks nobody needs are skipped), or
 * each run of blocks through the range reader, as ranges fetched several at a time (by the store
 * thread when the source says how: its `thread` recipe). Returns
 * whether the whole archive was read and verified: the own object's sha256 compared (a mismatch
 * throws) when every block is in it; with blocks in other objects, every frame verified by its
 * codec (zstd checksum, gzip CRC, sha256 of a stored block).
 */
async function readArchive(o: UnpackOptions, host: WorkerHost, plan: Plan, decoder: BlockDecoder, failure: Failure): Promise<boolean> {
  const index = o.index;
  const expected = o.expectedSha256 ?? index.sha256;
  const last = index.blocks.length - 1;
  if ('stream' in o.source) {
    const needed = new Set<number>();
    for (const r of plan.runs) for (let b = r.firstBlock; b <= r.lastBlock; b++) needed.add(b);
    const hash = createHash('sha256');
    failure.reading = o.source.stream;
    await decoder.decode(cutFrames(failure.reading, index.blocks, 0, last, (b) => needed.has(b), hash, decoder.allocFrame));
    verifyWhole(hash.digest('hex'), expected);
    return true;
  }
  const foreign = hasForeignBlocks(index);
  const whole = plan.runs.length === 1 && plan.runs[0]!.firstBlock === 0 && plan.runs[0]!.lastBlock === last;
  // Own blocks only: they are the own object, contiguous from its start, read in order.
  const hashWhole = whole && !foreign;
  const segments = (function* () {
    for (const r of plan.runs) yield* segmentsOf(index.blocks, r.firstBlock, r.lastBlock);
  })();
  const settings = o.rangeReads ?? DEFAULT_RANGE_READS;
  const ranges = [...splitSegments(segments, index.blocks, settings.rangeBytes)];
  const failed = (): Error => (failure.error instanceof Error ? failure.error : new Error(String(failure.error)));
  let sha256: () => string | undefined;
  const { thread } = o.source;
  if (thread) {
    const reads = await ThreadedFrames.start(host, { ...thread, blocks: index.blocks, segments: ranges, settings, hashWhole, window: decoder.maxInflight + 2 });
    failure.onFail(() => reads.destroy(failed()));
    if (failure.failed) reads.destroy(failed());
    decoder.toReader = reads.giveBack;
    await decoder.decode(reads.frames());
    sha256 = () => reads.sha256;
  } else {
    const hash = hashWhole ? createHash('sha256') : undefined;
    const reads = new ParallelRangeReads(o.source.rangeReader, ranges, settings);
    failure.onFail(() => reads.destroy(failed()));
    await decoder.decode(rangeFrames(reads, index.blocks, decoder.allocFrame, hash));
    sha256 = () => hash?.digest('hex');
  }
  if (hashWhole) {
    verifyWhole(sha256() ?? '', expected);
    return true;
  }
  return whole && decoder.unverified === 0;
}

/** Whether decoding `data` verifies it: a zstd frame with its content checksum, any gzip member (CRC-32), a stored block with a sha256. */
function selfVerifying(codec: Codec, b: ArchiveBlock, data: Buffer): boolean {
  if (b.sha256 !== undefined) return true;
  if (codec === 'gzip') return true;
  // zstd: magic 28 B5 2F FD, then the frame header descriptor, whose bit 2 is Content_Checksum_flag.
  if (codec === 'zstd') return data.length > 4 && data.readUInt32LE(0) === 0xfd2fb528 && (data[4]! & 0x04) !== 0;
  return false;
}

/**
 * The main thread's side of the hash-ahead worker (hash-ahead-job.ts): marks the files whose
 * content spans blocks as hashed ahead, and sends the blocks holding their content to that worker
 * (started at the first such file), which sends them on to the extract worker itself.
 */
class HashAhead {
  /** Tar offset up to which blocks hold content being hashed. */
  private until = 0;
  private worker: Promise<{ w: PooledWorker; port: MessagePort; job: Promise<unknown> }> | undefined;
  private closed = false;

  constructor(
    private readonly host: WorkerHost,
    private readonly failure: Failure,
    /** The hash-ahead worker's port to the extract worker, handed over when it starts. */
    private readonly toExtractor: MessagePort,
  ) {}

  /** Sends block message `block` through the worker if it holds content to hash; false: send it directly. */
  async send(items: PlanItem[], block: ExtractBlock): Promise<boolean> {
    const files: HashAheadFile[] = [];
    for (const p of items) {
      if (p.type !== 'file' || p.sha256 === undefined || p.covered || p.verified || p.size === 0) continue;
      p.hashedAhead = true;
      files.push({ headerOffset: p.headerOffset, dataOffset: p.dataOffset, size: p.size });
      this.until = Math.max(this.until, p.dataOffset + p.size);
    }
    if (!files.length && block.at >= this.until) return false;
    const { port } = await (this.worker ??= this.start());
    this.failure.throwIfFailed();
    port.postMessage({ t: 'block', block, files } satisfies HashAheadMessage, [block.buf]);
    return true;
  }

  /** Ends the worker's job (after the last block) and stops its thread; once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const started = this.worker;
    if (!started) {
      this.toExtractor.close();
      return;
    }
    const { w, port, job } = await started;
    try {
      if (!this.failure.failed) {
        port.postMessage({ t: 'end' } satisfies HashAheadMessage);
        await job;
      }
    } finally {
      port.close();
      this.host.discard(w);
    }
  }

  private async start(): Promise<{ w: PooledWorker; port: MessagePort; job: Promise<unknown> }> {
    const w = await this.host.acquire();
    const { port1, port2 } = new MessageChannel();
    const job = w.request('hash-ahead', { data: { port: port2, extractor: this.toExtractor } }, [port2, this.toExtractor]);
    job.catch(this.failure.fail);
    return { w, port: port1, job };
  }
}

/** The files of `plan` whose whole content lies in block `b`: their sha256 is checked where it is decoded. */
function contentChecks(plan: PlanItem[], b: ArchiveBlock): { checks: ContentCheck[]; checked: PlanItem[] } {
  const checks: ContentCheck[] = [];
  const checked: PlanItem[] = [];
  const end = b.uncompressedOffset + b.uncompressedLength;
  for (const p of plan) {
    if (p.type !== 'file' || p.sha256 === undefined || p.covered || p.size === 0) continue;
    if (p.dataOffset < b.uncompressedOffset || p.dataOffset + p.size > end) continue;
    checks.push({ offset: p.dataOffset - b.uncompressedOffset, length: p.size, sha256: p.sha256 });
    checked.push(p);
  }
  return { checks, checked };
}

function verifyWhole(actual: string, expected: string | undefined): void {
  if (expected && actual !== expected) {
    throw new CairnError('checksum-mismatch', `archive sha256 ${actual} does not match the expected ${expected}`);
  }
}

export async function unpackArchive(o: UnpackOptions): Promise<UnpackResult> {
  const { index, signal } = o;
  if (signal?.aborted) throw abortError(signal);
  let plan: Plan;
  try {
    if (index.encryption && !o.open) throw new CairnError('config', 'the archive is encrypted: restoring it needs its data keys');
    plan = planExtraction(o, index);
    if ('stream' in o.source && hasForeignBlocks(index))
      throw new CairnError(
        'internal',
        "this archive has blocks in other backups' archive objects (an incremental backup): " +
          "it can only be read through a range reader, not from its own object's stream",
      );
  } catch (err) {
    // Refused before reading: the source (an S3 body, a file) is not left open.
    if ('stream' in o.source) o.source.stream.destroy();
    throw err;
  }
  const restoreOwnership = o.restoreOwnership ?? process.getuid?.() === 0;
  const host = sharedWorkerHost();
  const { jobs, pool } = await CodecPool.openWith(host, o.concurrency ?? defaultConcurrency());
  const extractor = jobs[0]!;

  const failure = new Failure();
  const onAbort = (): void => failure.fail(abortError(signal!));
  signal?.addEventListener('abort', onAbort, { once: true });
  // An abort while the worker threads were being acquired fired no event for us.
  if (signal?.aborted) onAbort();

  const progress = new ProgressReporter(o.onProgress, plan);
  const { port1, port2 } = new MessageChannel();
  const channel = new ExtractorChannel(port1, failure, (m) => {
    decoder.recycle(m.buf);
    progress.update(m.bytesWritten, m.filesWritten);
  });
  // The hash-ahead worker's way to the extract worker (its end is handed over when it starts).
  const aheadToExtractor = new MessageChannel();
  const job = extractor.request<ExtractJobResult>(
    'extract',
    {
      data: {
        roots: plan.roots,
        strict: plan.strict,
        knownVolumes: plan.known,
        restoreOwnership,
        native: nativeAddonPath(),
        port: port2,
        ahead: aheadToExtractor.port2,
      } satisfies ExtractJobData,
    },
    [port2, aheadToExtractor.port2],
  );
  job.catch(failure.fail);

  const runStarts = new Map(plan.runs.map((r) => [r.firstBlock, r]));
  const cursor = new PlanCursor(plan);
  const ahead = new HashAhead(host, failure, aheadToExtractor.port1);
  const decoder = new BlockDecoder(
    pool,
    index,
    failure,
    (block) => {
      const b = index.blocks[block]!;
      return cursor.itemsBefore(b.uncompressedOffset + b.uncompressedLength);
    },
    async (block, data, items) => {
      const m = await channel.next(data, index.blocks[block]!.uncompressedOffset, runStarts.get(block), items);
      if (!(await ahead.send(items, m))) channel.send(m);
    },
    o.open,
  );

  let archiveVerified = false;
  let result: ExtractJobResult;
  try {
    // Failed already (an abort while the threads started): a source that never ends must not be read.
    failure.throwIfFailed();
    archiveVerified = await readArchive(o, host, plan, decoder, failure);
    await decoder.drain();
    await ahead.close();
    channel.end();
    result = await job;
    failure.throwIfFailed();
  } catch (err) {
    failure.fail(err);
    throw signal?.aborted ? abortError(signal) : failure.error;
  } finally {
    progress.stop();
    signal?.removeEventListener('abort', onAbort);
    channel.close();
    // After a failure: the hash-ahead thread is stopped too (no end message).
    await ahead.close().catch(() => undefined);
    // The extractor's heap held the plan and directory list: let it go with its thread.
    host.discard(extractor);
    if (failure.failed) pool.destroy();
    else pool.release();
  }
  progress.update(result.bytesWritten, result.filesWritten, true);
  return { filesWritten: result.filesWritten, bytesWritten: result.bytesWritten, archiveVerified, warnings: result.warnings };
}
