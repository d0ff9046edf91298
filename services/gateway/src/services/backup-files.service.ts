import type { Readable } from 'node:stream';
import { archiveKey, CairnError, frameOpenerFor, openIndexObject, type Backup, type Keyring, type Logger, type RecordSet } from '@cairn/core';
import { backupRangeReader } from '@cairn/core/domain/backup-range-reader.ts';
import type { FileEntry, FileList, ListFilesQuery } from '@cairn/core/api/index.ts';
import {
  archiveLength,
  exportArchive,
  exportPathsAsTar,
  hasForeignBlocks,
  readIndexHead,
  type ArchiveEntry,
  type ArchiveIndexHead,
  type FrameOpener,
  type RangeReader,
} from '@cairn/core/archive/index.ts';
import type { ObjectStore } from '@cairn/core/storage/object-store.ts';
import { validationError } from '../http/validation.ts';
import type { Actor } from './actor.ts';
import type { BackupService } from './backup.service.ts';
import { PagedIndex } from './paged-index.ts';

export interface BackupFilesServiceOptions {
  store: ObjectStore;
  backups: BackupService;
  logger: Logger;
  /** Encryption at rest: the keyring (CAIRN_MASTER_KEYS, read at each use) and the records to find the data keys of backups read from. */
  keyring?: () => Keyring | undefined;
  records?: Pick<RecordSet, 'backups'>;
  /** Indexes kept read (most recently used): their entries in temporary files, a path range per batch in memory. */
  cacheIndexes?: number;
}

/** A read index and the requests using it: one evicted while in use is closed when the last one is done. */
interface CachedIndex {
  loading: Promise<PagedIndex>;
  users: number;
  evicted: boolean;
}

export interface Download {
  stream: Readable;
  contentType: string;
  filename: string;
  length?: number;
}

const ARCHIVE_TYPES: Record<string, { contentType: string; ext: string }> = {
  zstd: { contentType: 'application/zstd', ext: 'tar.zst' },
  gzip: { contentType: 'application/gzip', ext: 'tar.gz' },
  none: { contentType: 'application/x-tar', ext: 'tar' },
};

/**
 * Reads completed backups without a worker (SPEC §5): browsing through the index object only,
 * downloading the archive as stored, or one path of it as a plain tar built from the blocks
 * that hold it (S3 range reads). An incremental backup (format 2) whose frames partly live in
 * other backups' archive objects downloads as the same complete archive, its frames read from
 * each object in block order (exportArchive), never recompressed.
 */
export class BackupFilesService {
  private readonly store: ObjectStore;
  private readonly backups: BackupService;
  private readonly logger: Logger;
  private readonly cacheIndexes: number;
  /** Insertion order is recency: a hit is deleted and re-inserted. Concurrent loads share one download. */
  private readonly cache = new Map<string, CachedIndex>();

  private readonly ring: () => Keyring | undefined;
  private readonly records: Pick<RecordSet, 'backups'> | undefined;

  constructor(options: BackupFilesServiceOptions) {
    this.ring = options.keyring ?? (() => undefined);
    this.records = options.records;
    this.store = options.store;
    this.backups = options.backups;
    this.logger = options.logger;
    this.cacheIndexes = options.cacheIndexes ?? 8;
  }

  /**
   * A page of the backup's files in path order, read from its index a batch at a time (memory
   * holds a page, not the index).
   */
  async list(actor: Actor, backupId: string, query: ListFilesQuery): Promise<FileList> {
    const backup = await this.backups.findVisible(actor, backupId);
    const prefix = query.prefix; // checked like every backup path (BackupPathPrefix), trailing '/' removed
    const below = `${prefix}/`;
    const matches =
      prefix === ''
        ? (p: string) => query.recursive || !p.includes('/')
        : (p: string) => (query.recursive && p === prefix) || (p.startsWith(below) && (query.recursive || p.indexOf('/', below.length) === -1));
    const items = await this.withIndex(backup, (ix) => ix.page(query.limit + 1, { prefix, cursor: query.cursor, matches }));
    const page = items.slice(0, query.limit);
    return { backupId, prefix, items: page.map(fileEntry), nextCursor: items.length > query.limit ? page[page.length - 1]!.path : null };
  }

  /** The archive object as stored, or one path of it as a plain tar; `signal` stops the reads (client gone). */
  async download(actor: Actor, backupId: string, path: string | undefined, signal?: AbortSignal): Promise<Download> {
    const backup = await this.backups.findVisible(actor, backupId);
    requireCompleted(backup, 'downloaded');
    if (path === undefined) {
      const type = ARCHIVE_TYPES[backup.compression] ?? ARCHIVE_TYPES.none!;
      const head = await this.loadHead(backup);
      // An encrypted archive is sent opened (a plain .tar.zst), frame by frame.
      const open = await this.opener(backup, head);
      if (hasForeignBlocks(head) || open) {
        // Answered before the first byte: a missing object would otherwise cut the download short.
        await this.assertObjects(backup, head);
        const stream = exportArchive(head, this.rangeReader(backup, head, signal), { signal, ...(open ? { open } : {}) });
        return { stream, contentType: type.contentType, filename: `${backup.id}.${type.ext}`, length: archiveLength(head) };
      }
      const stream = await this.get(backup.storageKey, 'archive');
      return {
        stream,
        contentType: type.contentType,
        filename: `${backup.id}.${type.ext}`,
        ...(backup.sizeBytes !== null ? { length: Number(backup.sizeBytes) } : {}),
      };
    }
    const stream = await this.withIndex(backup, async (ix) => {
      if (!(await ix.contains(path))) throw new CairnError('not-found', `path ${path} is not in backup ${backup.id}`);
      const { index } = ix;
      const open = await this.opener(backup, index);
      // Takes the entries it exports from the index now: the index may be released once it returns.
      return exportPathsAsTar(index, this.rangeReader(backup, index, signal), [path], { signal, ...(open ? { open } : {}) });
    });
    const base = path.split('/').pop() || 'backup';
    return { stream, contentType: 'application/x-tar', filename: `${base}.tar` };
  }

  /** 400 naming each requested path (by its position in `paths`) that the backup does not hold. */
  async assertPaths(backup: Backup, paths: string[], field = 'paths'): Promise<void> {
    const found = await this.withIndex(backup, (ix) => Promise.all(paths.map((p) => ix.contains(p))));
    const missing = paths.flatMap((p, i) => (found[i] ? [] : [{ path: `${field}.${i}`, message: `${p} is not in backup ${backup.id}` }]));
    if (missing.length) throw validationError('request', missing);
  }

  /** Range reads of the backup's archive objects: the restore's own helper (missing: archive-missing). */
  private rangeReader(backup: Backup, index: ArchiveIndexHead, signal: AbortSignal | undefined): RangeReader {
    return backupRangeReader(this.store, backup, index.codec, signal);
  }

  /** Every archive object the blocks of `index` live in exists (else archive-missing, naming its key). */
  private async assertObjects(backup: Backup, index: ArchiveIndexHead): Promise<void> {
    const objects = new Set(index.blocks.map((b) => b.object));
    await Promise.all(
      [...objects].map(async (object) => {
        const key = object === undefined ? backup.storageKey : archiveKey(backup.instanceId, object, index.codec);
        if (!(await this.store.head(key))) throw objectMissing(object, key);
      }),
    );
  }

  /** The index without its entries: the cached index when there is one, else only the index object's first line. */
  private async loadHead(backup: Backup): Promise<ArchiveIndexHead> {
    const hit = this.cache.get(backup.id);
    if (hit) return (await hit.loading).index;
    return readIndexHead(openIndexObject(this.ring(), backup, await this.get(backup.indexKey, 'index')));
  }

  /** The frame opener of an encrypted backup's archive (undefined when it is not encrypted). */
  private opener(backup: Backup, index: ArchiveIndexHead): Promise<FrameOpener | undefined> {
    if (!index.encryption) return Promise.resolve(undefined);
    if (!this.records) throw new CairnError('internal', 'the backup files service has no records to find data keys');
    return frameOpenerFor(this.ring(), this.records.backups, backup, index);
  }

  /** Runs `use` with the backup's index, read once and kept for the next requests (most recently used). */
  private async withIndex<T>(backup: Backup, use: (index: PagedIndex) => Promise<T>): Promise<T> {
    requireCompleted(backup, 'browsed');
    let entry = this.cache.get(backup.id);
    if (entry) {
      this.cache.delete(backup.id);
    } else {
      entry = { loading: this.readPagedIndex(backup), users: 0, evicted: false };
      const failed = entry;
      entry.loading.catch(() => {
        if (this.cache.get(backup.id) === failed) this.cache.delete(backup.id);
        failed.evicted = true;
      });
    }
    this.cache.set(backup.id, entry);
    this.evict();
    entry.users++;
    try {
      return await use(await entry.loading);
    } finally {
      entry.users--;
      if (entry.evicted && entry.users === 0)
        void entry.loading.then(
          (ix) => ix.close(),
          () => undefined,
        );
    }
  }

  private async readPagedIndex(backup: Backup): Promise<PagedIndex> {
    const index = await PagedIndex.read(openIndexObject(this.ring(), backup, await this.get(backup.indexKey, 'index')));
    this.logger.debug({ backupId: backup.id, batches: index.ranges.length }, 'index read');
    return index;
  }

  private async get(key: string, what: string): Promise<Readable> {
    try {
      return await this.store.get(key);
    } catch (err) {
      if (err instanceof CairnError && err.code === 'not-found')
        throw new CairnError('archive-missing', `the ${what} object of this backup is missing (${key})`, { cause: err });
      throw err;
    }
  }

  /** Drops the least recently used indexes past `cacheIndexes`; one still in use is closed by its last user. */
  private evict(): void {
    for (const [id, entry] of this.cache) {
      if (this.cache.size <= this.cacheIndexes) break;
      this.cache.delete(id);
      entry.evicted = true;
      if (entry.users === 0)
        void entry.loading.then(
          (ix) => ix.close(),
          () => undefined,
        );
    }
  }
}

/** An archive object a backup's blocks live in (its own, or another backup's) is missing. */
function objectMissing(object: string | undefined, key: string, cause?: unknown): CairnError {
  const what = object === undefined ? 'the archive object of this backup' : `the archive object of backup ${object}, which this backup reads from,`;
  return new CairnError('archive-missing', `${what} is missing (${key})`, { cause });
}

function requireCompleted(backup: Backup, what: string): void {
  if (backup.status !== 'completed') {
    throw new CairnError('conflict', `backup ${backup.id} is ${backup.status}: only completed backups can be ${what}`, { details: { status: backup.status } });
  }
}

function fileEntry(e: ArchiveEntry): FileEntry {
  let mtime: string;
  try {
    mtime = new Date(Number(BigInt(e.mtime) / 1_000_000n)).toISOString();
  } catch {
    mtime = new Date(0).toISOString();
  }
  return {
    path: e.path,
    type: e.type,
    size: e.size,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    mtime,
    ...(e.linkTarget !== undefined ? { linkTarget: e.linkTarget } : {}),
    ...(e.sha256 !== undefined ? { sha256: e.sha256 } : {}),
  };
}
