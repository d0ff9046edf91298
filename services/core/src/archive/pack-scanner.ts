/**
 * The pack scanner job, run in a worker thread of its own: walks the volumes (readdir + lstat)
 * and hands the items to the reader thread in chunks as it goes, so reading and compression
 * start at once instead of after the whole walk; when the walk ends it sends the progress
 * totals to the main thread.
 */
import type { MessagePort } from 'node:worker_threads';
import { CairnError } from '../errors.ts';
import { loadNativeReads } from './native-reads.ts';
import { ScanList, TreeWalker, type ScanChunk, type ScanWarning } from './tree-scan.ts';

/** Slots of the Int32Array shared by the pack threads. */
export const CTRL_CREDITS = 0;
export const CTRL_ABORT = 1;
/** Chunks the scanner has posted to the reader (the reader waits on it). */
export const CTRL_CHUNKS = 2;
/** Chunks the reader has taken (the scanner waits on it when too far ahead). */
export const CTRL_CONSUMED = 3;
export const CTRL_SLOTS = 4;

export interface PackScannerData {
  volumes: { name: string; dir: string; excludes: string[] }[];
  control: SharedArrayBuffer;
  /** To the reader thread: ScanFeed messages. */
  reader: MessagePort;
  /** To the main thread: one PackScanTotals message when the walk is done. */
  main: MessagePort;
  /** The native helper's path (native-reads.ts), when built and enabled. */
  native: string | undefined;
  window?: ScanWindow;
}

/** How the walk runs ahead of the reader: items per chunk, chunks ahead at most. */
interface ScanWindow {
  chunkItems: number;
  chunksAhead: number;
}

export interface ScanFeed {
  chunk: ScanChunk | undefined;
  warnings: ScanWarning[];
  /** Set on the last message. */
  done: boolean;
}

export interface PackScanTotals {
  t: 'scan';
  filesTotal: number;
  bytesTotal: number;
}

/** Throws once the main thread has set the abort slot (cancel, failure). */
export function throwIfAborted(ctrl: Int32Array): void {
  if (Atomics.load(ctrl, CTRL_ABORT) !== 0) throw new CairnError('cancelled', 'cancelled');
}

/** Items per chunk (at directory boundaries, so chunks may be larger). */
const CHUNK_ITEMS = 2048;
/**
 * Chunks the walk may run ahead of the reader (~100 bytes per item waiting). Beyond that the
 * scanner counts the rest of the tree for the progress totals and then waits for the reader:
 * memory stays bounded however many files a volume holds.
 */
const MAX_CHUNKS_AHEAD = 64;

export function runPackScanner(d: PackScannerData): PackScanTotals {
  const ctrl = new Int32Array(d.control);
  const checkAbort = (): void => throwIfAborted(ctrl);
  let warnings: ScanWarning[] = [];
  const walker = new TreeWalker(d.volumes, (w) => warnings.push(w), loadNativeReads(d.native));
  const post = (chunk: ScanChunk | undefined, done: boolean): void => {
    const msg: ScanFeed = { chunk, warnings, done };
    d.reader.postMessage(msg, chunk ? ScanList.transferList(chunk) : []);
    warnings = [];
    Atomics.add(ctrl, CTRL_CHUNKS, 1);
    Atomics.notify(ctrl, CTRL_CHUNKS);
  };
  let totals: PackScanTotals | undefined;
  const postTotals = (files: number, bytes: number): void => {
    totals = { t: 'scan', filesTotal: files, bytesTotal: bytes };
    d.main.postMessage(totals);
    if (held) post(held, false);
    held = undefined;
  };
  // Until the totals are posted, the newest chunk is held back: a volume that fits one chunk
  // then cannot have a block reach the main thread before its totals.
  let held: ScanChunk | undefined;
  const ship = (chunk: ScanChunk): void => {
    if (totals) {
      post(chunk, false);
      return;
    }
    if (held) post(held, false);
    held = chunk;
  };
  const { chunkItems, chunksAhead } = d.window ?? { chunkItems: CHUNK_ITEMS, chunksAhead: MAX_CHUNKS_AHEAD };
  while (walker.step()) {
    checkAbort();
    if (walker.list.length < chunkItems) continue;
    ship(walker.list.takeChunk());
    if (Atomics.load(ctrl, CTRL_CHUNKS) - Atomics.load(ctrl, CTRL_CONSUMED) < chunksAhead) continue;
    if (!totals) {
      const rest = walker.countRest(checkAbort);
      postTotals(walker.filesTotal + rest.files, walker.bytesTotal + rest.bytes);
    }
    for (;;) {
      const consumed = Atomics.load(ctrl, CTRL_CONSUMED);
      if (Atomics.load(ctrl, CTRL_CHUNKS) - consumed < chunksAhead) break;
      checkAbort();
      Atomics.wait(ctrl, CTRL_CONSUMED, consumed, 250);
    }
  }
  if (walker.list.length) ship(walker.list.takeChunk());
  if (!totals) postTotals(walker.filesTotal, walker.bytesTotal);
  post(undefined, true);
  d.reader.close();
  d.main.close();
  return totals!;
}
