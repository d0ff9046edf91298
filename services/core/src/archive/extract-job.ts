/**
 * The extract job, run in a worker thread: receives decompressed tar blocks, writes them through
 * the Extractor, and acknowledges each block to the main thread (its backpressure). Blocks come
 * from the main thread, or from the hash-ahead worker when they hold content it hashes (it sends
 * them on itself, with the digests, so they do not go back through the main thread). Every
 * message carries its place in the sequence the main thread gave it, and they are taken in that order.
 */
import type { MessagePort } from 'node:worker_threads';
import type { ArchiveWarning } from './archive-types.ts';
import { Extractor } from './extractor.ts';
import { loadNativeReads } from './native-reads.ts';
import { decodePlan, type WirePlan } from './plan-wire.ts';
import { createTimeSetter } from './time-setter.ts';

export interface ExtractJobData {
  roots: Record<string, string>;
  strict: boolean;
  knownVolumes: string[];
  restoreOwnership: boolean;
  /** Absolute path of the native helper (native-reads.ts), when it is built and enabled: exact mtimes, small files in one call. */
  native: string | undefined;
  /** To and from the main thread: its blocks and the end in, acks out. */
  port: MessagePort;
  /** From the hash-ahead worker: the blocks it hashed, in, once it is started. */
  ahead: MessagePort;
  /** The unpack's shared slab (shared-slab.ts), which blocks without a `buf` are in. */
  slab?: SharedArrayBuffer;
}

/** A decoded block at tar offset `at`, `seq`-th of the messages. */
export interface ExtractBlock {
  t: 'block';
  seq: number;
  /** The block's own buffer (transferred), or none: it is at `offset` in the unpack's shared slab. */
  buf?: ArrayBuffer;
  offset: number;
  length: number;
  at: number;
  /** The entries whose headers start in this block (sent with it, so memory stays flat), encoded (plan-wire.ts). */
  plan: WirePlan;
  /** Parsing (re)starts at this block, up to tar offset `limit` (a run of blocks, unpack-plan.ts). */
  run?: { start: number; limit: number };
  /** [header offset, sha256] of the files hashed ahead whose last byte is in this block. */
  digests?: [number, string][];
}

export type ExtractMessage = ExtractBlock | { t: 'end'; seq: number };

export interface ExtractAck {
  t: 'ack';
  filesWritten: number;
  bytesWritten: number;
  /**
   * Block buffers handed back for reuse: this block's, and any held back before it. None while the
   * tar parser holds part of a record split between blocks (a header longer than a block): the
   * buffers holding it stay here until the record is whole.
   */
  bufs: ArrayBuffer[];
  /** The same for blocks in the shared slab: their slots' offsets. */
  slots: number[];
}

/** A block message's bytes: its own buffer, or its slot of the shared slab. */
export function blockBytes(m: ExtractBlock, slab: SharedArrayBuffer | undefined): Buffer {
  if (m.buf) return Buffer.from(m.buf, m.offset, m.length);
  if (!slab) throw new Error('a block in a shared slab, but no slab was given');
  return Buffer.from(slab, m.offset, m.length);
}

export interface ExtractJobResult {
  filesWritten: number;
  bytesWritten: number;
  warnings: ArchiveWarning[];
}

export function runExtractJob(d: ExtractJobData): Promise<ExtractJobResult> {
  return new Promise((resolve, reject) => {
    let ex: Extractor;
    try {
      const native = loadNativeReads(d.native);
      ex = new Extractor({
        roots: d.roots,
        strict: d.strict,
        knownVolumes: new Set(d.knownVolumes),
        restoreOwnership: d.restoreOwnership,
        times: createTimeSetter(native),
        native,
      });
    } catch (err) {
      d.port.close();
      d.ahead.close();
      reject(err);
      return;
    }
    let stopped = false;
    const close = (): void => {
      stopped = true;
      d.port.close();
      d.ahead.close();
    };
    const stop = (err: unknown): void => {
      close();
      ex.abort();
      reject(err);
    };
    const held: ArrayBuffer[] = [];
    const heldSlots: number[] = [];
    const handle = (m: ExtractMessage): void => {
      if (m.t === 'block') {
        if (m.run) ex.startRun(m.run.start, m.run.limit);
        ex.addPlan(decodePlan(m.plan));
        if (m.digests) ex.addDigests(m.digests);
        ex.push(blockBytes(m, d.slab), m.at);
        if (m.buf) held.push(m.buf);
        else heldSlots.push(m.offset);
        const bufs = ex.holding ? [] : held.splice(0);
        const slots = ex.holding ? [] : heldSlots.splice(0);
        d.port.postMessage({ t: 'ack', ...ex.stats, bufs, slots } satisfies ExtractAck, bufs);
      } else {
        close();
        resolve(ex.finish());
      }
    };
    // Messages that came before their turn: at most the blocks the main thread lets be unacknowledged.
    const early = new Map<number, ExtractMessage>();
    let next = 0;
    const take = (m: ExtractMessage): void => {
      if (stopped) return;
      early.set(m.seq, m);
      try {
        for (let x = early.get(next); x && !stopped; x = early.get(next)) {
          early.delete(next++);
          handle(x);
        }
      } catch (err) {
        stop(err);
      }
    };
    d.port.on('message', take);
    d.ahead.on('message', take);
  });
}
