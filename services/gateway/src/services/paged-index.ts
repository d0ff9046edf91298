import type { Readable } from 'node:stream';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { CairnError } from '@cairn/core';
import { readIndex, type ArchiveEntry, type StreamedIndex } from '@cairn/core/archive/index.ts';
import { EntrySpill, readSpill, type SharedSpill } from '@cairn/core/archive/entry-spill.ts';

/** The smallest and largest path of one batch of entries. */
export interface PathRange {
  min: string;
  max: string;
}

/**
 * A backup's index read in pages (issue 17): its entries stay in an unlinked temporary file (core's
 * readIndex, a batch of a few hundred entries at a time), and memory holds only the smallest and
 * largest path of each batch. A look-up reads just the batches whose range can hold an answer; the
 * archive order is nearly path order, so a page of a listing reads a batch or two, whatever the
 * size of the index. Every batch read gives the event loop a turn, so a big index never stalls the
 * requests around it.
 */
export class PagedIndex {
  /** Batches read from the spill file by look-ups so far (what a page costs). */
  batchesRead = 0;

  private constructor(
    /** The index with its entries on disk: what the exports take. */
    readonly index: StreamedIndex,
    private readonly spill: SharedSpill,
    readonly ranges: readonly PathRange[],
  ) {}

  /** Reads an index object (gzipped JSON lines, or a plain JSON document) a batch at a time. */
  static async read(src: Readable): Promise<PagedIndex> {
    const index = await readIndex(src);
    try {
      if (!(index.entries instanceof EntrySpill)) throw new CairnError('internal', 'the index entries are not in a spill file');
      const spill = index.entries.share();
      const ranges: PathRange[] = [];
      let n = 0;
      for (const batch of index.entries.batches()) {
        ranges.push(rangeOf(batch));
        if (++n % 8 === 0) await yieldToLoop();
      }
      return new PagedIndex(index, spill, ranges);
    } catch (err) {
      index.entries.close();
      throw err;
    }
  }

  /** Entries in archive order, skipping every batch for which `skip(range)` holds. */
  async *scan(skip: (range: PathRange) => boolean): AsyncGenerator<ArchiveEntry> {
    for (let i = 0; i < this.ranges.length; i++) {
      if (skip(this.ranges[i]!)) continue;
      this.batchesRead++;
      for (const batch of readSpill({ fd: this.spill.fd, chunks: [this.spill.chunks[i]!] })) yield* batch;
      await yieldToLoop();
    }
  }

  /** The path is an entry, or a directory some entry lies below. */
  async contains(path: string): Promise<boolean> {
    const below = `${path}/`;
    const skip = (r: PathRange) => r.max < path || (r.min !== path && beyond(r.min, below));
    for await (const e of this.scan(skip)) if (e.path === path || e.path.startsWith(below)) return true;
    return false;
  }

  /**
   * One page of a listing in path order: the entries `matches` accepts with a path after `cursor`,
   * at most `take`, found while holding no more than `take` of them.
   */
  async page(take: number, options: { prefix: string; cursor?: string; matches: (path: string) => boolean }): Promise<ArchiveEntry[]> {
    const { prefix, cursor, matches } = options;
    const below = prefix === '' ? '' : `${prefix}/`;
    const kept = new SmallestPaths(take);
    const skip = (r: PathRange) =>
      (cursor !== undefined && r.max <= cursor) ||
      (prefix !== '' && (r.max < prefix || (r.min !== prefix && beyond(r.min, below)))) ||
      (kept.full && r.min >= kept.largest!);
    for await (const e of this.scan(skip)) {
      if ((cursor === undefined || e.path > cursor) && matches(e.path)) kept.offer(e);
    }
    return kept.sorted();
  }

  close(): void {
    this.index.entries.close();
  }
}

/** Past every path that starts with `below` (`a/b/` ends before `a/b0` and `a/c`). */
function beyond(path: string, below: string): boolean {
  return path > below && !path.startsWith(below);
}

function rangeOf(batch: readonly ArchiveEntry[]): PathRange {
  let min = batch[0]?.path ?? '';
  let max = min;
  for (const e of batch) {
    if (e.path < min) min = e.path;
    if (e.path > max) max = e.path;
  }
  return { min, max };
}

/** The `size` entries with the smallest paths offered so far, kept sorted. */
class SmallestPaths {
  private readonly items: ArchiveEntry[] = [];

  constructor(private readonly size: number) {}

  get full(): boolean {
    return this.items.length >= this.size;
  }

  get largest(): string | undefined {
    return this.items.at(-1)?.path;
  }

  offer(e: ArchiveEntry): void {
    if (this.full && e.path >= this.largest!) return;
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.items[mid]!.path < e.path) lo = mid + 1;
      else hi = mid;
    }
    this.items.splice(lo, 0, e);
    if (this.items.length > this.size) this.items.pop();
  }

  sorted(): ArchiveEntry[] {
    return this.items;
  }
}
