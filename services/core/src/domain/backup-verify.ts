/**
 * Verification of a completed backup against what is stored (issue 14, verify / scrub), at one of
 * three levels, each including the one before:
 *
 * - quick: the archive object exists with the size the backup recorded, every archive object its
 *   index reads frames from (an incremental's) exists and is long enough, and the index reads and
 *   agrees with the row and with itself (checkIndex: contiguous blocks, entries inside the tar);
 * - sample: a random share of the files read back through only their frames (each frame checked
 *   on decode, each file against its sha256) — files no restore has read included;
 * - full: every frame of the archive decoded and checked, the whole tar parsed (every file's
 *   sha256), and the sha256 of the archive's own object compared with the one recorded, so a
 *   flipped byte anywhere in it is found, even in a frame no file owns (the end-of-archive one).
 *
 * A problem found is a CairnError whose code is one of VERIFY_FINDING_CODES and whose message
 * names the object, block or file; anything else (S3 unreachable, a missing data key) is not a
 * finding about the backup. Pure of the records: the caller records the outcome.
 */
import { pipeline, Transform, type Readable } from 'node:stream';
import { eachEntry, entrySource, planRuns, readIndex } from '../archive/archive-index.ts';
import type { ArchiveEntry, ArchiveIndex, ArchiveIndexHead, FrameOpener, RangeReadSettings, StreamedIndex } from '../archive/archive-types.ts';
import { describeBlock } from '../archive/block-source.ts';
import { checkEntries, drain, sampleFiles, verifyAllFrames, verifyFiles } from '../archive/verify-archive.ts';
import { CairnError, type ErrorCode } from '../errors.ts';
import type { Backup } from '../records/records.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { archiveKey, type Compression } from './object-layout.ts';
import { backupRangeSource } from './backup-range-reader.ts';
import { createHash } from 'node:crypto';

export const VERIFY_LEVELS = ['quick', 'sample', 'full'] as const;
export type VerifyLevel = (typeof VERIFY_LEVELS)[number];
export const DEFAULT_SAMPLE_PERCENT = 10;

/** Error codes that are findings about the backup (recorded as a failed verification). */
export const VERIFY_FINDING_CODES: readonly ErrorCode[] = ['checksum-mismatch', 'archive-corrupt', 'archive-missing'];

export function isVerifyFinding(err: unknown): err is CairnError {
  return err instanceof CairnError && VERIFY_FINDING_CODES.includes(err.code);
}

export interface VerifyRequest {
  level: VerifyLevel;
  /** sample: percent (0 < p ≤ 100) of the files read back (default 10). */
  samplePercent?: number;
}

export interface BackupVerifyOptions extends VerifyRequest {
  signal?: AbortSignal;
  /** Random numbers in [0, 1) choosing the sample (tests). */
  random?: () => number;
  /** An encrypted backup: the stored index object as the index's bytes. */
  openIndex?: (stored: Readable) => Readable;
  /** An encrypted backup: the opener of its frames (given its index). */
  frameOpener?: (index: ArchiveIndexHead) => Promise<FrameOpener | undefined>;
  /** Where the index entries wait while they are checked (default: the OS temp dir). */
  tempDir?: string;
  /** full: the range reads made by the store thread when the store can be reopened there (STORE_THREAD; default true). */
  storeThread?: boolean;
  /** full: how the archive is read (the RESTORE_* settings; the defaults without). */
  rangeReads?: RangeReadSettings;
  onProgress?: (stage: string, p?: { bytesDone: number; bytesTotal: number; filesDone: number; filesTotal: number }) => void;
}

export interface VerifyReport {
  level: VerifyLevel;
  /** Archive objects found, own first. */
  objects: { backupId: string; key: string; size: number }[];
  blocks: number;
  /** Frames read and checked (sample: those holding the chosen files; full: all). */
  blocksChecked: number;
  files: number;
  filesChecked: number;
  samplePercent?: number;
  /** Stored bytes read from S3 (index and frames). */
  bytesRead: number;
  /** full: the sha256 of the archive's own object, as computed. */
  sha256?: string;
}

function missing(what: string, key: string): CairnError {
  return new CairnError('archive-missing', `${what} is missing (${key})`);
}

/** Verifies one completed backup at `options.level`; throws a finding (see VERIFY_FINDING_CODES) naming what is wrong. */
export async function verifyBackup(store: ObjectStore, backup: Backup, options: BackupVerifyOptions): Promise<VerifyReport> {
  const { signal } = options;
  options.onProgress?.('checking-objects');

  // The archive's own object, with the recorded size.
  const own = await store.head(backup.storageKey);
  if (!own) throw missing(`the archive object of backup ${backup.id}`, backup.storageKey);
  if (backup.sizeBytes !== null && BigInt(own.size) !== backup.sizeBytes)
    throw new CairnError(
      'archive-corrupt',
      `the archive object of backup ${backup.id} (${backup.storageKey}) holds ${own.size} bytes, the backup recorded ${backup.sizeBytes}`,
    );

  // The index: readable, well formed, and about this backup.
  let stored: Readable;
  try {
    stored = await store.get(backup.indexKey, { signal });
  } catch (err) {
    if (err instanceof CairnError && err.code === 'not-found') throw missing(`the index object of backup ${backup.id}`, backup.indexKey);
    throw err;
  }
  let bytesRead = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytesRead += chunk.length;
      cb(null, chunk);
    },
  });
  pipeline(stored, counted, () => undefined);
  // Entries go to a temporary file as they arrive: memory does not grow with the file count.
  let index: StreamedIndex;
  try {
    index = await readIndex(options.openIndex ? options.openIndex(counted) : counted, options.tempDir);
  } catch (err) {
    if (!(err instanceof CairnError) || err.code === 'unavailable' || err.code === 'cancelled') throw err;
    throw new CairnError(err.code, `the index of backup ${backup.id} (${backup.indexKey}): ${err.message}`, { cause: err });
  }
  try {
    return await verifyWithIndex(store, backup, index, own.size, bytesRead, options);
  } finally {
    index.entries.close();
  }
}

async function verifyWithIndex(
  store: ObjectStore,
  backup: Backup,
  index: StreamedIndex,
  ownSize: number,
  indexBytes: number,
  options: BackupVerifyOptions,
): Promise<VerifyReport> {
  const { level, signal } = options;
  const progress = options.onProgress ?? (() => undefined);
  let bytesRead = indexBytes;
  checkAgainstRow(backup, index, ownSize);
  let files: number;
  try {
    files = checkEntries(index).files;
  } catch (err) {
    const e = err as CairnError;
    throw new CairnError(e.code, `the index of backup ${backup.id} (${backup.indexKey}): ${e.message}`, { cause: err });
  }
  const own = { size: ownSize };

  // Every other archive object the index reads frames from: present and long enough.
  const objects: VerifyReport['objects'] = [{ backupId: backup.id, key: backup.storageKey, size: own.size }];
  const reach = new Map<string, number>();
  index.blocks.forEach((b) => {
    if (b.object !== undefined) reach.set(b.object, Math.max(reach.get(b.object) ?? 0, b.compressedOffset + b.compressedLength));
  });
  for (const [owner, needed] of reach) {
    const key = archiveKey(backup.instanceId, owner, index.codec as Compression);
    const info = await store.head(key);
    if (!info) throw missing(`the archive object of backup ${owner}, which backup ${backup.id} reads from,`, key);
    if (info.size < needed) {
      const first = index.blocks.findIndex((b) => b.object === owner && b.compressedOffset + b.compressedLength > info.size);
      throw new CairnError('archive-corrupt', `${describeBlock(index.blocks, first)} lies past the end of ${key} (${info.size} bytes)`);
    }
    objects.push({ backupId: owner, key, size: info.size });
  }

  const report: VerifyReport = { level, objects, blocks: index.blocks.length, blocksChecked: 0, files, filesChecked: 0, bytesRead };
  if (level === 'quick') return report;

  // One range reader for every read below; `thread`: how the store thread makes the same reads (full).
  const { rangeReader: reader, thread } = backupRangeSource(store, backup, index.codec, signal, options.storeThread ?? true);
  const open = options.frameOpener ? await options.frameOpener(index) : undefined;
  const onProgress = (p: { bytesDone: number; bytesTotal: number; filesDone: number; filesTotal: number }) => progress('verifying', p);

  if (level === 'sample') {
    const percent = options.samplePercent ?? DEFAULT_SAMPLE_PERCENT;
    const chosen = sampleFiles(eachEntry(entrySource(index)), files, percent, options.random);
    // Only the chosen files' entries are held: exportPathsAsTar reads the frames holding them.
    const { entries: _all, ...head } = index;
    const sampled: ArchiveIndex = { ...head, entries: chosen };
    const r = await verifyFiles(sampled, reader, chosen, { open, signal, onProgress });
    bytesRead += r.bytesRead;
    return { ...report, samplePercent: percent, filesChecked: r.filesChecked, blocksChecked: framesHolding(sampled, chosen), bytesRead };
  }

  const r = await verifyAllFrames(index, reader, { open, signal, onProgress, files, thread, rangeReads: options.rangeReads });
  bytesRead += r.bytesRead;
  // The own object's bytes past its last frame (none when Cairn wrote it) count in its sha256 too.
  const hash = r.ownBytes < own.size ? createHash('sha256') : undefined;
  let sha256 = r.ownSha256;
  if (hash) {
    // Re-read whole: a tail no frame describes is itself suspicious, but its hash decides.
    await drain(await reader(0, own.size - 1), (c) => {
      hash.update(c);
      bytesRead += c.length;
    });
    sha256 = hash.digest('hex');
  }
  const expected = backup.sha256 ?? index.sha256;
  if (expected && sha256 !== expected)
    throw new CairnError(
      'checksum-mismatch',
      `the archive object of backup ${backup.id} (${backup.storageKey}) does not match its sha256 (computed ${sha256}, recorded ${expected})`,
    );
  return { ...report, blocksChecked: r.blocksChecked, filesChecked: r.filesChecked, bytesRead, sha256 };
}

/** Number of frames the chosen entries lie in. */
function framesHolding(index: ArchiveIndex, entries: readonly ArchiveEntry[]): number {
  return planRuns(index, entries).reduce((n, r) => n + r.lastBlock - r.firstBlock + 1, 0);
}

/** The index agrees with the backup row: same archive, codec and sha256, and its own frames fit the object. */
function checkAgainstRow(backup: Backup, index: ArchiveIndexHead, objectSize: number): void {
  const bad = (why: string) => new CairnError('archive-corrupt', `the index of backup ${backup.id} (${backup.indexKey}) ${why}`);
  const metaId = index.meta?.backupId;
  if (typeof metaId === 'string' && metaId !== backup.id) throw bad(`belongs to backup ${metaId}`);
  if (index.codec !== backup.compression) throw bad(`says codec ${index.codec}, the backup ${backup.compression}`);
  if (backup.sha256 && index.sha256 && index.sha256 !== backup.sha256) throw bad(`records sha256 ${index.sha256}, the backup ${backup.sha256}`);
  let ownEnd = 0;
  for (const b of index.blocks) if (b.object === undefined) ownEnd = b.compressedOffset + b.compressedLength;
  if (ownEnd > objectSize) throw bad(`places frames up to byte ${ownEnd} of the archive object, which holds ${objectSize}`);
  if (backup.format >= 2 && backup.format !== index.version) throw bad(`is in archive format ${index.version}, the backup recorded ${backup.format}`);
}
