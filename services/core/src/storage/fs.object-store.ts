import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fsp, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { abortError, CairnError } from '../errors.ts';
import type { ObjectStoreSpec } from './store-spec.ts';
import {
  beforePut,
  listAllPages,
  assertValidKey,
  assertValidPrefix,
  assertValidRange,
  bindSignal,
  listLimit,
  resolveRange,
  type GetObjectOptions,
  type IncompleteUpload,
  type ListObjectsOptions,
  type ObjectInfo,
  type ObjectStore,
  type PutObjectOptions,
  compareObjectKeys,
  decodeListCursor,
  encodeListCursor,
} from './object-store.ts';

export interface FsObjectStoreOptions {
  /** Root directory; objects live at `<directory>/<key>`, uploads in progress in `.uploads/`. */
  directory: string;
}

/** Reserved top-level name: temporary files of uploads in progress. */
const UPLOADS = '.uploads';
const READ_CHUNK = 1024 * 1024;
const DELETE_CONCURRENCY = 16;

interface UploadMeta {
  key: string;
  initiated: string;
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

function isMissing(err: unknown): boolean {
  return ['ENOENT', 'ENOTDIR'].includes(errnoOf(err) ?? '');
}

async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the rename itself already happened.
  } finally {
    await handle.close();
  }
}

/**
 * An ObjectStore in a local directory, for single-host setups and tests. Writes are atomic: the
 * body goes to `.uploads/<id>.part` (its key recorded in `<id>.json`), is fsynced and renamed into
 * place, so readers never see partial objects and a crashed writer leaves an incomplete upload
 * that listIncompleteUploads reports. A key cannot be both an object and a "directory" of other
 * keys here (`a` and `a/b`); such a put fails with 'conflict'.
 */
export class FsObjectStore implements ObjectStore {
  readonly directory: string;
  readonly name: string;
  private readonly uploads: string;

  constructor(options: FsObjectStoreOptions) {
    if (!options.directory) throw new CairnError('config', 'filesystem object store needs a directory');
    this.directory = path.resolve(options.directory);
    this.uploads = path.join(this.directory, UPLOADS);
    this.name = `fs:${this.directory}`;
  }

  threadSpec(): ObjectStoreSpec {
    return { kind: 'fs', options: { directory: this.directory } };
  }

  /** Creates the directory (local stacks, tests); put creates it too. */
  async ensureDirectory(): Promise<void> {
    await fsp.mkdir(this.uploads, { recursive: true });
  }

  private pathOf(key: string): string {
    assertValidKey(key);
    if (key === UPLOADS || key.startsWith(`${UPLOADS}/`)) {
      throw new CairnError('validation', `invalid object key ${JSON.stringify(key)}: "${UPLOADS}" is reserved by the filesystem store`);
    }
    return path.join(this.directory, ...key.split('/'));
  }

  private fsError(err: unknown, what: string): unknown {
    if (err instanceof CairnError) return err;
    const code = errnoOf(err);
    if (!code) return err;
    if (code === 'ENAMETOOLONG') return new CairnError('validation', `${what} in ${this.name}: a key segment is too long for this filesystem`, { cause: err });
    if (code === 'ENOSPC' || code === 'EDQUOT') return new CairnError('insufficient-space', `${what} in ${this.name}: no space left`, { cause: err });
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'EIO') {
      return new CairnError('unavailable', `${what} in ${this.name} failed: ${(err as Error).message}`, { cause: err, permanent: false });
    }
    return new CairnError('internal', `${what} in ${this.name} failed: ${(err as Error).message}`, { cause: err });
  }

  async put(key: string, body: Readable | Buffer, opts: PutObjectOptions = {}): Promise<{ size: number }> {
    const { signal } = opts;
    const finalPath = beforePut(body, signal, () => this.pathOf(key));
    const uploadId = randomUUID();
    const metaPath = path.join(this.uploads, `${uploadId}.json`);
    const partPath = path.join(this.uploads, `${uploadId}.part`);
    let size = 0;
    try {
      await fsp.mkdir(this.uploads, { recursive: true });
      // The key is recorded first, so a crash at any later point leaves a listable upload.
      const meta: UploadMeta = { key, initiated: new Date().toISOString() };
      await fsp.writeFile(metaPath, JSON.stringify(meta), { flag: 'wx' });
      const counter = new Transform({
        transform(chunk: Buffer, _enc, callback) {
          size += chunk.length;
          callback(null, chunk);
        },
      });
      await pipeline(
        Buffer.isBuffer(body) ? Readable.from([body]) : body,
        counter,
        createWriteStream(partPath, { flags: 'wx', flush: true, highWaterMark: READ_CHUNK }),
        { signal },
      );
      await this.moveIntoPlace(key, partPath, finalPath);
      await fsyncDirectory(path.dirname(finalPath));
      await fsp.unlink(metaPath);
      return { size };
    } catch (err) {
      await fsp.rm(partPath, { force: true }).catch(() => undefined);
      await fsp.rm(metaPath, { force: true }).catch(() => undefined);
      if (!Buffer.isBuffer(body) && !body.destroyed) body.destroy();
      if (signal?.aborted) throw abortError(signal);
      throw this.fsError(err, `put of "${key}"`);
    }
  }

  private async moveIntoPlace(key: string, from: string, to: string): Promise<void> {
    const conflict = (err: unknown) =>
      new CairnError(
        'conflict',
        `key "${key}" conflicts with another object in ${this.name} (a key cannot be both an object and a prefix of other keys here)`,
        {
          cause: err,
        },
      );
    for (let attempt = 0; ; attempt++) {
      try {
        await fsp.mkdir(path.dirname(to), { recursive: true });
      } catch (err) {
        if (errnoOf(err) === 'ENOTDIR' || errnoOf(err) === 'EEXIST') throw conflict(err);
        throw err;
      }
      try {
        await fsp.rename(from, to);
        return;
      } catch (err) {
        const code = errnoOf(err);
        if (code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST') {
          // An empty directory left behind by a racing delete can go; one with objects cannot.
          if (
            attempt < 3 &&
            (await fsp.rmdir(to).then(
              () => true,
              () => false,
            ))
          )
            continue;
          throw conflict(err);
        }
        if (code === 'ENOENT') {
          if (
            !(await fsp.stat(from).then(
              () => true,
              () => false,
            ))
          ) {
            throw new CairnError('cancelled', `put of "${key}" in ${this.name} was aborted by abortIncompleteUpload`, { cause: err });
          }
          // A concurrent delete removed the (then empty) parent directory: recreate and retry.
          if (attempt < 5) continue;
        }
        throw err;
      }
    }
  }

  async get(key: string, opts: GetObjectOptions = {}): Promise<Readable> {
    const file = this.pathOf(key);
    const { range, signal } = opts;
    if (range) assertValidRange(range);
    if (signal?.aborted) throw abortError(signal);
    let handle: FileHandle;
    try {
      handle = await fsp.open(file, 'r');
    } catch (err) {
      if (isMissing(err) || errnoOf(err) === 'EISDIR') throw new CairnError('not-found', `object "${key}" not found in ${this.name}`, { cause: err });
      throw this.fsError(err, `get of "${key}"`);
    }
    try {
      // Size and bytes come from the same open file: a concurrent replace cannot mix them.
      const stat = await handle.stat();
      if (!stat.isFile()) throw new CairnError('not-found', `object "${key}" not found in ${this.name}`);
      if (!range && stat.size === 0) {
        await handle.close();
        return bindSignal(Readable.from([]), signal);
      }
      const { start, end } = range ? resolveRange(range, stat.size) : { start: 0, end: stat.size - 1 };
      return bindSignal(handle.createReadStream({ start, end, highWaterMark: READ_CHUNK }), signal);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw this.fsError(err, `get of "${key}"`);
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const file = this.pathOf(key);
    try {
      const stat = await fsp.stat(file);
      return stat.isFile() ? { key, size: stat.size, lastModified: stat.mtime } : null;
    } catch (err) {
      if (isMissing(err)) return null;
      throw this.fsError(err, `head of "${key}"`);
    }
  }

  async list(prefix: string, opts: ListObjectsOptions = {}): Promise<{ items: ObjectInfo[]; nextCursor: string | null }> {
    assertValidPrefix(prefix);
    const limit = listLimit(opts.limit);
    const after = opts.cursor ? decodeListCursor(opts.cursor) : '';
    const keys: string[] = [];
    let more = false;
    const startDir = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    try {
      for await (const key of this.walk(startDir, prefix, after)) {
        if (keys.length === limit) {
          more = true;
          break;
        }
        keys.push(key);
      }
    } catch (err) {
      throw this.fsError(err, `list of "${prefix}"`);
    }
    const infos = await Promise.all(keys.map((key) => this.head(key).catch(() => null)));
    // An object deleted between the walk and its stat is simply not listed.
    const items = infos.filter((i): i is ObjectInfo => i !== null);
    return { items, nextCursor: more && keys.length ? encodeListCursor(keys[keys.length - 1]!) : null };
  }

  /**
   * Keys under `dirKey` in key order: each directory's entries are sorted by the key text they
   * stand for (`name/` for a directory), and directories that cannot hold a wanted key are
   * skipped, so a page costs about its own size, not the whole tree.
   */
  private async *walk(dirKey: string, prefix: string, after: string): AsyncGenerator<string> {
    let dirents: import('node:fs').Dirent[];
    try {
      dirents = await fsp.readdir(path.join(this.directory, dirKey), { withFileTypes: true });
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    const entries = dirents
      .filter((d) => !(dirKey === '' && d.name === UPLOADS) && (d.isFile() || d.isDirectory()))
      .map((d) => {
        const text = d.isDirectory() ? `${d.name}/` : d.name;
        return { full: dirKey + text, dir: d.isDirectory(), sortKey: Buffer.from(text) };
      })
      .sort((a, b) => Buffer.compare(a.sortKey, b.sortKey));
    for (const { full, dir } of entries) {
      if (dir) {
        if (!full.startsWith(prefix) && !prefix.startsWith(full)) continue;
        // All keys under `full` sort before `after` unless `after` lies inside it.
        if (after && !after.startsWith(full) && compareObjectKeys(full, after) < 0) continue;
        yield* this.walk(full, prefix, after);
      } else if (full.startsWith(prefix) && (!after || compareObjectKeys(full, after) > 0)) {
        yield full;
      }
    }
  }

  listAll(prefix: string): AsyncIterable<ObjectInfo> {
    return listAllPages(this, prefix);
  }

  async delete(key: string): Promise<void> {
    const file = this.pathOf(key);
    try {
      await fsp.unlink(file);
    } catch (err) {
      // Missing, or a "directory" of other keys: either way there is no object `key`.
      if (isMissing(err) || errnoOf(err) === 'EISDIR') return;
      throw this.fsError(err, `delete of "${key}"`);
    }
    await this.removeEmptyParents(path.dirname(file));
  }

  private async removeEmptyParents(dir: string): Promise<void> {
    while (dir.startsWith(this.directory + path.sep)) {
      try {
        await fsp.rmdir(dir);
      } catch {
        return; // not empty (or gone already): a concurrent put or delete is fine
      }
      dir = path.dirname(dir);
    }
  }

  async deleteMany(keys: string[]): Promise<{ deleted: string[]; failed: { key: string; message: string }[] }> {
    const deleted: string[] = [];
    const failed: { key: string; message: string }[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(DELETE_CONCURRENCY, keys.length) }, async () => {
        while (next < keys.length) {
          const key = keys[next++]!;
          try {
            await this.delete(key);
            deleted.push(key);
          } catch (err) {
            failed.push({ key, message: err instanceof Error ? err.message : String(err) });
          }
        }
      }),
    );
    return { deleted, failed };
  }

  async listIncompleteUploads(prefix: string): Promise<IncompleteUpload[]> {
    assertValidPrefix(prefix);
    let names: string[];
    try {
      names = await fsp.readdir(this.uploads);
    } catch (err) {
      if (isMissing(err)) return [];
      throw this.fsError(err, 'listing incomplete uploads');
    }
    const uploads = await Promise.all(
      names
        .filter((n) => n.endsWith('.json'))
        .map(async (n): Promise<IncompleteUpload | null> => {
          const meta = await this.readMeta(n.slice(0, -'.json'.length));
          return meta?.key.startsWith(prefix) ? { key: meta.key, uploadId: n.slice(0, -'.json'.length), initiated: new Date(meta.initiated) } : null;
        }),
    );
    return uploads
      .filter((u): u is IncompleteUpload => u !== null)
      .sort((a, b) => compareObjectKeys(a.key, b.key) || a.initiated.getTime() - b.initiated.getTime());
  }

  private async readMeta(uploadId: string): Promise<UploadMeta | null> {
    try {
      const meta = JSON.parse(await fsp.readFile(path.join(this.uploads, `${uploadId}.json`), 'utf8')) as Partial<UploadMeta>;
      return typeof meta.key === 'string' && typeof meta.initiated === 'string' ? { key: meta.key, initiated: meta.initiated } : null;
    } catch {
      // Finished or aborted meanwhile, or torn by a crash mid-write.
      return null;
    }
  }

  async abortIncompleteUpload(key: string, uploadId: string): Promise<void> {
    assertValidKey(key);
    if (!/^[A-Za-z0-9-]{1,64}$/.test(uploadId)) throw new CairnError('validation', `invalid upload id ${JSON.stringify(uploadId)}`);
    const meta = await this.readMeta(uploadId);
    if (!meta || meta.key !== key) return;
    try {
      // Part first, record last: an interrupted abort still leaves a listable upload.
      await fsp.rm(path.join(this.uploads, `${uploadId}.part`), { force: true });
      await fsp.rm(path.join(this.uploads, `${uploadId}.json`), { force: true });
    } catch (err) {
      throw this.fsError(err, `abort of upload ${uploadId}`);
    }
  }

  async ping(): Promise<void> {
    try {
      const stat = await fsp.stat(this.directory);
      if (!stat.isDirectory()) throw new Error('not a directory');
      await fsp.access(this.directory, fsp.constants.W_OK);
    } catch (err) {
      throw new CairnError('unavailable', `object store ${this.name} is not usable: ${errnoOf(err) ?? (err as Error).message}`, {
        cause: err,
        permanent: false,
      });
    }
  }
}
