/**
 * Public types of the archive engine (SPEC §5). The engine reads directories and writes
 * streams, and reads streams / range readers and writes directories; it knows nothing of S3,
 * queues or the database.
 */
import type { Readable, Writable } from 'node:stream';

export type Codec = 'zstd' | 'gzip' | 'none';

export const ARCHIVE_FORMAT = 'cairn-archive';
export const ARCHIVE_FORMAT_VERSION = 1;

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
  /** Internal (tests): how far the walk may run ahead of the reader (pack-scanner.ts). */
  scanWindow?: { chunkItems: number; chunksAhead: number };
}

export type WarningCode = 'skipped-type' | 'changed' | 'vanished' | 'unreadable' | 'read-error' | 'unsupported-entry' | 'attributes' | 'time-precision';

export interface ArchiveWarning {
  /** '<volume>/<rel>' (non-UTF-8 bytes as U+DC80..U+DCFF), or '' when not about one path. */
  path: string;
  code: WarningCode;
  message: string;
}

export interface ArchiveBlock {
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
}

export interface ArchiveIndex {
  format: typeof ARCHIVE_FORMAT;
  version: number;
  createdAt: string;
  meta: Record<string, unknown>;
  codec: Codec;
  level: number;
  blockSize: number;
  /** sha256 of the whole stored archive. */
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
  /** Regular files stored with their content (hard links not counted). */
  fileCount: number;
  warnings: ArchiveWarning[];
}

/** Serves stored-archive bytes [start, endInclusive]. */
export type RangeReader = (start: number, endInclusive: number) => Promise<Readable>;

export type UnpackSource = { stream: Readable } | { rangeReader: RangeReader };

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
  /** Defaults to index.sha256; checked whenever the whole archive is read. */
  expectedSha256?: string;
  signal?: AbortSignal;
  onProgress?: (p: ArchiveProgress) => void;
  /** Restore uid/gid (default: when running as root). */
  restoreOwnership?: boolean;
  /** Worker threads decompressing blocks (default: available parallelism, at most 4). */
  concurrency?: number;
}

export interface UnpackResult {
  filesWritten: number;
  bytesWritten: number;
  /** Whether the whole archive was read and its sha256 compared. */
  archiveVerified: boolean;
  warnings: ArchiveWarning[];
}

export type PackSink = NodeJS.WritableStream | Writable;
