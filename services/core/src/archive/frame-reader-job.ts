/**
 * The frame reader job, run in a worker thread of its own during a restore: it makes the range
 * reads (parallel-range-reads.ts), cuts the stored bytes into frames, hashes them when the whole
 * archive is read, and hands each frame to the main thread by transfer. So the stored bytes never
 * enter the main thread's heap: there every chunk read stayed external memory until a collection,
 * and with its large heap and little else allocated, V8 marked that whole heap every ~10 MB read
 * (DESIGN §10). Here the heap is small and a collection cheap.
 *
 * Flow: at most `window` frames are handed over and not yet taken by the main thread, which says
 * when it takes one and gives frame buffers back for reuse (FrameReaderAck).
 */
import { createHash } from 'node:crypto';
import type { MessagePort } from 'node:worker_threads';
import { backupRangeReader } from '../domain/backup-range-reader.ts';
import { openStore } from '../storage/store-spec.ts';
import type { ArchiveBlock, RangeReader, RangeReaderRecipe, RangeReadSettings, StoreRequestError } from './archive-types.ts';
import { rangeFrames, type Segment } from './block-source.ts';
import { fileRangeReader } from './file-range-reader.ts';
import { ParallelRangeReads } from './parallel-range-reads.ts';
import { serializeError, type SerializedError } from './worker-errors.ts';

export interface FrameReaderJobData {
  recipe: RangeReaderRecipe;
  blocks: ArchiveBlock[];
  /** The ranges to read, in order (already cut at frame boundaries: splitSegments). */
  segments: Segment[];
  settings: RangeReadSettings;
  /** The ranges are the archive's own object from its start to its end: hash every byte. */
  hashWhole: boolean;
  window: number;
  port: MessagePort;
}

/** Reader thread -> main thread. */
export type FrameReaderMessage =
  | { t: 'frame'; block: number; buf: ArrayBuffer; length: number }
  /** After the last frame; the whole archive's sha256 when asked for. */
  | { t: 'end'; sha256?: string }
  | { t: 'error'; error: SerializedError }
  | { t: 'store-error'; error: StoreRequestError };

/** Main thread -> reader thread: `taken` frames taken, and a frame buffer to reuse. */
export interface FrameReaderAck {
  taken: number;
  spare?: ArrayBuffer;
}

const MAX_SPARE = 8;

async function rangeReaderOf(recipe: RangeReaderRecipe, onRequestError: (e: StoreRequestError) => void): Promise<RangeReader> {
  if (recipe.kind === 'file') return fileRangeReader(recipe.path);
  const store = await openStore(recipe.store);
  (store as { onRequestError?: (l: (e: StoreRequestError) => void) => void }).onRequestError?.(onRequestError);
  return backupRangeReader(store, recipe.backup, recipe.codec);
}

export async function runFrameReaderJob(d: FrameReaderJobData): Promise<void> {
  const { port } = d;
  const spare: ArrayBuffer[] = [];
  let outstanding = 0;
  let wake: (() => void) | undefined;
  port.on('message', (m: FrameReaderAck) => {
    outstanding -= m.taken;
    if (m.spare && spare.length < MAX_SPARE) spare.push(m.spare);
    wake?.();
  });
  const frameSize = d.blocks.reduce((n, b) => Math.max(n, b.compressedLength), 0);
  const alloc = (len: number): Buffer => {
    const ab = spare.pop();
    return Buffer.from(ab && ab.byteLength >= len ? ab : new ArrayBuffer(frameSize), 0, len);
  };
  const post = (m: FrameReaderMessage, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);
  try {
    const reader = await rangeReaderOf(d.recipe, (error) => post({ t: 'store-error', error }));
    const hash = d.hashWhole ? createHash('sha256') : undefined;
    const reads = new ParallelRangeReads(reader, d.segments, d.settings);
    for await (const f of rangeFrames(reads, d.blocks, alloc, hash)) {
      while (outstanding >= d.window) await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
      outstanding++;
      const data = f.data!;
      post({ t: 'frame', block: f.block, buf: data.buffer as ArrayBuffer, length: data.length }, [data.buffer as ArrayBuffer]);
    }
    post(hash ? { t: 'end', sha256: hash.digest('hex') } : { t: 'end' });
  } catch (err) {
    post({ t: 'error', error: serializeError(err) });
  }
}
