/**
 * Downloads built from range reads, never recompressed:
 *
 * - exportPathsAsTar: a plain (uncompressed) tar of chosen entries, built from only the blocks
 *   that hold them ("download one path"). Entries are copied byte for byte from the archive —
 *   their PAX headers included — so names, times and modes are exactly as stored; each block is
 *   verified on decode and each file's content against its sha256 on the way out.
 * - exportArchive: the complete stored archive (`.tar.zst` / `.tar.gz` / `.tar`) of a backup
 *   whose frames live in several objects (format 2): the frames in block order, as stored.
 *
 * Both read a few ranges ahead (RangeReadAhead), so reads from several objects overlap.
 */
import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { abortError, CairnError } from '../errors.ts';
import { checkEntry, checkIndexHead, entryEnd, planRuns, selectEntries } from './archive-index.ts';
import type { FrameOpener, ArchiveEntry, ArchiveIndex, ArchiveIndexHead, RangeReader, StreamedIndex } from './archive-types.ts';
import { decompressBlock } from './block-codec.ts';
import { blockError, describeBlock, RangeReadAhead, rangeFrames, segmentError, segmentsOf, type Segment } from './block-source.ts';
import { bytesToPath } from './path-bytes.ts';
import { RECORD } from './tar-header.ts';
import { TarParser, type ParsedEntry } from './tar-parser.ts';

interface ExportOptions {
  signal?: AbortSignal;
  /** Required for an encrypted archive: opens each frame (the key of the object holding it). */
  open?: FrameOpener;
}

function needOpener(index: ArchiveIndexHead, open: FrameOpener | undefined): void {
  if (index.encryption && !open) throw new CairnError('config', 'the archive is encrypted: reading it needs its data keys');
}

/** Entries written by an export of `paths` (hard-link targets brought along, archive order). */
function exportEntries(index: ArchiveIndex | StreamedIndex, paths: readonly string[]): ArchiveEntry[] {
  const { selected, sources } = selectEntries(index, paths);
  return [...selected, ...sources].sort((a, b) => a.headerOffset - b.headerOffset);
}

/**
 * `index` may keep its entries on disk (readIndex): the entries to export are taken from it before
 * this returns, and each is checked against the block table as checkIndex would.
 */
export function exportPathsAsTar(
  index: ArchiveIndex | StreamedIndex,
  rangeReader: RangeReader,
  paths: readonly string[],
  options: ExportOptions = {},
): Readable {
  const tarEnd = checkIndexHead(index);
  needOpener(index, options.open);
  const entries = exportEntries(index, paths);
  for (const e of entries) checkEntry(e, tarEnd);
  const segments = (function* () {
    for (const run of planRuns(index, entries)) yield* segmentsOf(index.blocks, run.firstBlock, run.lastBlock);
  })();
  const reads = new RangeReadAhead(rangeReader, segments);
  return generatorStream(generate(index, reads, entries, options.open), reads, options.signal);
}

async function* generate(index: ArchiveIndexHead, reads: RangeReadAhead, entries: ArchiveEntry[], open: FrameOpener | undefined): AsyncGenerator<Buffer> {
  const verifier = new ExportVerifier(entries);
  const emit = (chunk: Buffer): Buffer => {
    verifier.push(chunk);
    return chunk;
  };
  let next = 0;
  for await (const f of rangeFrames(reads, index.blocks)) {
    const b = index.blocks[f.block]!;
    if (b.sha256 && createHash('sha256').update(f.data!).digest('hex') !== b.sha256) {
      throw new CairnError('checksum-mismatch', `${describeBlock(index.blocks, f.block)} does not match its sha256`);
    }
    let data: Buffer;
    const stored = open ? open(b, f.data!) : f.data!;
    try {
      data = decompressBlock(index.codec, stored, b.uncompressedLength);
    } catch (err) {
      throw blockError(err, index.blocks, f.block);
    }
    const start = b.uncompressedOffset;
    const end = start + data.length;
    // Copy the part of every selected entry that lies in this block.
    for (let i = next; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.headerOffset >= end) break;
      const from = Math.max(e.headerOffset, start);
      const to = Math.min(entryEnd(e), end);
      if (to > from) yield emit(Buffer.from(data.subarray(from - start, to - start)));
      if (entryEnd(e) <= end) next = i + 1;
    }
  }
  if (next < entries.length) throw new CairnError('archive-corrupt', `entry ${entries[next]!.path} was not found in its blocks`);
  yield emit(Buffer.alloc(2 * RECORD));
  verifier.finish();
}

/**
 * The complete stored archive: every frame in block order, wherever it is stored, as stored
 * (archiveLength(index) bytes). Contiguous frames of one object are one range read. A stored
 * block's sha256 (codec `none`) is checked as it passes; zstd and gzip frames pass unopened (the
 * client's decoder checks their checksums).
 */
export function exportArchive(index: ArchiveIndexHead, rangeReader: RangeReader, options: ExportOptions = {}): Readable {
  checkIndexHead(index);
  needOpener(index, options.open);
  const reads = new RangeReadAhead(rangeReader, segmentsOf(index.blocks, 0, index.blocks.length - 1));
  return generatorStream(options.open ? openedFrames(index, reads, options.open) : storedFrames(index, reads), reads, options.signal);
}

/** An encrypted archive's frames, each opened (authenticated): the plain `.tar.zst` a client reads. */
async function* openedFrames(index: ArchiveIndexHead, reads: RangeReadAhead, open: FrameOpener): AsyncGenerator<Buffer> {
  try {
    for await (const f of rangeFrames(reads, index.blocks)) yield open(index.blocks[f.block]!, f.data!);
  } finally {
    reads.close();
  }
}

async function* storedFrames(index: ArchiveIndexHead, reads: RangeReadAhead): AsyncGenerator<Buffer> {
  try {
    for (let r = await reads.next(); r; r = await reads.next()) {
      const check = new SegmentCheck(index, r.segment);
      try {
        for await (const raw of r.stream) {
          const chunk = typeof raw === 'string' ? Buffer.from(raw) : (raw as Buffer);
          check.update(chunk);
          yield chunk;
        }
        check.end();
      } catch (err) {
        throw segmentError(err, r.segment);
      }
    }
  } finally {
    reads.close();
  }
}

/** Follows the blocks of one segment through its bytes: their count, and the sha256 of those that have one. */
class SegmentCheck {
  private block: number;
  private filled = 0;
  private hash: Hash | undefined;

  constructor(
    private readonly index: ArchiveIndexHead,
    private readonly segment: Segment,
  ) {
    this.block = segment.firstBlock;
    this.startBlock();
  }

  update(chunk: Buffer): void {
    const blocks = this.index.blocks;
    let pos = 0;
    while (pos < chunk.length) {
      if (this.block > this.segment.lastBlock) throw new CairnError('archive-corrupt', 'the range read returned more bytes than were asked for');
      const b = blocks[this.block]!;
      const take = Math.min(b.compressedLength - this.filled, chunk.length - pos);
      this.hash?.update(chunk.subarray(pos, pos + take));
      this.filled += take;
      pos += take;
      if (this.filled === b.compressedLength) {
        if (this.hash && this.hash.digest('hex') !== b.sha256)
          throw new CairnError('checksum-mismatch', `${describeBlock(blocks, this.block)} does not match its sha256`);
        this.block++;
        this.filled = 0;
        this.startBlock();
      }
    }
  }

  end(): void {
    if (this.block <= this.segment.lastBlock)
      throw new CairnError('archive-corrupt', `the archive ends inside block ${this.block} of ${this.index.blocks.length}`);
  }

  private startBlock(): void {
    this.hash = this.index.blocks[this.block]?.sha256 !== undefined && this.block <= this.segment.lastBlock ? createHash('sha256') : undefined;
  }
}

/**
 * A Readable over a generator whose destroy (the client gone) or the signal's abort stops the
 * range reads at once — Readable.from would wait for the generator's pending read first, which a
 * stalled source never ends.
 */
function generatorStream(gen: AsyncGenerator<Buffer>, reads: RangeReadAhead, signal?: AbortSignal): Readable {
  let pumping = false;
  const onAbort = (): void => void out.destroy(abortError(signal!));
  const out = new Readable({
    read() {
      if (pumping) return;
      pumping = true;
      void (async () => {
        try {
          for (;;) {
            const n = await gen.next();
            if (out.destroyed) return;
            if (n.done) {
              out.push(null);
              return;
            }
            if (!out.push(n.value)) break;
          }
          pumping = false;
        } catch (err) {
          out.destroy(err instanceof Error ? err : new Error(String(err)));
        }
      })();
    },
    destroy(err, cb) {
      signal?.removeEventListener('abort', onAbort);
      reads.destroy(err ?? undefined);
      gen.return(undefined).catch(() => undefined);
      cb(err);
    },
  });
  if (signal?.aborted) out.destroy(abortError(signal));
  else signal?.addEventListener('abort', onAbort, { once: true });
  return out;
}

/** Parses the tar being sent and checks every entry against the index. */
class ExportVerifier {
  private readonly parser: TarParser;
  private readonly expected = new Map<string, ArchiveEntry>();
  private hash: Hash | undefined;
  private current: ArchiveEntry | undefined;
  private offset = 0;
  private count = 0;

  constructor(entries: ArchiveEntry[]) {
    for (const e of entries) this.expected.set(e.path, e);
    this.parser = new TarParser({
      entry: (e: ParsedEntry) => {
        const path = bytesToPath(e.path);
        const want = this.expected.get(path);
        if (!want || want.type !== e.type) throw new CairnError('archive-corrupt', `archive entry ${path} does not match the index`);
        this.current = want;
        this.hash = want.type === 'file' ? createHash('sha256') : undefined;
        this.count++;
      },
      data: (chunk) => this.hash?.update(chunk),
      entryEnd: () => {
        const want = this.current!;
        if (this.hash && want.sha256) {
          const sha = this.hash.digest('hex');
          if (sha !== want.sha256) throw new CairnError('checksum-mismatch', `content of ${want.path} does not match its sha256`);
        }
        this.current = undefined;
        this.hash = undefined;
      },
    });
  }

  push(chunk: Buffer): void {
    this.parser.push(chunk, this.offset);
    this.offset += chunk.length;
  }

  finish(): void {
    this.parser.finish();
    if (this.count !== this.expected.size) throw new CairnError('archive-corrupt', `export holds ${this.count} entries, expected ${this.expected.size}`);
  }
}
