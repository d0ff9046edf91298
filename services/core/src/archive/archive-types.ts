/**
 * Public types of the archive engine (SPEC §5). The engine reads directories and writes
 * streams, and reads streams / range readers and writes directories; it knows nothing of S3,
 * queues or the database.
 */
import type { Readable, Writable } from 'node:stream';
import type { StoreRequestError } from '../storage/object-store.ts';
import type { ObjectStoreSpec } from '../storage/store-spec.ts';

export type Codec = 'zstd' | 'gzip' | 'none';

export const ARCHIVE_FORMAT = 'cairn-archive';
/**
 * Format 2 (incremental backups, issue 11): frames are cut at entry boundaries, a large file is a
 * header frame plus one frame per `chunkSize` bytes of content (aligned to file offsets), and a
 * block may live in another backup's archive object (`ArchiveBlock.object`). Every frame is an
 * independent zstd frame / gzip member / stored run, so the frames of a backup concatenated in
 * order are its whole compressed tar, whichever objects they come from. Format 1 (one object,
 * fixed-size blocks) stays readable.
 */
export const ARCHIVE_FORMAT_VERSION = 2;
export const READABLE_FORMAT_VERSIONS: readonly number[] = [1, 2];

export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink';

export interface VolumeSource {
  name: string;
  dir: string;
  /** Glob patterns (picomatch) relative to the volume; a pattern without a slash matches a basename anywhere. */
  excludes?: string[];
}

export interface ArchiveProgress {
  bytesDone: number;
  bytesTotal: number;
  filesDone: number;
  filesTotal: number;
}

export interface PackOptions {
  volumes: VolumeSource[];
  codec?: Codec;
  /** Compression level (zstd default 3, gzip default 6). */
  level?: number;
  /** Uncompressed tar bytes per independently compressed block; rounded up to 512 (default 1 MiB). */
  blockSize?: number;
  signal?: AbortSignal;
  onProgress?: (p: ArchiveProgress) => void;
  /** Copied into the index (backupId, instanceId, nodeId...). */
  meta?: Record<string, unknown>;
  /** Worker threads compressing blocks (default: available parallelism, at most 4). */
  concurrency?: number;
  /** Where the index entries wait until the pack's result is released (default: the OS temp dir). */
  tempDir?: string;
  /**
   * An incremental pack: entries unchanged since the parent (same type, size, mtime, ctime,
   * inode, device, mode, owner) are not read; the parent's frames holding them are referenced.
   */
  parent?: PackParent;
  /** Encrypt: each own frame sealed under `key`, bound to `object` (this backup's id). */
  seal?: { key: Buffer; object: string };
  /** Internal (tests): how far the walk may run ahead of the reader (pack-scanner.ts). */
  scanWindow?: { chunkItems: number; chunksAhead: number };
}

export interface PackParent {
  /** The parent backup's id: written as `object` into blocks that point at the parent's own object. */
  id: string;
  /** The parent's index (format 2, same codec); its entries are read once, in order. */
  index: ArchiveIndex | StreamedIndex;
  /**
   * Owners whose objects this pack may point into (the parent's id and the owners it references:
   * referenceParent's answer). A parent frame in any other object is not reused.
   */
  objects: readonly string[];
  /** Share (0..1) of unchanged files read anyway and compared with their sha256 (default 0.01). */
  rehashShare?: number;
}

export type WarningCode = 'skipped-type' | 'changed' | 'vanished' | 'unreadable' | 'read-error' | 'unsupported-entry' | 'attributes' | 'time-precision';

export interface ArchiveWarning {
  /** '<volume>/<rel>' (non-UTF-8 bytes as U+DC80..U+DCFF), or '' when not about one path. */
  path: string;
  code: WarningCode;
  message: string;
}

export interface ArchiveBlock {
  /**
   * Format 2: the id of the backup whose archive object holds this frame, when it is not the
   * archive's own object (an incremental backup reusing its parent's frames). `compressedOffset`
   * is then an offset in that object. Absent: the archive's own object.
   */
  object?: string;
  /** An encrypted archive: the last frame of its object (bound into the frame's seal: crypto/sealing.ts). */
  last?: true;
  compressedOffset: number;
  compressedLength: number;
  uncompressedOffset: number;
  uncompressedLength: number;
  /**
   * sha256 of the stored (compressed) bytes of the block. Present for the `none` codec; zstd
   * frames carry their own content checksum and gzip members their CRC-32, checked on decode.
   */
  sha256?: string;
}

export interface ArchiveEntry {
  /** '<volume>' for a volume's root directory, else '<volume>/<rel>'. Non-UTF-8 name bytes are kept as U+DC80..U+DCFF. */
  path: string;
  type: EntryType;
  /** Content bytes (0 except for files). */
  size: number;
  /** Permission bits (including setuid/setgid/sticky), without the file type. */
  mode: number;
  uid: number;
  gid: number;
  /** Modification time in nanoseconds since the epoch, as a decimal integer string (may be negative). */
  mtime: string;
  /** Symlink target as stored, or for a hard link the archive path of the entry it links to. */
  linkTarget?: string;
  /** Uncompressed tar offset of the entry's first header (its PAX header when it has one). */
  headerOffset: number;
  /** Uncompressed tar offset of the entry's content (the end of its headers). */
  dataOffset: number;
  /** sha256 of the content of a file. */
  sha256?: string;
  /**
   * Format 2, for change detection by the next incremental backup: the inode's ctime (ms, with
   * the fraction Node's Stats gives), inode number and device, as the scan saw them.
   */
  ctimeMs?: number;
  ino?: number;
  dev?: number;
  /**
   * Format 2, a file larger than the index's `chunkSize`: the sha256 of each `chunkSize` piece of
   * its content. Each piece is a frame of its own, so an incremental backup of a file rewritten
   * in place stores only the pieces whose hash changed.
   */
  chunks?: string[];
  /** Format 2: the file could not be read whole (zeros stand in): the next backup reads it again. */
  partial?: true;
}

/** Entry counts shared by a volume's summary and the archive's totals. */
export interface EntryCounts {
  entries: number;
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  /** Sum of file sizes (a hard-linked file counted once). */
  logicalBytes: number;
}

export interface VolumeSummary extends EntryCounts {
  name: string;
  /** The volume holds nothing but its own root directory. */
  empty: boolean;
  warnings: number;
}

export interface ArchiveTotals extends EntryCounts {
  /** Length of the uncompressed tar stream. */
  tarBytes: number;
  /** Length of the stored (compressed) archive. */
  storedBytes: number;
  blocks: number;
  warnings: number;
  /** Format 2: stored bytes of the frames read from other backups' objects (not in storedBytes). */
  reusedBytes?: number;
}

export interface ArchiveIndex {
  format: typeof ARCHIVE_FORMAT;
  version: number;
  createdAt: string;
  meta: Record<string, unknown>;
  codec: Codec;
  level: number;
  blockSize: number;
  /** Format 2: content bytes per frame of a large file (files larger than this are chunked). */
  chunkSize?: number;
  /** Format 2: the backups whose archive objects hold frames of this archive (besides its own). */
  objects?: string[];
  /**
   * Encryption at rest: every stored frame sealed with AES-256-GCM under the data key of the
   * backup whose object holds it (crypto/sealing.ts); compressed lengths include the 16-byte tag.
   */
  encryption?: 'aes-256-gcm';
  /** sha256 of the archive's own stored object (format 1: the whole archive). */
  sha256: string;
  volumes: VolumeSummary[];
  totals: ArchiveTotals;
  blocks: ArchiveBlock[];
  entries: ArchiveEntry[];
  warnings: ArchiveWarning[];
}

/** The index without its entries (which can be many: a pack keeps them out of memory). */
export type ArchiveIndexHead = Omit<ArchiveIndex, 'entries'>;

/**
 * Entries that can be read more than once, in archive order, a batch at a time: an index's
 * array, or a temporary file when the index is too big to hold.
 */
export interface EntrySource {
  batches(): Iterable<ArchiveEntry[]>;
}

/** An index whose entries stay out of memory (readIndex); close() releases them. */
export interface StreamedIndex extends ArchiveIndexHead {
  entries: EntrySource & { close(): void };
}

export interface PackResult {
  /**
   * The whole index, entries included, read back from the pack's temporary file on first use:
   * for tests and small archives. A node worker uses `head` and `indexStream()`, so its memory
   * does not grow with the number of files.
   */
  readonly index: ArchiveIndex;
  head: ArchiveIndexHead;
  /** The entries in archive order, a block's worth at a time. */
  entries(): Generator<ArchiveEntry[]>;
  /** The encoded index (encodeIndex's format), produced as it is read. */
  indexStream(): Readable;
  /** Releases the temporary file holding the entries (also released when this is collected). */
  close(): void;
  /** sha256 of the stored (compressed) bytes. */
  sha256: string;
  storedBytes: number;
  logicalBytes: number;
  /** Stored bytes of the frames reused from other objects (0 for a full pack). */
  reusedBytes: number;
  /** The owners whose objects the index points into (empty for a full pack). */
  objects: string[];
  /** Regular files stored with their content (hard links not counted). */
  fileCount: number;
  warnings: ArchiveWarning[];
}

/**
 * Serves stored bytes [start, endInclusive] of the archive's own object (`object` undefined), or
 * of the archive object written by backup `object` (a format 2 block's `object`).
 */
export type RangeReader = (start: number, endInclusive: number, object?: string) => Promise<Readable>;

/**
 * How the store thread makes the same range reads as a RangeReader of the main thread (frame-reader-job.ts):
 * a local file, or a backup's archive objects in a store it reopens from its spec.
 */
export type RangeReaderRecipe =
  | { kind: 'file'; path: string }
  | { kind: 'backup'; store: ObjectStoreSpec; backup: { id: string; instanceId: string; storageKey: string }; codec: Codec };

/** A failed store request made by the store thread, for the main store's metrics (ObjectStore.reportRequestError). */
export type { StoreRequestError };

/**
 * `thread`: the range reads are made by the store thread instead (unpack.ts), so the stored bytes
 * never pass through this thread's heap; `rangeReader` is then not used.
 */
export type UnpackSource =
  | { stream: Readable }
  | { rangeReader: RangeReader; thread?: { recipe: RangeReaderRecipe; onRequestError?: (e: StoreRequestError) => void } };

/** How a restore reads through a range reader (parallel-range-reads.ts). */
export interface RangeReadSettings {
  /** Range reads in flight at once (at least 1). */
  parallel: number;
  /** Stored bytes per range read; a range holds whole frames (one larger frame is read alone). */
  rangeBytes: number;
  /** Stored bytes held at once: being fetched, fetched and waiting, and being consumed. */
  bytesInFlight: number;
}

/** An encrypted archive's frames, opened one by one (the data key of the object holding each). */
export type FrameOpener = (block: ArchiveBlock, sealed: Buffer) => Buffer;

export interface UnpackOptions {
  /** Entries land at <target>/<volume>/<rel> unless volumeDirs is given. */
  target: string;
  /** Volume name -> directory to extract it into; volumes not listed are skipped. */
  volumeDirs?: Record<string, string>;
  /** The whole index, or one read with readIndex (entries in a temporary file). */
  index: ArchiveIndex | StreamedIndex;
  /** '<volume>/<rel>' files or directories (or '<volume>'); omitted = everything. */
  paths?: string[];
  source: UnpackSource;
  /** Parallel range reads of a rangeReader source (default DEFAULT_RANGE_READS). */
  rangeReads?: RangeReadSettings;
  /** Defaults to index.sha256; checked whenever the whole archive is read. */
  expectedSha256?: string;
  signal?: AbortSignal;
  onProgress?: (p: ArchiveProgress) => void;
  /** Restore uid/gid (default: when running as root). */
  restoreOwnership?: boolean;
  /** Worker threads decompressing blocks (default: available parallelism, at most 4). */
  concurrency?: number;
  /** Required for an encrypted archive (index `encryption`). */
  open?: FrameOpener;
  /**
   * Small files written by the codec workers that decode them, in parallel (direct-writes.ts;
   * default true, with the native helper). false: the extract worker writes every file.
   */
  directWrites?: boolean;
  /**
   * Slots of the shared slab zstd blocks are decoded into (shared-slab.ts; default: the blocks
   * decoding and unacknowledged, plus a few). When they are all in use a block goes in a buffer of
   * its own. 0: no slabs, for blocks or for the frames the store thread reads.
   */
  sharedSlots?: number;
}

export interface UnpackResult {
  filesWritten: number;
  bytesWritten: number;
  /** Whether the whole archive was read and its sha256 compared. */
  archiveVerified: boolean;
  warnings: ArchiveWarning[];
}

export type PackSink = NodeJS.WritableStream | Writable;
