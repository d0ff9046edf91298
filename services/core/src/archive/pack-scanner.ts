/**
 * The pack scanner job, run in a worker thread of its own: walks the volumes (readdir + lstat)
 * and hands the items to the reader thread in chunks as it goes, so reading and compression
 * start at once instead of after the whole walk; when the walk ends it sends the progress
 * totals to the main thread.
 */
import type { MessagePort } from 'node:worker_threads';
import { CairnError } from '../errors.ts';
import { loadNativeReads } from './native-reads.ts';
import { scanVolumes, ScanList, type ScanChunk, type ScanWarning } from './tree-scan.ts';

/** Slots of the Int32Array shared by the pack threads. */
export const CTRL_CREDITS = 0;
export const CTRL_ABORT = 1;
/** Chunks the scanner has posted to the reader (the reader waits on it). */
export const CTRL_CHUNKS = 2;
export const CTRL_SLOTS = 3;

export interface PackScannerData {
  volumes: { name: string; dir: string; excludes: string[] }[];
  control: SharedArrayBuffer;
  /** To the reader thread: ScanFeed messages. */
  reader: MessagePort;
  /** To the main thread: one PackScanTotals message when the walk is done. */
  main: MessagePort;
  /** The native helper's path (native-reads.ts), when built and enabled. */
  native: string | undefined;
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
  entriesTotal: number;
}

/** Throws once the main thread has set the abort slot (cancel, failure). */
export function throwIfAborted(ctrl: Int32Array): void {
  if (Atomics.load(ctrl, CTRL_ABORT) !== 0) throw new CairnError('cancelled', 'cancelled');
}

export function runPackScanner(d: PackScannerData): PackScanTotals {
  const ctrl = new Int32Array(d.control);
  let warnings: ScanWarning[] = [];
  const post = (chunk: ScanChunk | undefined, done: boolean): void => {
    const msg: ScanFeed = { chunk, warnings, done };
    d.reader.postMessage(msg, chunk ? ScanList.transferList(chunk) : []);
    warnings = [];
    Atomics.add(ctrl, CTRL_CHUNKS, 1);
    Atomics.notify(ctrl, CTRL_CHUNKS);
  };
  // The last chunk is held back until the totals are posted: a volume that fits one chunk then
  // cannot have a block reach the main thread before its totals.
  let last: ScanChunk | undefined;
  const scan = scanVolumes(d.volumes, (w) => warnings.push(w), () => throwIfAborted(ctrl), (c) => {
    if (last) post(last, false);
    last = c;
  }, loadNativeReads(d.native));
  const totals: PackScanTotals = { t: 'scan', filesTotal: scan.filesTotal, bytesTotal: scan.bytesTotal, entriesTotal: scan.list.total };
  d.main.postMessage(totals);
  if (last) post(last, false);
  post(undefined, true);
  d.reader.close();
  d.main.close();
  return totals;
}
