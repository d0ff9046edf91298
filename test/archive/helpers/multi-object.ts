/**
 * Format 2 archives spread over several objects, synthesized from a real archive: some blocks'
 * frames are moved into other "objects" (as an incremental backup reuses its parent's frames),
 * at other offsets, with junk bytes around them; the own object keeps the rest, contiguous.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ArchiveBlock, ArchiveIndex, RangeReader } from '@cairn/core/archive/index.ts';

export interface SplitArchive {
  /** The archive's own object. */
  own: Buffer;
  /** Object id -> its bytes. */
  objects: Map<string, Buffer>;
  index: ArchiveIndex;
}

/**
 * Moves block i to object `assign(i)` (undefined: stays in the own object). In each other object
 * the blocks are grouped into runs of consecutive blocks (stored contiguously, in order), and the
 * runs are stored in reverse order, each after a few junk bytes: offsets jump and go backwards.
 */
export function splitArchive(archive: Buffer, index: ArchiveIndex, assign: (block: number) => string | undefined): SplitArchive {
  const frame = (b: ArchiveBlock): Buffer => archive.subarray(b.compressedOffset, b.compressedOffset + b.compressedLength);
  const blocks: ArchiveBlock[] = index.blocks.map((b) => ({ ...b }));
  // The own object: the blocks that stay, back to back from offset 0.
  const ownParts: Buffer[] = [];
  let ownOffset = 0;
  // Per object: runs of consecutive block numbers.
  const runs = new Map<string, number[][]>();
  index.blocks.forEach((b, i) => {
    const object = assign(i);
    if (object === undefined) {
      blocks[i]!.compressedOffset = ownOffset;
      ownOffset += b.compressedLength;
      ownParts.push(frame(b));
      return;
    }
    blocks[i]!.object = object;
    const list = runs.get(object) ?? [];
    runs.set(object, list);
    const last = list[list.length - 1];
    if (last && last[last.length - 1] === i - 1) last.push(i);
    else list.push([i]);
  });
  const objects = new Map<string, Buffer>();
  for (const [object, list] of runs) {
    const parts: Buffer[] = [randomBytes(101)];
    let offset = 101;
    for (const run of [...list].reverse()) {
      const junk = randomBytes(17 + (run[0]! % 13));
      parts.push(junk);
      offset += junk.length;
      for (const i of run) {
        const b = index.blocks[i]!;
        blocks[i]!.compressedOffset = offset;
        parts.push(frame(b));
        offset += b.compressedLength;
      }
    }
    parts.push(randomBytes(59));
    objects.set(object, Buffer.concat(parts));
  }
  const own = Buffer.concat(ownParts);
  return {
    own,
    objects,
    index: {
      ...index,
      version: 2,
      objects: [...objects.keys()],
      sha256: createHash('sha256').update(own).digest('hex'),
      totals: { ...index.totals, storedBytes: own.length, reusedBytes: archive.length - own.length },
      blocks,
    },
  };
}

export interface ObjectReads {
  reader: RangeReader;
  /** Every range read: [start, end, object]. */
  calls: [number, number, string | undefined][];
  /** Range reads opened and not yet consumed to their end (or destroyed). */
  open: () => number;
  /** The most reads open at once. */
  maxOpen: () => number;
  /** Stored bytes served. */
  served: () => number;
}

/**
 * A range reader over in-memory objects (`undefined` key: the own object), served in small
 * chunks, optionally after a delay (a store's latency).
 */
export function objectReader(own: Buffer, objects: ReadonlyMap<string, Buffer>, opts: { delayMs?: number; chunk?: number } = {}): ObjectReads {
  const calls: [number, number, string | undefined][] = [];
  let open = 0;
  let maxOpen = 0;
  let served = 0;
  const chunk = opts.chunk ?? 7001;
  const reader: RangeReader = async (start, end, object) => {
    calls.push([start, end, object]);
    open++;
    maxOpen = Math.max(maxOpen, open);
    let closed = false;
    const done = (): void => {
      if (!closed) open--;
      closed = true;
    };
    try {
      if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
      const data = object === undefined ? own : objects.get(object);
      if (!data) throw Object.assign(new Error(`no object ${object}`), { code: 'ENOENT' });
      if (start < 0 || end >= data.length || end < start) throw new Error(`range ${start}-${end} outside object ${object ?? '(own)'} of ${data.length} bytes`);
      const bytes = data.subarray(start, end + 1);
      const s = Readable.from(
        (function* () {
          for (let p = 0; p < bytes.length; p += chunk) {
            const c = Buffer.from(bytes.subarray(p, p + chunk));
            served += c.length;
            yield c;
          }
        })(),
        { objectMode: false },
      );
      s.once('end', done);
      s.once('close', done);
      return s;
    } catch (err) {
      done();
      throw err;
    }
  };
  return { reader, calls, open: () => open, maxOpen: () => maxOpen, served: () => served };
}
