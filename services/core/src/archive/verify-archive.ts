/**
 * Verification of a stored archive without writing anything (issue 14, verify / scrub): frames are
 * read back through a range reader, decoded in memory and the tar they hold parsed on the fly.
 *
 * - verifyFiles ("sample"): the chosen files only, through exportPathsAsTar — only the frames that
 *   hold them are read; each frame is checked on decode (zstd checksum, gzip CRC, sha256 of a
 *   stored `none` frame, the seal of an encrypted one) and each file against its sha256.
 * - verifyAllFrames ("full"): every frame of the block table, wherever it is stored, in order;
 *   every frame decoded and checked, the whole tar parsed (every entry where the index says, every
 *   file's sha256, the end-of-archive marker) and the sha256 and length of the archive's own
 *   object's bytes computed as they pass (its own frames tile it from offset 0, in block order).
 *
 * Both name what was wrong: the block (and the object holding it) or the file.
 */
import { createHash, type Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { abortError, CairnError } from '../errors.ts';
import { checkIndex } from './archive-index.ts';
import type { ArchiveEntry, ArchiveIndex, FrameOpener, RangeReader } from './archive-types.ts';
import { decompressBlock } from './block-codec.ts';
import { blockError, describeBlock, RangeReadAhead, rangeFrames, segmentsOf } from './block-source.ts';
import { exportPathsAsTar } from './export-tar.ts';
import { bytesToPath } from './path-bytes.ts';
import { TarParser, type ParsedEntry } from './tar-parser.ts';

export interface VerifyArchiveOptions {
  /** Required for an encrypted archive (index `encryption`). */
  open?: FrameOpener;
  signal?: AbortSignal;
  /** Called as frames (full) or files (sample) are checked. */
  onProgress?: (p: { bytesDone: number; bytesTotal: number; filesDone: number; filesTotal: number }) => void;
}

export interface VerifyFilesResult {
  filesChecked: number;
  /** Stored bytes read. */
  bytesRead: number;
}

export interface VerifyAllResult {
  blocksChecked: number;
  filesChecked: number;
  /** Stored bytes read (every frame, whichever object holds it). */
  bytesRead: number;
  /** sha256 and length of the archive's own frames, in order: its own object from offset 0. */
  ownSha256: string;
  ownBytes: number;
}

/** A range reader that counts the bytes its streams deliver. */
export function countingReader(reader: RangeReader, count: (n: number) => void): RangeReader {
  return async (start, end, object) => {
    const stream = await (object === undefined ? reader(start, end) : reader(start, end, object));
    stream.on('data', (chunk: Buffer | string) => count(chunk.length));
    return stream;
  };
}

/**
 * `percent` % of the regular files of an index (at least one when there is any, all at 100),
 * chosen at random (`random` in [0, 1), Math.random by default), in archive order.
 */
export function sampleFiles(index: Pick<ArchiveIndex, 'entries'>, percent: number, random: () => number = Math.random): ArchiveEntry[] {
  const files = index.entries.filter((e) => e.type === 'file');
  if (files.length === 0 || percent <= 0) return [];
  const want = Math.min(files.length, Math.max(1, Math.ceil((files.length * Math.min(percent, 100)) / 100)));
  // Partial Fisher–Yates: the first `want` of a random permutation.
  const pool = [...files];
  for (let i = 0; i < want; i++) {
    const j = i + Math.floor(random() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, want).sort((a, b) => a.headerOffset - b.headerOffset);
}

/** Reads the chosen files back through only the frames holding them, checking frames and hashes. */
export async function verifyFiles(
  index: ArchiveIndex,
  reader: RangeReader,
  files: readonly ArchiveEntry[],
  options: VerifyArchiveOptions = {},
): Promise<VerifyFilesResult> {
  let bytesRead = 0;
  const counted = countingReader(reader, (n) => {
    bytesRead += n;
  });
  if (files.length === 0) return { filesChecked: 0, bytesRead };
  const total = files.reduce((a, e) => a + e.size, 0);
  const stream = exportPathsAsTar(
    index,
    counted,
    files.map((e) => e.path),
    { signal: options.signal, open: options.open },
  );
  let done = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    done += chunk.length;
    options.onProgress?.({ bytesDone: Math.min(done, total), bytesTotal: total, filesDone: 0, filesTotal: files.length });
  }
  return { filesChecked: files.length, bytesRead };
}

/** Reads and checks every frame of the archive and every entry of its tar (see the module comment). */
export async function verifyAllFrames(index: ArchiveIndex, reader: RangeReader, options: VerifyArchiveOptions = {}): Promise<VerifyAllResult> {
  checkIndex(index);
  if (index.encryption && !options.open) throw new CairnError('config', 'the archive is encrypted: verifying it needs its data keys');
  const { signal } = options;
  if (signal?.aborted) throw abortError(signal);
  const blocks = index.blocks;
  let bytesRead = 0;
  const counted = countingReader(reader, (n) => {
    bytesRead += n;
  });
  const reads = new RangeReadAhead(counted, blocks.length ? segmentsOf(blocks, 0, blocks.length - 1) : []);
  const onAbort = (): void => reads.destroy(abortError(signal!));
  signal?.addEventListener('abort', onAbort, { once: true });
  const own = createHash('sha256');
  let ownBytes = 0;
  let storedTotal = 0;
  for (const b of blocks) storedTotal += b.compressedLength;
  const tar = new TarCheck(index.entries);
  let blocksChecked = 0;
  let storedDone = 0;
  try {
    for await (const f of rangeFrames(reads, blocks)) {
      if (signal?.aborted) throw abortError(signal);
      const b = blocks[f.block]!;
      const stored = f.data!;
      if (b.object === undefined) {
        own.update(stored);
        ownBytes += stored.length;
      }
      if (b.sha256 && createHash('sha256').update(stored).digest('hex') !== b.sha256)
        throw new CairnError('checksum-mismatch', `${describeBlock(blocks, f.block)} does not match its sha256`);
      let data: Buffer;
      try {
        data = decompressBlock(index.codec, options.open ? options.open(b, stored) : stored, b.uncompressedLength);
      } catch (err) {
        throw blockError(err, blocks, f.block);
      }
      try {
        tar.push(data, b.uncompressedOffset);
      } catch (err) {
        throw blockError(err, blocks, f.block);
      }
      blocksChecked++;
      storedDone += b.compressedLength;
      options.onProgress?.({ bytesDone: storedDone, bytesTotal: storedTotal, filesDone: tar.filesChecked, filesTotal: tar.files });
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    reads.close();
  }
  if (blocksChecked !== blocks.length) throw new CairnError('archive-corrupt', `read ${blocksChecked} of ${blocks.length} blocks`);
  tar.finish();
  return { blocksChecked, filesChecked: tar.filesChecked, bytesRead, ownSha256: own.digest('hex'), ownBytes };
}

/** Parses the whole tar and checks it against the index: every entry where it is listed, every file's sha256, the end marker. */
class TarCheck {
  private readonly parser: TarParser;
  private readonly expected = new Map<string, ArchiveEntry>();
  private readonly seen = new Set<string>();
  private hash: Hash | undefined;
  private current: ArchiveEntry | undefined;
  readonly files: number;
  filesChecked = 0;

  constructor(entries: readonly ArchiveEntry[]) {
    let files = 0;
    for (const e of entries) {
      this.expected.set(e.path, e);
      if (e.type === 'file') files++;
    }
    this.files = files;
    this.parser = new TarParser({
      entry: (e: ParsedEntry) => {
        const path = bytesToPath(e.path);
        const want = this.expected.get(path);
        if (!want || want.type !== e.type || this.seen.has(path))
          throw new CairnError('archive-corrupt', `archive entry ${path} at tar offset ${e.headerOffset} does not match the index`);
        if (want.headerOffset !== e.headerOffset || want.dataOffset !== e.dataOffset)
          throw new CairnError('archive-corrupt', `archive entry ${path} is at tar offset ${e.headerOffset}, the index says ${want.headerOffset}`);
        this.seen.add(path);
        this.current = want;
        this.hash = want.type === 'file' ? createHash('sha256') : undefined;
      },
      data: (chunk) => this.hash?.update(chunk),
      entryEnd: () => {
        const want = this.current!;
        if (this.hash && want.sha256 && this.hash.digest('hex') !== want.sha256)
          throw new CairnError('checksum-mismatch', `content of ${want.path} does not match its sha256`);
        if (want.type === 'file') this.filesChecked++;
        this.current = undefined;
        this.hash = undefined;
      },
    });
  }

  push(data: Buffer, offset: number): void {
    this.parser.push(data, offset);
  }

  finish(): void {
    this.parser.finish();
    if (!this.parser.ended) throw new CairnError('archive-corrupt', 'the archive has no end-of-archive marker');
    if (this.seen.size !== this.expected.size) {
      const missing = [...this.expected.keys()].find((p) => !this.seen.has(p));
      throw new CairnError('archive-corrupt', `entry ${missing} of the index is not in the archive (${this.seen.size} of ${this.expected.size} found)`);
    }
  }
}

/** Consumes a readable to its end (a range read of bytes no frame holds, hashed by the caller). */
export async function drain(stream: Readable, onChunk: (chunk: Buffer) => void): Promise<void> {
  for await (const raw of stream) onChunk(typeof raw === 'string' ? Buffer.from(raw) : (raw as Buffer));
}
