/**
 * The pack reader job, run in a worker thread: takes the scanned items from the scanner thread
 * (pack-scanner.ts) as they come, reads every file with synchronous calls and writes the tar
 * stream straight into block buffers, which are transferred to the main thread for compression.
 *
 * The pieces: a ScanInbox hands over the scanner's chunks; an EntryEmitter (pack-entry-emitter.ts)
 * writes each item's headers and content through a TarBlockWriter (tar-block-writer.ts), whose
 * full blocks go to the main thread with the index entries and warnings a ReaderReport
 * (pack-reader-report.ts) gathered meanwhile.
 *
 * Synchronous I/O is deliberate: an async fs call costs ~50 µs of thread-pool round trip here,
 * a synchronous one a few µs, and this thread does nothing else (TOOLCHAIN.md).
 */
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { ArchiveEntry, ArchiveWarning, Codec, VolumeSummary } from './archive-types.ts';
import { compressBlock } from './block-codec.ts';
import { transferView } from './buffers.ts';
import { loadNativeReads } from './native-reads.ts';
import { EntryEmitter } from './pack-entry-emitter.ts';
import { ReaderReport } from './pack-reader-report.ts';
import { CTRL_CHUNKS, CTRL_CONSUMED, CTRL_CREDITS, throwIfAborted, type ScanFeed } from './pack-scanner.ts';
import { IncrementalEmitter, ParentFrames, type PackParentData } from './pack-reuse.ts';
import { TarBlockWriter, type ReusedFrame, type ShipBlock, type ShipFrames } from './tar-block-writer.ts';
import { RECORD } from './tar-header.ts';
import { ScanList } from './tree-scan.ts';

export interface PackReaderData {
  volumes: { name: string; dir: string; excludes: string[] }[];
  blockSize: number;
  /** Int32Array view, slots CTRL_* (pack-scanner.ts). */
  control: SharedArrayBuffer;
  port: MessagePort;
  /** ScanFeed messages from the scanner thread. */
  scan: MessagePort;
  /** Absolute path of the native helper (native-reads.ts), when it is built and enabled. */
  native: string | undefined;
  /** Block buffers handed back for reuse (read synchronously with receiveMessageOnPort). */
  recycle: MessagePort;
  /** An incremental pack's parent (pack-reuse.ts). */
  parent: PackParentData | undefined;
  /** The archive's codec (zstd or gzip) and level, and the size under which a block is compressed here (inlineBelow). */
  inline: { codec: Exclude<Codec, 'none'>; level: number; below: number } | undefined;
}

/**
 * At most, blocks smaller than this are compressed by the reader itself and sent as finished
 * frames (inlineBelow). Most are a directory's headers, a frame of their own (format 2): ~1,000 in
 * a pack of 100,000 small files, each a few hundred bytes that cost a round trip through the main
 * thread and a codec thread (four messages) for microseconds of compression.
 */
export const INLINE_BELOW = 64 * 1024;

/**
 * The size under which this pack's reader compresses a block itself: INLINE_BELOW, but at most a
 * sixteenth of a block (with small blocks, most blocks end early, and the codec threads would sit
 * idle) and 4 KiB at the slow levels above 9 (the reader must not stall on its own compression).
 */
export function inlineBelow(blockSize: number, level: number): number {
  return Math.min(INLINE_BELOW, Math.floor(blockSize / 16), level > 9 ? 4096 : INLINE_BELOW);
}

export interface PackReaderBlock {
  t: 'block';
  buf: ArrayBuffer;
  length: number;
  /**
   * Index entries completed with this block: a JSON array, zstd-compressed. The main thread
   * keeps these until the end — a few small buffers instead of 100k live objects (garbage
   * collector time) or their text (memory: JSON compresses ~5×).
   */
  entries: ArrayBuffer | undefined;
  entriesLength: number;
  entriesCount: number;
  warnings: ArchiveWarning[];
  bytesDone: number;
  filesDone: number;
  /** Frames of other objects standing for the next `length` tar bytes (`buf` is then empty). */
  frames?: ReusedFrame[];
  /** `buf` holds the block's frame, compressed by the reader (inlineBelow): its offset and length there. */
  frame?: { offset: number; length: number };
}

export interface PackReaderEnd {
  t: 'end';
  result: PackReaderResult;
}

export interface PackReaderResult {
  tarBytes: number;
  volumes: VolumeSummary[];
}

function packEntries(entries: ArchiveEntry[]): { buf: ArrayBuffer; length: number } | undefined {
  if (!entries.length) return undefined;
  const json = Buffer.from(JSON.stringify(entries));
  const z = compressBlock('zstd', 1, json);
  // Kept until the end of the pack: an exact-size copy, not the frame's larger buffer.
  return { buf: (z.buffer as ArrayBuffer).slice(z.byteOffset, z.byteOffset + z.length), length: json.length };
}

/** Scanned items from the scanner thread, one chunk at a time as it sends them. */
class ScanInbox {
  private done = false;
  private taken = 0;

  constructor(
    private readonly port: MessagePort,
    private readonly ctrl: Int32Array,
    private readonly report: ReaderReport,
  ) {}

  /** Waits for the next chunk; undefined once the scan has ended. */
  next(): ScanList | undefined {
    const ctrl = this.ctrl;
    for (;;) {
      const m = receiveMessageOnPort(this.port)?.message as ScanFeed | undefined;
      if (m) {
        this.taken++;
        Atomics.store(ctrl, CTRL_CONSUMED, this.taken);
        Atomics.notify(ctrl, CTRL_CONSUMED);
        for (const w of m.warnings) this.report.warn(w.path, w.code, w.message, w.vol);
        if (m.done) this.done = true;
        if (m.chunk) return ScanList.fromChunk(m.chunk);
        continue;
      }
      if (this.done) return undefined;
      throwIfAborted(ctrl);
      // The scanner bumps the counter after each post: wait only while nothing new was posted.
      if (Atomics.load(ctrl, CTRL_CHUNKS) === this.taken) Atomics.wait(ctrl, CTRL_CHUNKS, this.taken, 250);
    }
  }
}

/** Takes one of the block credits the main thread hands out (its backpressure), waiting if none is left. */
function acquireCredit(ctrl: Int32Array): void {
  for (;;) {
    throwIfAborted(ctrl);
    const c = Atomics.load(ctrl, CTRL_CREDITS);
    if (c > 0) {
      if (Atomics.compareExchange(ctrl, CTRL_CREDITS, c, c - 1) === c) return;
      continue;
    }
    Atomics.wait(ctrl, CTRL_CREDITS, c, 250);
  }
}

/** What the report gathered since the last message, for the next one. */
function reportPart(report: ReaderReport): Pick<PackReaderBlock, 'entries' | 'entriesLength' | 'entriesCount' | 'warnings' | 'bytesDone' | 'filesDone'> {
  const entries = report.takeEntries();
  const packed = packEntries(entries);
  return {
    entries: packed?.buf,
    entriesLength: packed?.length ?? 0,
    entriesCount: entries.length,
    warnings: report.takeWarnings(),
    bytesDone: report.bytesDone,
    filesDone: report.filesDone,
  };
}

/**
 * Sends reused frames in place of tar bytes. Nothing to compress, but they take a block credit
 * too: they wait in the main thread behind a frame the sink has not taken yet, and an unchanged
 * tree of many small files or directories is a message per parent frame.
 */
function frameShipper(d: PackReaderData, ctrl: Int32Array, report: ReaderReport): ShipFrames {
  return (frames, length) => {
    acquireCredit(ctrl);
    const msg: PackReaderBlock = { t: 'block', buf: new ArrayBuffer(0), length, frames, ...reportPart(report) };
    d.port.postMessage(msg, msg.entries ? [msg.entries] : []);
  };
}

/**
 * Sends a full block to the main thread with what the report gathered since the block before,
 * once a credit allows; continues in a buffer the main thread handed back, or a new one.
 */
function blockShipper(d: PackReaderData, ctrl: Int32Array, report: ReaderReport): ShipBlock {
  return (block, length) => {
    // A credit for every frame, small ones too: it bounds what waits in the main thread for the
    // sink (a tree of a million empty directories is a million small frames).
    acquireCredit(ctrl);
    if (d.inline && length < d.inline.below) {
      // Compressed now: the block's buffer stays here and is written on at once.
      const frame = transferView(compressBlock(d.inline.codec, d.inline.level, block.subarray(0, length)));
      const msg: PackReaderBlock = { t: 'block', buf: frame.buf, length, frame: { offset: frame.offset, length: frame.length }, ...reportPart(report) };
      d.port.postMessage(msg, msg.entries ? [msg.buf, msg.entries] : [msg.buf]);
      return block;
    }
    const msg: PackReaderBlock = { t: 'block', buf: block.buffer as ArrayBuffer, length, ...reportPart(report) };
    d.port.postMessage(msg, msg.entries ? [msg.buf, msg.entries] : [msg.buf]);
    const reused = receiveMessageOnPort(d.recycle)?.message as ArrayBuffer | undefined;
    return reused?.byteLength === d.blockSize ? Buffer.from(reused) : Buffer.allocUnsafeSlow(d.blockSize);
  };
}

export function runPackReader(d: PackReaderData): PackReaderResult {
  const ctrl = new Int32Array(d.control);
  const report = new ReaderReport(d.volumes);
  const scan = new ScanInbox(d.scan, ctrl, report);
  const out = new TarBlockWriter(d.blockSize, blockShipper(d, ctrl, report), frameShipper(d, ctrl, report));
  const frames = d.parent && new ParentFrames(d.parent);
  const emitter = new EntryEmitter(out, report, loadNativeReads(d.native), ctrl, frames?.chunkFrame);
  const incremental = d.parent && frames ? new IncrementalEmitter(emitter, out, report, d.parent, frames) : undefined;
  try {
    for (let list = scan.next(); list; list = scan.next()) {
      for (let i = 0; i < list.length; i++) {
        throwIfAborted(ctrl);
        (incremental ?? emitter).emit(list.item(i));
      }
    }
    incremental?.finish();
  } finally {
    emitter.close();
  }
  // The end-of-archive records are a frame of their own: the frames before them stay reusable.
  out.flush();
  out.putZeros(2 * RECORD);
  const tarBytes = out.tarPos;
  out.flush();
  // Warnings raised after the last block was sent go on their own.
  if (report.hasWarnings) d.port.postMessage({ t: 'block', buf: new ArrayBuffer(0), length: 0, ...reportPart(report) } satisfies PackReaderBlock);
  const result: PackReaderResult = { tarBytes, volumes: report.finish() };
  d.port.postMessage({ t: 'end', result } satisfies PackReaderEnd);
  return result;
}
