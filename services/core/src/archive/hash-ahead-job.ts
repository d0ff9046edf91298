/**
 * The hash-ahead job, run in a worker thread of its own during an unpack: the sha256 of the files
 * whose content spans blocks (large files), from the decoded blocks in order, on their way from
 * the main thread to the extract worker. The extract worker, which writes them, then only compares
 * (extractor.ts, PlannedEntry.hashedAhead): hashing was half of its work, and on the main thread
 * it made that thread the busiest one instead (under load each thread gets about the same share
 * of the cores, so the busiest thread of the pipeline sets its pace).
 */
import { createHash, type Hash } from 'node:crypto';
import type { MessagePort } from 'node:worker_threads';

/** A file to hash: its content is `size` bytes at tar offset `dataOffset`. */
export interface HashAheadFile {
  headerOffset: number;
  dataOffset: number;
  size: number;
}

export type HashAheadMessage =
  /** A decoded block at tar offset `at`, with the files to hash whose headers it holds. */
  { t: 'block'; buf: ArrayBuffer; offset: number; length: number; at: number; files: HashAheadFile[] } | { t: 'end' };

/** The block's buffer back, with [header offset, sha256] of the files whose last byte it holds. */
export interface HashAheadReply {
  buf: ArrayBuffer;
  digests: [number, string][];
}

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

export function runHashAheadJob(d: { port: MessagePort }): Promise<void> {
  return new Promise((resolve) => {
    const hashes = new SpanningHashes();
    d.port.on('message', (m: HashAheadMessage) => {
      if (m.t === 'end') {
        d.port.close();
        resolve();
        return;
      }
      const digests = hashes.feed(m.files, m.at, Buffer.from(m.buf, m.offset, m.length));
      d.port.postMessage({ buf: m.buf, digests } satisfies HashAheadReply, [m.buf]);
    });
  });
}
