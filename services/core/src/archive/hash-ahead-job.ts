/**
 * The hash-ahead job, run in a worker thread of its own during an unpack: the sha256 of the files
 * whose content spans blocks (large files), from the decoded blocks in order, on their way from
 * the main thread to the extract worker. The extract worker, which writes them, then only compares
 * (extractor.ts, PlannedEntry.hashedAhead): hashing was half of its work, and on the main thread
 * it made that thread the busiest one instead (under load each thread gets about the same share
 * of the cores, so the busiest thread of the pipeline sets its pace). Each block goes on from here
 * to the extract worker with the digests of the files it ends: a trip back through the main
 * thread cost that thread as much as its own hashing of the stored bytes.
 */
import { createHash, type Hash } from 'node:crypto';
import type { MessagePort } from 'node:worker_threads';
import { blockBytes, type ExtractBlock } from './extract-job.ts';

/** A file to hash: its content is `size` bytes at tar offset `dataOffset`. */
export interface HashAheadFile {
  headerOffset: number;
  dataOffset: number;
  size: number;
}

export type HashAheadMessage =
  /** A block for the extract worker, with the files to hash whose headers it holds. */
  { t: 'block'; block: ExtractBlock; files: HashAheadFile[] } | { t: 'end' };

/** The hashes of the files being hashed: blocks are fed in tar order. */
export class SpanningHashes {
  private readonly active: { headerOffset: number; hash: Hash; pos: number; end: number }[] = [];

  feed(files: readonly HashAheadFile[], at: number, data: Buffer): [number, string][] {
    for (const f of files) this.active.push({ headerOffset: f.headerOffset, hash: createHash('sha256'), pos: f.dataOffset, end: f.dataOffset + f.size });
    const done: [number, string][] = [];
    const end = at + data.length;
    for (let i = 0; i < this.active.length; ) {
      const a = this.active[i]!;
      const to = Math.min(a.end, end);
      if (to > a.pos && a.pos >= at) {
        a.hash.update(data.subarray(a.pos - at, to - at));
        a.pos = to;
      }
      if (a.pos === a.end) {
        done.push([a.headerOffset, a.hash.digest('hex')]);
        this.active.splice(i, 1);
      } else i++;
    }
    return done;
  }
}

/** `port`: blocks from the main thread; `extractor`: where they go on to, with their digests; `slab`: the unpack's shared slab. */
export function runHashAheadJob(d: { port: MessagePort; extractor: MessagePort; slab?: SharedArrayBuffer }): Promise<void> {
  return new Promise((resolve) => {
    const hashes = new SpanningHashes();
    d.port.on('message', (m: HashAheadMessage) => {
      if (m.t === 'end') {
        // The extractor port stays open: the extract worker closes it once it took the last block.
        d.port.close();
        resolve();
        return;
      }
      const b = m.block;
      const digests = hashes.feed(m.files, b.at, blockBytes(b, d.slab));
      if (digests.length) b.digests = digests;
      d.extractor.postMessage(b, b.buf ? [b.buf] : []);
    });
  });
}
