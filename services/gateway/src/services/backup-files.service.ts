import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { archiveKey, CairnError, frameOpenerFor, openIndexObject, type Backup, type Keyring, type Logger, type RecordSet } from '@cairn/core';
import { backupRangeReader } from '@cairn/core/domain/backup-range-reader.ts';
import type { FileEntry, FileList, ListFilesQuery } from '@cairn/core/api/index.ts';
import {
  archiveLength,
  decodeIndex,
  exportArchive,
  exportPathsAsTar,
  hasForeignBlocks,
  readIndexHead,
  type ArchiveEntry,
  type ArchiveIndex,
  type ArchiveIndexHead,
  type FrameOpener,
  type RangeReader,
} from '@cairn/core/archive/index.ts';
import type { ObjectStore } from '@cairn/core/storage/object-store.ts';
import { validationError } from '../http/validation.ts';
import type { Actor } from './actor.ts';
import type { BackupService } from './backup.service.ts';

export interface BackupFilesServiceOptions {
  store: ObjectStore;
  backups: BackupService;
  logger: Logger;
  /** Encryption at rest: the keyring (CAIRN_MASTER_KEYS, read at each use) and the records to find the data keys of backups read from. */
  keyring?: () => Keyring | undefined;
  records?: Pick<RecordSet, 'backups'>;
  /** Indexes kept in memory (most recently used). */
  cacheIndexes?: number;
  /** Entries kept in memory across cached indexes; bigger indexes evict older ones first. */
  cacheEntries?: number;
}

/** An index with its entries sorted by path, for prefix listing and lookups by binary search. */
interface LoadedIndex {
  index: ArchiveIndex;
  sorted: ArchiveEntry[];
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
  private readonly cacheEntries: number;
  /** Insertion order is recency: a hit is deleted and re-inserted. Promises, so concurrent loads share one download. */
  private readonly cache = new Map<string, Promise<LoadedIndex>>();
  private readonly sizes = new Map<string, number>();

  private readonly ring: () => Keyring | undefined;
  private readonly records: Pick<RecordSet, 'backups'> | undefined;

  constructor(options: BackupFilesServiceOptions) {
    this.ring = options.keyring ?? (() => undefined);
    this.records = options.records;
    this.store = options.store;
    this.backups = options.backups;
    this.logger = options.logger;
    this.cacheIndexes = options.cacheIndexes ?? 8;
    this.cacheEntries = options.cacheEntries ?? 2_000_000;
  }

  async list(actor: Actor, backupId: string, query: ListFilesQuery): Promise<FileList> {
    const backup = await this.backups.findVisible(actor, backupId);
    const { sorted } = await this.load(backup);
    const prefix = query.prefix.replace(/\/+$/, '');
    if (prefix.startsWith('/')) throw validationError('query parameters', [{ path: 'prefix', message: "must not start with '/'" }]);

    const items: ArchiveEntry[] = [];
    const after = (p: string) => query.cursor === undefined || p > query.cursor;
    const take = (e: ArchiveEntry) => {
      if (after(e.path)) items.push(e);
      return items.length > query.limit;
    };
    if (prefix === '') {
      for (let i = query.cursor ? upperBound(sorted, query.cursor) : 0; i < sorted.length; i++) {
        const e = sorted[i]!;
        if (!query.recursive && e.path.includes('/')) continue;
        if (take(e)) break;
      }
    } else {
      const self = sorted[lowerBound(sorted, prefix)];
      let full = false;
      if (query.recursive && self?.path === prefix) full = take(self);
      const below = `${prefix}/`;
      for (let i = Math.max(lowerBound(sorted, below), query.cursor ? upperBound(sorted, query.cursor) : 0); !full && i < sorted.length; i++) {
        const e = sorted[i]!;
        if (!e.path.startsWith(below)) break;
        if (!query.recursive && e.path.indexOf('/', below.length) !== -1) continue;
        full = take(e);
      }
    }
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
    const { index, sorted } = await this.load(backup);
    if (!containsPath(sorted, path)) throw new CairnError('not-found', `path ${path} is not in backup ${backup.id}`);
    const open = await this.opener(backup, index);
    const stream = exportPathsAsTar(index, this.rangeReader(backup, index, signal), [path], { signal, ...(open ? { open } : {}) });
    const base = path.split('/').pop() || 'backup';
    return { stream, contentType: 'application/x-tar', filename: `${base}.tar` };
  }

  /** 400 naming each requested path (by its position in `paths`) that the backup does not hold. */
  async assertPaths(backup: Backup, paths: string[], field = 'paths'): Promise<void> {
    const { sorted } = await this.load(backup);
    const missing = paths.flatMap((p, i) => (containsPath(sorted, p) ? [] : [{ path: `${field}.${i}`, message: `${p} is not in backup ${backup.id}` }]));
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
    if (hit) return (await hit).index;
    return readIndexHead(openIndexObject(this.ring(), backup, await this.get(backup.indexKey, 'index')));
  }

  /** The frame opener of an encrypted backup's archive (undefined when it is not encrypted). */
  private opener(backup: Backup, index: ArchiveIndexHead): Promise<FrameOpener | undefined> {
    if (!index.encryption) return Promise.resolve(undefined);
    if (!this.records) throw new CairnError('internal', 'the backup files service has no records to find data keys');
    return frameOpenerFor(this.ring(), this.records.backups, backup, index);
  }

  private load(backup: Backup): Promise<LoadedIndex> {
    requireCompleted(backup, 'browsed');
    const hit = this.cache.get(backup.id);
    if (hit) {
      this.cache.delete(backup.id);
      this.cache.set(backup.id, hit);
      return hit;
    }
    const loading = this.fetchIndex(backup).then(
      (loaded) => {
        this.sizes.set(backup.id, loaded.sorted.length);
        this.evict();
        return loaded;
      },
      (err: unknown) => {
        this.cache.delete(backup.id);
        throw err;
      },
    );
    this.cache.set(backup.id, loading);
    return loading;
  }

  private async fetchIndex(backup: Backup): Promise<LoadedIndex> {
    const raw = await buffer(openIndexObject(this.ring(), backup, await this.get(backup.indexKey, 'index')));
    // decodeIndex gunzips and checks the structure (CairnError 'archive-corrupt' when it cannot).
    const index = decodeIndex(raw);
    const sorted = [...index.entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    this.logger.debug({ backupId: backup.id, entries: sorted.length }, 'index loaded');
    return { index, sorted };
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

  private evict(): void {
    let total = [...this.sizes.values()].reduce((a, b) => a + b, 0);
    for (const id of this.cache.keys()) {
      if (this.cache.size <= this.cacheIndexes && total <= this.cacheEntries) break;
      if (!this.sizes.has(id)) continue; // still loading
      if (this.cache.size === 1) break; // always keep the index just used
      total -= this.sizes.get(id)!;
      this.sizes.delete(id);
      this.cache.delete(id);
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

/** First index whose path is >= key. */
function lowerBound(sorted: ArchiveEntry[], key: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]!.path < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index whose path is > key. */
function upperBound(sorted: ArchiveEntry[], key: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]!.path <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The path is an entry, or a directory some entry lies below. */
function containsPath(sorted: ArchiveEntry[], path: string): boolean {
  if (sorted[lowerBound(sorted, path)]?.path === path) return true;
  return sorted[lowerBound(sorted, `${path}/`)]?.path.startsWith(`${path}/`) ?? false;
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
