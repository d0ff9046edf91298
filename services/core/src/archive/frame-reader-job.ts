/**
 * The frame reader job, run on the store thread (WorkerHost.acquireStoreThread) during a restore:
 * it makes the range reads (parallel-range-reads.ts), cuts the stored bytes into frames, hashes them when the whole
 * archive is read, and hands each frame to the main thread by transfer. So the stored bytes never
 * enter the main thread's heap: there every chunk read stayed external memory until a collection,
 * and with its large heap and little else allocated, V8 marked that whole heap every ~10 MB read
 * (DESIGN §10). Here the heap is small and a collection cheap.
 *
 * Flow: at most `window` frames are handed over and not yet taken by the main thread, which says
 * when it takes one and gives frame buffers back for reuse (FrameReaderAck). The main thread
 * closing its port stops the job: reads in flight are aborted (the thread serves other jobs).
 */
import { createHash } from 'node:crypto';
import type { MessagePort } from 'node:worker_threads';
import { CairnError } from '../errors.ts';
import { backupRangeReader } from '../domain/backup-range-reader.ts';
import { openStore, relayRequestErrorsTo, type StoreErrorMessage } from '../storage/store-spec.ts';
import type { ArchiveBlock, RangeReader, RangeReaderRecipe, RangeReadSettings } from './archive-types.ts';
import { Wakeup } from './async-queue.ts';
import { rangeFrames, type FrameCopy, type Segment } from './block-source.ts';
import { fileRangeReader } from './file-range-reader.ts';
import { loadNativeReads } from './native-reads.ts';
import { ParallelRangeReads } from './parallel-range-reads.ts';
import { SharedSlab } from './shared-slab.ts';
import { collectNow, handled } from './thread-gc.ts';
import { serializeError, type SerializedError } from './worker-errors.ts';

export interface FrameReaderJobData {
  recipe: RangeReaderRecipe;
  blocks: readonly ArchiveBlock[];
  /** The ranges to read, in order (already cut at frame boundaries: splitSegments). */
  segments: Segment[];
  settings: RangeReadSettings;
  /** The ranges are the archive's own object from its start to its end: hash every byte. */
  hashWhole: boolean;
  /** Frames handed over and not yet taken, at most. */
  window: number;
  port: MessagePort;
  /**
   * The unpack's frame slab (shared-slab.ts): frames are cut into its slots while one is free,
   * copied by the native helper at `native` (without it, into buffers of their own).
   */
  slab?: { sab: SharedArrayBuffer; slotSize: number; native: string | undefined };
}

/** Store thread -> main thread. */
export type FrameReaderMessage =
  /** A frame in a buffer of its own (transferred), or at `at` in the frame slab. */
  | { t: 'frame'; block: number; buf?: ArrayBuffer; at?: number; length: number }
  /** After the last frame; the whole archive's sha256 when asked for. */
  | { t: 'end'; sha256?: string }
  | { t: 'error'; error: SerializedError }
  | StoreErrorMessage;

/** Main thread -> store thread: `taken` frames taken, and a frame buffer or slot to reuse. */
export interface FrameReaderAck {
  taken: number;
  spare?: ArrayBuffer;
  spareAt?: number;
}

const MAX_SPARE = 8;

/** The range reader a recipe describes; `unrelay` stops reporting its store's failed requests. */
async function rangeReaderOf(
  recipe: RangeReaderRecipe,
  signal: AbortSignal,
  post: (m: StoreErrorMessage) => void,
): Promise<{ reader: RangeReader; unrelay: () => void }> {
  if (recipe.kind === 'file') return { reader: fileRangeReader(recipe.path), unrelay: () => undefined };
  const store = await openStore(recipe.store);
  return { reader: backupRangeReader(store, recipe.backup, recipe.codec, signal), unrelay: relayRequestErrorsTo(store, post) };
}

export async function runFrameReaderJob(d: FrameReaderJobData): Promise<void> {
  const { port } = d;
  const spare: ArrayBuffer[] = [];
  let outstanding = 0;
  const wakeup = new Wakeup();
  const stop = new AbortController();
  // Node 20's Buffer.copy into a SharedArrayBuffer is V8's relaxed atomic copy, ~13 times slower
  // than memcpy when misaligned: the slab is used only with the native helper's copy.
  const copy: FrameCopy | undefined = d.slab ? loadNativeReads(d.slab.native)?.copyBytes : undefined;
  const slab = d.slab && copy ? SharedSlab.over(d.slab.sab, d.slab.slotSize) : undefined;
  port.on('message', (m: FrameReaderAck) => {
    outstanding -= m.taken;
    if (m.spare && spare.length < MAX_SPARE) spare.push(m.spare);
    if (m.spareAt !== undefined) slab?.give(m.spareAt);
    wakeup.notify();
  });
  port.once('close', () => {
    stop.abort(new CairnError('cancelled', 'the frame reads were stopped'));
    wakeup.notify();
  });
  const frameSize = d.blocks.reduce((n, b) => Math.max(n, b.compressedLength), 0);
  const alloc = (len: number): Buffer => {
    const at = slab && len <= slab.slotSize ? slab.take() : undefined;
    if (at !== undefined) return slab!.view(at, len);
    const ab = spare.pop();
    return Buffer.from(ab && ab.byteLength >= len ? ab : new ArrayBuffer(frameSize), 0, len);
  };
  const post = (m: FrameReaderMessage, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);
  const stopped = (): void => {
    if (stop.signal.aborted) throw stop.signal.reason;
  };
  let unrelay = (): void => undefined;
  try {
    const opened = await rangeReaderOf(d.recipe, stop.signal, post);
    unrelay = opened.unrelay;
    stopped();
    const hash = d.hashWhole ? createHash('sha256') : undefined;
    const reads = new ParallelRangeReads(opened.reader, d.segments, d.settings);
    stop.signal.addEventListener('abort', () => reads.destroy(stop.signal.reason as Error), { once: true });
    for await (const f of rangeFrames(reads, d.blocks, alloc, hash, copy)) {
      await wakeup.until(() => {
        stopped();
        return outstanding < d.window;
      });
      outstanding++;
      const data = f.data!;
      // The stored bytes read for it are garbage now (the frame itself leaves by transfer).
      handled(data.length);
      const at = slab?.slotOf(data);
      if (at !== undefined) post({ t: 'frame', block: f.block, at, length: data.length });
      else post({ t: 'frame', block: f.block, buf: data.buffer as ArrayBuffer, length: data.length }, [data.buffer as ArrayBuffer]);
    }
    post(hash ? { t: 'end', sha256: hash.digest('hex') } : { t: 'end' });
  } catch (err) {
    post({ t: 'error', error: serializeError(err) });
  } finally {
    unrelay();
    // This thread outlives the job: the slab it no longer holds is freed now, not at some later collection.
    if (slab) setImmediate(collectNow);
  }
}
