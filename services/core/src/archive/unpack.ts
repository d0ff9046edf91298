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
 * Small files checked by their codec worker are also written there (direct-writes.ts), so creating
 * files, the kernel's work that bounds a restore of many of them, runs on every codec worker;
 * CAIRN_DIRECT_WRITES=0 (or `directWrites: false`) leaves every file to the extract worker.
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
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { abortError, CairnError } from '../errors.ts';
import { hasForeignBlocks, type BlockRun } from './archive-index.ts';
import type { ArchiveProgress, UnpackOptions, UnpackResult } from './archive-types.ts';
import { Wakeup } from './async-queue.ts';
import { BlockDecoder, decodeRanges, Failure } from './block-decoder.ts';
import { cutFrames, segmentsOf } from './block-source.ts';
import { CodecPool } from './codec-pool.ts';
import type { ExtractAck, ExtractBlock, ExtractJobData, ExtractJobResult, ExtractMessage } from './extract-job.ts';
import type { HashAheadFile, HashAheadMessage } from './hash-ahead-job.ts';
import type { PlanItem } from './extractor.ts';
import { DirectWrites } from './direct-writes.ts';
import { nativeAddonPath } from './native-reads.ts';
import { encodePlan } from './plan-wire.ts';
import { DEFAULT_RANGE_READS, splitSegments } from './parallel-range-reads.ts';
import { ProgressLimiter } from './progress-limiter.ts';
import { SharedSlab } from './shared-slab.ts';
import { PlanCursor, planExtraction, type Plan } from './unpack-plan.ts';
import { defaultConcurrency, sharedWorkerHost, type PooledWorker, type WorkerHost } from './worker-host.ts';

const MAX_UNACKED = 4;
/** Slots of the shared slab beyond the blocks decoding and unacknowledged: the extractor may hold a few (a record split between blocks). */
const SPARE_SLOTS = 4;
const PROGRESS_INTERVAL_MS = 250;

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
    /** The unpack's shared slab: a block in it goes as its slot, not as a buffer. */
    private readonly slab: SharedSlab | undefined,
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
    const m: ExtractBlock = {
      t: 'block',
      seq: this.seq++,
      ...(this.slab?.slotOf(data) === undefined ? { buf: data.buffer as ArrayBuffer } : {}),
      offset: data.byteOffset,
      length: data.length,
      at,
      plan: encodePlan(plan),
    };
    if (run) m.run = { start: run.start, limit: run.limit };
    return m;
  }

  /** Sends a block message from next() straight from here. */
  send(m: ExtractBlock): void {
    this.port.postMessage(m satisfies ExtractMessage, m.buf ? [m.buf] : []);
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
  const sha256 = await decodeRanges({ host, decoder, failure, source: o.source, blocks: index.blocks, ranges, settings, hashWhole });
  if (hashWhole) {
    verifyWhole(sha256 ?? '', expected);
    return true;
  }
  return whole && decoder.unverified === 0;
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
    private readonly slab: SharedSlab | undefined,
  ) {}

  /** Marks a block's files to hash ahead and returns them: before its message is made, which carries the marks. */
  mark(items: PlanItem[]): HashAheadFile[] {
    const files: HashAheadFile[] = [];
    for (const p of items) {
      if (p.type !== 'file' || p.sha256 === undefined || p.covered || p.verified || p.size === 0) continue;
      p.hashedAhead = true;
      files.push({ headerOffset: p.headerOffset, dataOffset: p.dataOffset, size: p.size });
      this.until = Math.max(this.until, p.dataOffset + p.size);
    }
    return files;
  }

  /** Sends block message `block` through the worker if it holds content to hash (`files`: mark's); false: send it directly. */
  async send(files: HashAheadFile[], block: ExtractBlock): Promise<boolean> {
    if (!files.length && block.at >= this.until) return false;
    const { port } = await (this.worker ??= this.start());
    this.failure.throwIfFailed();
    port.postMessage({ t: 'block', block, files } satisfies HashAheadMessage, block.buf ? [block.buf] : []);
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
    const data = { port: port2, extractor: this.toExtractor, ...(this.slab ? { slab: this.slab.sab } : {}) };
    const job = w.request('hash-ahead', { data }, [port2, this.toExtractor]);
    job.catch(this.failure.fail);
    return { w, port: port1, job };
  }
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
  // zstd blocks are decoded into slots shared with the extract and hash-ahead workers (shared-slab.ts).
  const slab =
    index.codec === 'zstd'
      ? SharedSlab.create(
          index.blocks.reduce((n, b) => Math.max(n, b.uncompressedLength), 0),
          o.sharedSlots ?? BlockDecoder.inflightWith(pool) + MAX_UNACKED + SPARE_SLOTS,
        )
      : undefined;

  const failure = new Failure();
  const onAbort = (): void => failure.fail(abortError(signal!));
  signal?.addEventListener('abort', onAbort, { once: true });
  // An abort while the worker threads were being acquired fired no event for us.
  if (signal?.aborted) onAbort();

  const progress = new ProgressReporter(o.onProgress, plan);
  const native = nativeAddonPath();
  const { port1, port2 } = new MessageChannel();
  const channel = new ExtractorChannel(port1, failure, slab, (m) => {
    decoder.direct?.acked();
    for (const buf of m.bufs) decoder.recycle(buf);
    for (const at of m.slots) slab!.give(at);
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
        native,
        port: port2,
        ahead: aheadToExtractor.port2,
        ...(slab ? { slab: slab.sab } : {}),
      } satisfies ExtractJobData,
    },
    [port2, aheadToExtractor.port2],
  );
  job.catch(failure.fail);

  const runStarts = new Map(plan.runs.map((r) => [r.firstBlock, r]));
  const cursor = new PlanCursor(plan);
  const ahead = new HashAhead(host, failure, aheadToExtractor.port1, slab);
  const decoder = new BlockDecoder(
    pool,
    index,
    failure,
    (block) => {
      const b = index.blocks[block]!;
      const items = cursor.itemsBefore(b.uncompressedOffset + b.uncompressedLength);
      decoder.direct?.planned(items, b.uncompressedOffset + b.uncompressedLength);
      return items;
    },
    async (block, data, items) => {
      const files = ahead.mark(items);
      const m = await channel.next(data, index.blocks[block]!.uncompressedOffset, runStarts.get(block), items);
      if (!(await ahead.send(files, m))) channel.send(m);
    },
    o.open,
  );
  decoder.slab = slab;
  decoder.frameSlabs = o.sharedSlots !== 0;

  let archiveVerified = false;
  let result: ExtractJobResult;
  try {
    // Failed already (an abort while the threads started): a source that never ends must not be read.
    failure.throwIfFailed();
    if (native && o.directWrites !== false && process.env.CAIRN_DIRECT_WRITES !== '0') {
      // The volume roots exist before a codec worker writes below them (the extractor makes them too).
      for (const root of Object.values(plan.roots)) mkdirSync(root, { recursive: true });
      decoder.direct = new DirectWrites({ roots: plan.roots, restoreOwnership, token: randomUUID() });
    }
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
    decoder.collectSlabs();
  }
  progress.update(result.bytesWritten, result.filesWritten, true);
  return { filesWritten: result.filesWritten, bytesWritten: result.bytesWritten, archiveVerified, warnings: result.warnings };
}
