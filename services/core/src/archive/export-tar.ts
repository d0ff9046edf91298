/**
 * exportPathsAsTar: a plain (uncompressed) tar of chosen entries, built from only the blocks
 * that hold them ("download one path"). Entries are copied byte for byte from the archive —
 * their PAX headers included — so names, times and modes are exactly as stored; each block is
 * verified on decode and each file's content against its sha256 on the way out.
 */
import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { CairnError } from '../errors.ts';
import { checkIndex, entryEnd, planRuns, selectEntries } from './archive-index.ts';
import type { ArchiveEntry, ArchiveIndex, RangeReader } from './archive-types.ts';
import { decompressBlock } from './block-codec.ts';
import { cutFrames } from './block-source.ts';
import { bytesToPath } from './path-bytes.ts';
import { RECORD } from './tar-header.ts';
import { TarParser, type ParsedEntry } from './tar-parser.ts';

interface ExportOptions {
  signal?: AbortSignal;
}

/** Entries written by an export of `paths` (hard-link targets brought along, archive order). */
function exportEntries(index: ArchiveIndex, paths: readonly string[]): ArchiveEntry[] {
  const { selected, sources } = selectEntries(index, paths);
  return [...selected, ...sources].sort((a, b) => a.headerOffset - b.headerOffset);
}

export function exportPathsAsTar(index: ArchiveIndex, rangeReader: RangeReader, paths: readonly string[], options: ExportOptions = {}): Readable {
  checkIndex(index);
  const entries = exportEntries(index, paths);
  return Readable.from(generate(index, rangeReader, entries, options.signal), { objectMode: false });
}

async function* generate(index: ArchiveIndex, rangeReader: RangeReader, entries: ArchiveEntry[], signal?: AbortSignal): AsyncGenerator<Buffer> {
  const verifier = new ExportVerifier(entries);
  const emit = (chunk: Buffer): Buffer => {
    verifier.push(chunk);
    return chunk;
  };
  let next = 0;
  for (const run of planRuns(index, entries)) {
    if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new CairnError('cancelled', 'cancelled');
    const b0 = index.blocks[run.firstBlock]!;
    const b1 = index.blocks[run.lastBlock]!;
    const stream = await rangeReader(b0.compressedOffset, b1.compressedOffset + b1.compressedLength - 1);
    for await (const f of cutFrames(stream, index.blocks, run.firstBlock, run.lastBlock, () => true)) {
      const b = index.blocks[f.block]!;
      if (b.sha256 && createHash('sha256').update(f.data!).digest('hex') !== b.sha256) {
        throw new CairnError('checksum-mismatch', `block ${f.block} does not match its sha256`);
      }
      const data = decompressBlock(index.codec, f.data!, b.uncompressedLength);
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
  }
  if (next < entries.length) throw new CairnError('archive-corrupt', `entry ${entries[next]!.path} was not found in its blocks`);
  yield emit(Buffer.alloc(2 * RECORD));
  verifier.finish();
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
