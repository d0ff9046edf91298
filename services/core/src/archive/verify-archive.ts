/**
 * Verification of a stored archive without writing anything (issue 14, verify / scrub): frames are
 * read back through a range reader, decoded in memory and the tar they hold parsed on the fly.
 *
 * - verifyFiles ("sample"): the chosen files only, through exportPathsAsTar — only the frames that
 *   hold them are read; each frame is checked on decode (zstd checksum, gzip CRC, sha256 of a
 *   stored `none` frame, the seal of an encrypted one) and each file against its sha256.
 * - verifyAllFrames ("full"): every frame of the block table, wherever it is stored, in order;
 *   every frame decoded and checked on the codec workers, the whole tar parsed (every entry where the index says, every
 *   file's sha256, the end-of-archive marker) and the sha256 and length of the archive's own
 *   object's bytes computed as they pass (its own frames tile it from offset 0, in block order).
 *
 * Both name what was wrong: the block (and the object holding it) or the file.
 */
import { createHash, type Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { abortError, CairnError } from '../errors.ts';
import { checkEntry, checkIndexHead, eachEntry, entrySource, hasForeignBlocks } from './archive-index.ts';
import type {
  ArchiveEntry,
  ArchiveIndex,
  EntrySource,
  FrameOpener,
  RangeReader,
  RangeReaderRecipe,
  RangeReadSettings,
  StoreRequestError,
  StreamedIndex,
} from './archive-types.ts';
import { BlockDecoder, decodeRanges, Failure } from './block-decoder.ts';
import { blockError, segmentsOf, type Frame } from './block-source.ts';
import { CodecPool } from './codec-pool.ts';
import type { PlanItem } from './extractor.ts';
import { DEFAULT_RANGE_READS, splitSegments } from './parallel-range-reads.ts';
import { exportPathsAsTar } from './export-tar.ts';
import { bytesToPath } from './path-bytes.ts';
import { TarParser, type ParsedEntry } from './tar-parser.ts';
import { defaultConcurrency, sharedWorkerHost, type WorkerHost } from './worker-host.ts';

export interface VerifyArchiveOptions {
  /** full: the number of regular files the index lists (progress only). */
  files?: number;
  /** Required for an encrypted archive (index `encryption`). */
  open?: FrameOpener;
  signal?: AbortSignal;
  /** full: the codec workers to decode on (the process's shared host by default). */
  host?: WorkerHost;
  /**
   * full: the range reads made by the store thread instead (backupRangeSource's `thread`), so the
   * stored bytes never pass through this thread's heap; `reader` is then not used.
   */
  thread?: { recipe: RangeReaderRecipe; onRequestError?: (e: StoreRequestError) => void };
  /** full: how the archive is read, as a restore reads it (the RESTORE_* settings; the defaults without). */
  rangeReads?: RangeReadSettings;
  /** full: frames decoded at once are twice this (the codec workers taken from the host; default: defaultConcurrency()). */
  concurrency?: number;
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

/** How many of `files` regular files a `percent` % sample takes: at least one when there is any, all at 100. */
export function sampleSize(files: number, percent: number): number {
  if (files === 0 || percent <= 0) return 0;
  return Math.min(files, Math.max(1, Math.ceil((files * Math.min(percent, 100)) / 100)));
}

/**
 * `percent` % of the regular files among `entries` (sampleSize of `files`, their count), chosen at
 * random in one pass holding only the sample (reservoir sampling; `random` in [0, 1), Math.random
 * by default), returned in archive order.
 */
export function sampleFiles(entries: Iterable<ArchiveEntry>, files: number, percent: number, random: () => number = Math.random): ArchiveEntry[] {
  const want = sampleSize(files, percent);
  const chosen: ArchiveEntry[] = [];
  if (want === 0) return chosen;
  let seen = 0;
  for (const e of entries) {
    if (e.type !== 'file') continue;
    seen++;
    if (chosen.length < want) chosen.push(e);
    else {
      const j = Math.floor(random() * seen);
      if (j < want) chosen[j] = e;
    }
  }
  return chosen.sort((x, y) => x.headerOffset - y.headerOffset);
}

/**
 * One pass over an index's entries: each well formed and inside the tar (checkEntry), in archive
 * order without overlap. Returns the number of entries and of regular files.
 */
export function checkEntries(index: ArchiveIndex | StreamedIndex): { entries: number; files: number } {
  const tarEnd = checkIndexHead(index);
  let entries = 0;
  let files = 0;
  let end = 0;
  try {
    for (const e of eachEntry(entrySource(index))) {
      checkEntry(e, tarEnd);
      if (e.headerOffset < end) throw new CairnError('archive-corrupt', `invalid archive index: entry ${e.path} overlaps the one before it`);
      end = e.dataOffset + (e.type === 'file' ? Math.ceil(e.size / 512) * 512 : 0);
      entries++;
      if (e.type === 'file') files++;
    }
  } catch (err) {
    if (err instanceof CairnError) throw err;
    throw new CairnError('archive-corrupt', `the index entries do not decode: ${(err as Error).message}`, { cause: err });
  }
  return { entries, files };
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

/**
 * Reads and checks every frame of the archive and every entry of its tar (see the module comment).
 * The frames are decoded and checked on the codec pool, a few at a time (BlockDecoder, as a restore
 * decodes them); this thread hashes the own object's bytes and parses and hashes the tar.
 */
export async function verifyAllFrames(index: ArchiveIndex | StreamedIndex, reader: RangeReader, options: VerifyArchiveOptions = {}): Promise<VerifyAllResult> {
  checkIndexHead(index);
  if (index.encryption && !options.open) throw new CairnError('config', 'the archive is encrypted: verifying it needs its data keys');
  const { signal } = options;
  if (signal?.aborted) throw abortError(signal);
  const blocks = index.blocks;
  let bytesRead = 0;
  const own = createHash('sha256');
  let ownBytes = 0;
  let storedTotal = 0;
  for (const b of blocks) storedTotal += b.compressedLength;
  const tar = new TarCheck(entrySource(index), options.files);
  let blocksChecked = 0;
  let storedDone = 0;
  const settings = options.rangeReads ?? DEFAULT_RANGE_READS;
  const ranges = blocks.length ? [...splitSegments(segmentsOf(blocks, 0, blocks.length - 1), blocks, settings.rangeBytes)] : [];
  // When the frames are all in the own object they tile it in order: the reads hash it whole.
  const ownWhole = !hasForeignBlocks(index);

  const host = options.host ?? sharedWorkerHost();
  const { pool } = await CodecPool.openWith(host, options.concurrency ?? defaultConcurrency(), 0);
  const failure = new Failure();
  const onAbort = (): void => failure.fail(abortError(signal!));
  signal?.addEventListener('abort', onAbort, { once: true });
  // An abort while the codec workers were being acquired fired no event for us.
  if (signal?.aborted) onAbort();
  // The files whose whole content lies in a block are checked by the codec worker that decodes it.
  const contentOf = filesWithin(index);
  // Decoded blocks the parser still holds views of (a record split between blocks): not reused yet.
  const held: ArrayBuffer[] = [];
  const decoder: BlockDecoder = new BlockDecoder(
    pool,
    index,
    failure,
    (block) => contentOf(block),
    async (block, data, checked) => {
      for (const p of checked) if (p.verified) tar.verified.add(p.headerOffset);
      try {
        tar.push(data, blocks[block]!.uncompressedOffset);
      } catch (err) {
        throw blockError(err, blocks, block);
      }
      held.push(data.buffer as ArrayBuffer);
      if (!tar.holding) for (const buf of held.splice(0)) decoder.recycle(buf);
      blocksChecked++;
      storedDone += blocks[block]!.compressedLength;
      options.onProgress?.({ bytesDone: storedDone, bytesTotal: storedTotal, filesDone: tar.filesChecked, filesTotal: tar.files });
    },
    options.open,
  );
  // Every frame passes here before it goes to a codec worker: counted, and the own object's
  // hashed when other objects hold frames too (else decodeRanges hashes the whole of it).
  const tap = (f: Frame): void => {
    if (!f.data) return;
    bytesRead += f.data.length;
    if (!ownWhole && blocks[f.block]!.object === undefined) {
      own.update(f.data);
      ownBytes += f.data.length;
    }
  };
  let wholeSha: string | undefined;
  try {
    failure.throwIfFailed();
    const source = { rangeReader: reader, ...(options.thread ? { thread: options.thread } : {}) };
    wholeSha = await decodeRanges({ host, decoder, failure, source, blocks, ranges, settings, hashWhole: ownWhole, tap });
    await decoder.drain();
    failure.throwIfFailed();
  } catch (err) {
    failure.fail(err);
    throw signal?.aborted ? abortError(signal) : failure.error;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (failure.failed) pool.destroy();
    else pool.release();
    decoder.collectSlabs();
  }
  if (blocksChecked !== blocks.length) throw new CairnError('archive-corrupt', `read ${blocksChecked} of ${blocks.length} blocks`);
  tar.finish();
  if (ownWhole) {
    for (const b of blocks) ownBytes += b.compressedLength;
    return { blocksChecked, filesChecked: tar.filesChecked, bytesRead, ownSha256: wholeSha ?? '', ownBytes };
  }
  return { blocksChecked, filesChecked: tar.filesChecked, bytesRead, ownSha256: own.digest('hex'), ownBytes };
}

/**
 * For each block in turn: the index's files with content whose data lies wholly in it (the plan
 * items whose sha256 the codec worker decoding it checks: BlockDecoder), read in archive order
 * alongside the tar (memory: one batch of entries).
 */
function filesWithin(index: ArchiveIndex | StreamedIndex): (block: number) => PlanItem[] {
  const entries = eachEntry(entrySource(index));
  let next = nextEntry(entries);
  return (block) => {
    const b = index.blocks[block]!;
    const end = b.uncompressedOffset + b.uncompressedLength;
    const items: PlanItem[] = [];
    for (; next && next.headerOffset < end; next = nextEntry(entries)) {
      const e = next;
      if (e.type === 'file' && e.sha256 !== undefined && e.size > 0 && e.dataOffset >= b.uncompressedOffset && e.dataOffset + e.size <= end)
        items.push({ ...e });
    }
    return items;
  };
}

/** The next entry of an index, its decoding failures named as a corrupt index. */
function nextEntry(entries: Iterator<ArchiveEntry>): ArchiveEntry | undefined {
  try {
    const n = entries.next();
    return n.done ? undefined : n.value;
  } catch (err) {
    if (err instanceof CairnError) throw err;
    throw new CairnError('archive-corrupt', `the index entries do not decode: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Parses the whole tar and checks it against the index entries, read in archive order alongside
 * (memory: one batch of entries): every entry where the index lists it, every file's sha256, the
 * end-of-archive marker, and no entry missing or extra.
 */
class TarCheck {
  private readonly parser: TarParser;
  private readonly entries: Iterator<ArchiveEntry>;
  private hash: Hash | undefined;
  private current: ArchiveEntry | undefined;
  private found = 0;
  filesChecked = 0;
  /** Header offsets of files whose content a codec worker checked already, with its block: not hashed here. */
  readonly verified = new Set<number>();

  constructor(
    source: EntrySource,
    readonly files = 0,
  ) {
    this.entries = eachEntry(source);
    this.parser = new TarParser({
      entry: (e: ParsedEntry) => {
        const path = bytesToPath(e.path);
        const want = this.next();
        if (!want) throw new CairnError('archive-corrupt', `archive entry ${path} at tar offset ${e.headerOffset} is not in the index`);
        if (want.path !== path || want.type !== e.type)
          throw new CairnError('archive-corrupt', `archive entry ${path} at tar offset ${e.headerOffset} does not match the index (${want.path} there)`);
        if (want.headerOffset !== e.headerOffset || want.dataOffset !== e.dataOffset)
          throw new CairnError('archive-corrupt', `archive entry ${path} is at tar offset ${e.headerOffset}, the index says ${want.headerOffset}`);
        this.found++;
        this.current = want;
        this.hash = want.type === 'file' && !this.verified.delete(want.headerOffset) ? createHash('sha256') : undefined;
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

  /** Whether the parser still holds views of bytes pushed earlier (TarParser.holding). */
  get holding(): boolean {
    return this.parser.holding;
  }

  finish(): void {
    this.parser.finish();
    if (!this.parser.ended) throw new CairnError('archive-corrupt', 'the archive has no end-of-archive marker');
    const missing = this.next();
    if (missing) throw new CairnError('archive-corrupt', `entry ${missing.path} of the index is not in the archive (${this.found} entries found before it)`);
  }

  private next(): ArchiveEntry | undefined {
    return nextEntry(this.entries);
  }
}

/** Consumes a readable to its end (a range read of bytes no frame holds, hashed by the caller). */
export async function drain(stream: Readable, onChunk: (chunk: Buffer) => void): Promise<void> {
  for await (const raw of stream) onChunk(typeof raw === 'string' ? Buffer.from(raw) : (raw as Buffer));
}
