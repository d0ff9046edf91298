/**
 * Cuts stored archive bytes into the frames of the block table, from one stream that covers
 * blocks [first..last]. Blocks nobody needs are skipped without copying (but still hashed when
 * the whole archive's sha256 is being checked).
 */
import type { Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { CairnError } from '../errors.ts';
import type { ArchiveBlock } from './archive-types.ts';

export interface Frame {
  block: number;
  /** The stored bytes of the block (an ArrayBuffer of its own), or undefined when not needed. */
  data: Buffer | undefined;
}

export async function* cutFrames(
  stream: Readable,
  blocks: readonly ArchiveBlock[],
  first: number,
  last: number,
  needed: (block: number) => boolean,
  hash?: Hash,
  /** Buffer for a frame of `len` bytes; it must own its ArrayBuffer (it is transferred). */
  alloc: (len: number) => Buffer = (len) => Buffer.allocUnsafeSlow(len),
): AsyncGenerator<Frame> {
  let i = first;
  let filled = 0;
  let cur: Buffer | undefined;
  let want = i <= last ? needed(i) : false;
  for await (const raw of stream) {
    const chunk = typeof raw === 'string' ? Buffer.from(raw) : (raw as Buffer);
    hash?.update(chunk);
    let pos = 0;
    while (pos < chunk.length) {
      if (i > last) throw new CairnError('archive-corrupt', 'the archive holds more bytes than its index describes');
      const b = blocks[i]!;
      const take = Math.min(b.compressedLength - filled, chunk.length - pos);
      if (want) {
        cur ??= alloc(b.compressedLength);
        chunk.copy(cur, filled, pos, pos + take);
      }
      filled += take;
      pos += take;
      if (filled === b.compressedLength) {
        yield { block: i, data: cur };
        cur = undefined;
        filled = 0;
        i++;
        want = i <= last ? needed(i) : false;
      }
    }
  }
  if (i <= last) throw new CairnError('archive-corrupt', `the archive ends inside block ${i} of ${blocks.length}`);
}
