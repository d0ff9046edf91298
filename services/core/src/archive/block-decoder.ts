/**
 * Decoding stored frames in order on the codec pool (BlockDecoder), shared by unpack (SPEC §7) and
 * verify (verify-archive.ts), and the first-error latch both stop on (Failure).
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { CairnError } from '../errors.ts';
import type { ArchiveBlock, ArchiveIndexHead, Codec, FrameOpener, RangeReadSettings, UnpackSource } from './archive-types.ts';
import { blockError, describeBlock, rangeFrames, type Frame, type Segment } from './block-source.ts';
import type { CodecPool, CodecResult } from './codec-pool.ts';
import { encodeContentChecks } from './content-checks.ts';
import type { DirectWrites } from './direct-writes.ts';
import type { PlanItem } from './extractor.ts';
import { nativeAddonPath } from './native-reads.ts';
import { ParallelRangeReads } from './parallel-range-reads.ts';
import { SharedSlab } from './shared-slab.ts';
import { collectNow } from './thread-gc.ts';
import { ThreadedFrames } from './threaded-frames.ts';
import type { WorkerHost } from './worker-host.ts';

/** Spare buffers kept for reuse, each way. */
const MAX_SPARE = 8;
/** Frame slots beyond those handed over and decoding: the store thread cuts the next ones while those wait. */
const FRAME_SLOTS_SPARE = 4;

/** The first error of an unpack or a verify (a failure anywhere, or the abort): the rest stop on it. */
export class Failure {
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

/**
 * Decodes stored frames on the codec pool, two per codec worker at a time, and delivers the
 * blocks in archive order once verified. Buffers are reused both ways: frames come back from
 * the codec workers, decoded blocks from where they were delivered (recycle).
 */
export class BlockDecoder {
  private readonly inflight: {
    result: Promise<CodecResult>;
    block: number;
    plan: PlanItem[];
    checked: PlanItem[];
    writes: PlanItem[] | undefined;
    /** The frame's slot in the frame slab, given back once decoded. */
    frameSlot: number | undefined;
  }[] = [];
  private readonly spareFrames: ArrayBuffer[] = [];
  private readonly spareOutputs: ArrayBuffer[] = [];
  private readonly frameSize: number;
  readonly maxInflight: number;
  /** The native helper, which hashes the checked files where it can and writes them (direct-writes.ts). */
  private readonly native = nativeAddonPath();

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
    this.maxInflight = BlockDecoder.inflightWith(pool);
  }

  /**
   * A slab for frames read by the store thread, `window` of them handed over at a time (none for
   * stored blocks, which are delivered in their frame's memory to the extract worker).
   */
  frameSlabFor(window: number): SharedSlab | undefined {
    if (!this.frameSlabs || this.index.codec === 'none' || this.frameSize === 0) return undefined;
    this.frameSlab = SharedSlab.create(this.frameSize, window + this.maxInflight + FRAME_SLOTS_SPARE);
    return this.frameSlab;
  }

  /**
   * Once the unpack or verify ended. A slab's memory is freed once no thread holds it: the others
   * let go of theirs (codec-pool.ts, frame-reader-job.ts), and this thread collects once the caller
   * returned. It collects rarely now that blocks do not pass through it, and would keep the slabs.
   */
  collectSlabs(): void {
    if (this.slab || this.frameSlab) setImmediate(collectNow);
  }

  /** Blocks decoding at a time on `pool`: two per codec worker, and as many waiting their turn. */
  static inflightWith(pool: Pick<CodecPool, 'size'>): number {
    return pool.size * 4;
  }

  /** A buffer for a frame of `len` bytes (cutFrames' allocator). */
  readonly allocFrame = (len: number): Buffer => {
    const ab = this.spareFrames.pop();
    return ab && ab.byteLength >= len ? Buffer.from(ab, 0, len) : Buffer.from(new ArrayBuffer(this.frameSize), 0, len);
  };

  /** A delivered block's buffer, back from where it was delivered: zstd can decode the next one into it. */
  recycle(buf: ArrayBuffer): void {
    if (this.index.codec === 'zstd' && this.spareOutputs.length < MAX_SPARE) this.spareOutputs.push(buf);
    // Stored blocks are delivered in their frame's buffer: the store thread's, unless decrypted here.
    else if (this.index.codec === 'none' && this.toReader && !this.open) this.toReader(buf);
  }

  /** Blocks decoded whose frame does not verify itself (a zstd frame without its checksum, a stored block without sha256). */
  unverified = 0;
  /** Frames come from the store thread (threaded-frames.ts): their buffers go back to it, not to spareFrames. */
  toReader: ((buf: ArrayBuffer) => void) | undefined;
  /** The store thread's frame slab (frames in its slots go to the codec workers as slots) and the way its slots go back. */
  frameSlab: SharedSlab | undefined;
  toReaderSlot: ((at: number) => void) | undefined;
  /** Whether frames read by the store thread may go in a slab (an unpack's `sharedSlots` 0 says no). */
  frameSlabs = true;
  /** An unpack's small files are written by the codec workers that decode them (direct-writes.ts). */
  direct: DirectWrites | undefined;
  /** Where an unpack's zstd blocks are decoded to, while it has free slots (shared-slab.ts): their slots come back from where they were delivered. */
  slab: SharedSlab | undefined;

  async decode(frames: AsyncGenerator<Frame>): Promise<void> {
    for await (const f of frames) {
      this.failure.throwIfFailed();
      if (!f.data) continue;
      const b = this.index.blocks[f.block]!;
      let data = f.data;
      const inSlot = this.frameSlab?.slotOf(f.data);
      if (this.open) {
        let plain: Buffer;
        try {
          plain = this.open(b, f.data);
        } catch (err) {
          // Which block, in which object (an altered, moved or foreign frame fails to open).
          throw blockError(err, this.index.blocks, f.block);
        }
        // Into a buffer that owns its memory: it is transferred to a codec worker.
        data = this.allocFrame(plain.length);
        plain.copy(data);
        if (inSlot !== undefined) this.toReaderSlot!(inSlot);
        else this.toReader?.(f.data.buffer as ArrayBuffer);
      } else if (!selfVerifying(this.index.codec, b, f.data)) this.unverified++;
      // A frame still in its slot is read there by the codec worker, and its slot given back once decoded.
      const frameSlot = this.open ? undefined : inSlot;
      const slot = this.slab && this.index.codec === 'zstd' && b.uncompressedLength <= this.slab.slotSize ? this.slab.take() : undefined;
      const out = slot === undefined ? this.spareOutputs.pop() : undefined;
      const block = f.block;
      const blocks = this.index.blocks;
      const plan = this.planOf(block);
      const { checks, checked } = contentChecks(plan, b);
      const direct = this.direct;
      const writes = checks && direct ? direct.encode(checked) : undefined;
      const result = this.pool
        .run({
          op: 'decompress',
          codec: this.index.codec,
          level: 0,
          data,
          expectedLength: b.uncompressedLength,
          hashInput: b.sha256 !== undefined,
          returnInput: this.index.codec !== 'none' && frameSlot === undefined,
          ...(frameSlot !== undefined ? { inputSlab: this.frameSlab } : {}),
          ...(slot !== undefined ? { slab: this.slab, outputAt: slot } : out && out.byteLength >= b.uncompressedLength ? { output: out } : {}),
          ...(checks ? { checks, native: this.native } : {}),
          ...(writes ? { writes: { buf: writes.buf, token: direct!.settings.token } } : {}),
        })
        .catch((err: unknown) => {
          // Which block, in which object: a corrupt frame of another backup is named as such.
          throw blockError(err, blocks, block);
        });
      result.catch(this.failure.fail);
      this.inflight.push({ result, block: f.block, plan, checked, writes: writes?.files, frameSlot });
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
    if (x.frameSlot !== undefined) this.toReaderSlot!(x.frameSlot);
    this.failure.throwIfFailed();
    const b = this.index.blocks[x.block]!;
    if (b.sha256 && out.inputSha !== b.sha256)
      throw new CairnError('checksum-mismatch', `${describeBlock(this.index.blocks, x.block)} does not match its sha256`);
    if (out.mismatch) {
      const p = x.checked[out.mismatch.check]!;
      throw new CairnError('checksum-mismatch', `content of ${p.path} does not match its sha256 (${out.mismatch.actual} != ${p.sha256})`);
    }
    for (const p of x.checked) p.verified = true;
    if (x.writes && out.written) this.direct!.settle(x.writes, out.written);
    await this.deliver(x.block, out.data, x.plan);
    if (!out.input) return;
    // Decrypted frames are this thread's own copies; the others are the store thread's.
    if (this.toReader && !this.open) this.toReader(out.input);
    else if (this.spareFrames.length < MAX_SPARE) this.spareFrames.push(out.input);
  }
}

/** Whether decoding `data` verifies it: a zstd frame with its content checksum, any gzip member (CRC-32), a stored block with a sha256. */
function selfVerifying(codec: Codec, b: ArchiveBlock, data: Buffer): boolean {
  if (b.sha256 !== undefined) return true;
  if (codec === 'gzip') return true;
  // zstd: magic 28 B5 2F FD, then the frame header descriptor, whose bit 2 is Content_Checksum_flag.
  if (codec === 'zstd') return data.length > 4 && data.readUInt32LE(0) === 0xfd2fb528 && (data[4]! & 0x04) !== 0;
  return false;
}

/** The files of `plan` whose whole content lies in block `b`: their sha256 is checked where it is decoded. */
function contentChecks(plan: PlanItem[], b: ArchiveBlock): { checks: ArrayBuffer | undefined; checked: PlanItem[] } {
  const checked: PlanItem[] = [];
  const end = b.uncompressedOffset + b.uncompressedLength;
  for (const p of plan) {
    if (p.type !== 'file' || p.sha256 === undefined || p.covered || p.size === 0) continue;
    if (p.dataOffset < b.uncompressedOffset || p.dataOffset + p.size > end) continue;
    checked.push(p);
  }
  return { checks: checked.length ? encodeContentChecks(checked, b.uncompressedOffset) : undefined, checked };
}

/**
 * Reads `ranges` (whole frames, in order: splitSegments) and decodes them with `decoder`: by the
 * store thread when the source says how (its `thread` recipe), else through its range reader here.
 * `hashWhole`: the ranges are the own object from its start, and its sha256 is returned. `tap`
 * sees each frame before it goes to a codec worker. The reads stop when `failure` fails.
 */
export async function decodeRanges(o: {
  host: WorkerHost;
  decoder: BlockDecoder;
  failure: Failure;
  source: Extract<UnpackSource, { rangeReader: unknown }>;
  blocks: readonly ArchiveBlock[];
  ranges: Segment[];
  settings: RangeReadSettings;
  hashWhole: boolean;
  tap?: (f: Frame) => void;
}): Promise<string | undefined> {
  const { decoder, failure } = o;
  const failed = (): Error => (failure.error instanceof Error ? failure.error : new Error(String(failure.error)));
  const tapped = async function* (frames: AsyncGenerator<Frame>): AsyncGenerator<Frame> {
    for await (const f of frames) {
      o.tap?.(f);
      yield f;
    }
  };
  const { thread } = o.source;
  if (thread) {
    const window = decoder.maxInflight + 2;
    const frameSlab = decoder.frameSlabFor(window);
    const reads = await ThreadedFrames.start(o.host, {
      ...thread,
      blocks: o.blocks,
      segments: o.ranges,
      settings: o.settings,
      hashWhole: o.hashWhole,
      window,
      ...(frameSlab ? { frameSlab } : {}),
    });
    failure.onFail(() => reads.destroy(failed()));
    if (failure.failed) reads.destroy(failed());
    decoder.toReader = reads.giveBack;
    decoder.toReaderSlot = reads.giveBackSlot;
    await decoder.decode(tapped(reads.frames()));
    return reads.sha256;
  }
  const hash = o.hashWhole ? createHash('sha256') : undefined;
  const reads = new ParallelRangeReads(o.source.rangeReader, o.ranges, o.settings);
  failure.onFail(() => reads.destroy(failed()));
  await decoder.decode(tapped(rangeFrames(reads, o.blocks, decoder.allocFrame, hash)));
  return hash?.digest('hex');
}
