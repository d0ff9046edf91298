/**
 * The index entries of a pack, kept out of memory: the reader thread sends them per block as
 * zstd-compressed JSON arrays, and they are appended to an anonymous temporary file (created and
 * unlinked at once, so nothing is left behind whatever happens to the process). A pack of a
 * million files then holds a few hundred bytes per block, not ~300 bytes per entry.
 */
import { randomUUID } from 'node:crypto';
import { closeSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CairnError } from '../errors.ts';
import type { ArchiveEntry } from './archive-types.ts';
import { compressBlock, decompressBlock } from './block-codec.ts';

export interface SpillChunk {
  pos: number;
  length: number;
  /** Length of the JSON text the frame decodes to. */
  rawLength: number;
  /** Entries in the batch, when the writer said. */
  count?: number;
}

// A spill dropped without close() still gives its descriptor back.
const closeOnCollect = new FinalizationRegistry<number>((fd) => {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
});

export class EntrySpill {
  private fd: number;
  private pos = 0;
  private readonly chunks: SpillChunk[] = [];
  private closed = false;

  constructor(dir = tmpdir()) {
    const path = join(dir, `cairn-index-${process.pid}-${randomUUID()}.tmp`);
    try {
      this.fd = openSync(path, 'wx+', 0o600);
    } catch (err) {
      throw new CairnError('internal', `cannot create a temporary file for the index in ${dir} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, {
        cause: err,
      });
    }
    unlinkSync(path);
    closeOnCollect.register(this, this.fd, this);
  }

  /** Appends one frame (a zstd-compressed JSON array of entries). */
  append(frame: Uint8Array, rawLength: number, count?: number): void {
    this.check();
    for (let done = 0; done < frame.length; ) done += writeSync(this.fd, frame, done, frame.length - done, this.pos + done);
    this.chunks.push(count === undefined ? { pos: this.pos, length: frame.length, rawLength } : { pos: this.pos, length: frame.length, rawLength, count });
    this.pos += frame.length;
  }

  /** Appends a JSON array of entries, compressing it here (the pack's reader sends frames ready-made). */
  appendJson(json: Buffer): void {
    this.append(compressBlock('zstd', 1, json), json.length);
  }

  /** The entries in archive order, one block's worth at a time. */
  *batches(): Generator<ArchiveEntry[]> {
    this.check();
    yield* readSpill(this.share(), () => this.check());
  }

  /** Each batch as the JSON array it was appended as (a buffer of its own), with its entry count when known. */
  *arrays(): Generator<{ json: Buffer; count: number | undefined }> {
    this.check();
    const shared = this.share();
    let i = 0;
    for (const json of spillJson(shared, () => this.check())) yield { json, count: shared.chunks[i++]!.count };
  }

  /**
   * The file's descriptor and layout, for reading the entries from a worker thread (threads share
   * the process's descriptors). Valid until close().
   */
  share(): SharedSpill {
    this.check();
    return { fd: this.fd, chunks: [...this.chunks] };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeOnCollect.unregister(this);
    closeSync(this.fd);
  }

  private check(): void {
    if (this.closed) throw new CairnError('internal', "the pack's index entries were released (close() was called)");
  }
}

/** A spill file as another thread reads it (EntrySpill.share). */
export interface SharedSpill {
  fd: number;
  chunks: SpillChunk[];
}

/** The entries of a shared spill file in archive order, a batch at a time. */
export function* readSpill(spill: SharedSpill, check: () => void = () => undefined): Generator<ArchiveEntry[]> {
  for (const json of spillJson(spill, check)) {
    let batch: unknown;
    try {
      batch = JSON.parse(json.toString('utf8'));
    } catch (err) {
      throw new CairnError('archive-corrupt', `index entries do not decode: ${(err as Error).message}`, { cause: err });
    }
    if (!Array.isArray(batch)) throw new CairnError('archive-corrupt', 'index entries do not decode: not a list');
    yield batch as ArchiveEntry[];
  }
}

/** Each batch's JSON array, as appended (each in a buffer of its own). */
export function* spillJson(spill: SharedSpill, check: () => void = () => undefined): Generator<Buffer> {
  let buf = Buffer.alloc(0);
  for (const c of spill.chunks) {
    check();
    if (buf.length < c.length) buf = Buffer.allocUnsafe(c.length * 2);
    for (let done = 0; done < c.length; ) {
      const n = readSync(spill.fd, buf, done, c.length - done, c.pos + done);
      if (n === 0) throw new CairnError('internal', 'index spill file is shorter than written');
      done += n;
    }
    try {
      yield decompressBlock('zstd', buf.subarray(0, c.length), c.rawLength);
    } catch (err) {
      throw new CairnError('archive-corrupt', `index entries do not decode: ${(err as Error).message}`, { cause: err });
    }
  }
}
