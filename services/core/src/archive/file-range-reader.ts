/**
 * Range reads of an archive in a local file (tools, benches, restores from a downloaded archive):
 * as a RangeReader, and as the recipe the store thread makes the same reads from.
 */
import { createReadStream } from 'node:fs';
import { CairnError } from '../errors.ts';
import type { RangeReader, UnpackSource } from './archive-types.ts';

/** Reads of stored bytes [start, end] of the archive file at `path` (it has no other objects). */
export function fileRangeReader(path: string): RangeReader {
  return async (start, end, object) => {
    if (object !== undefined) throw new CairnError('validation', `the archive at ${path} reads blocks of backup ${object}: only its own file is here`);
    return createReadStream(path, { start, end, highWaterMark: 1 << 20 });
  };
}

/** An unpack source for the archive file at `path`, read by the store thread. */
export function fileSource(path: string): UnpackSource {
  return { rangeReader: fileRangeReader(path), thread: { recipe: { kind: 'file', path } } };
}
