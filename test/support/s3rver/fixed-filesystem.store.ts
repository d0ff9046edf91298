import { createHash } from 'node:crypto';
import fsp, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorCode, isGone, MANIFEST, type Manifest, manifestSize, openObjectData, replaceObject, statObjectData, tempName } from './object-data.ts';
import { FilesystemStore, S3Error, S3Object, type S3ObjectInstance } from './s3rver-internals.ts';

const OBJECT_SUFFIX = '._S3rver_object';
const UPLOADS_DIR = '._S3rver_uploads';
const READ_CHUNK = 1024 * 1024;

export interface ListKeysOptions {
  prefix?: string;
  delimiter?: string;
  /** List entries after this key (or after everything under this common prefix). */
  startAfter?: string;
  startAfterIsPrefix?: boolean;
  maxKeys: number;
}

export type ListEntry = { key: string; metadata: Record<string, string> } | { commonPrefix: string };

export interface MultipartUploadInfo {
  key: string;
  uploadId: string;
  initiated: Date;
}

/** S3 orders keys by their UTF-8 bytes, which is not JavaScript's UTF-16 order. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function ignoreMissing(err: unknown): void {
  if (errorCode(err) !== 'ENOENT') throw err;
}

function noSuchUpload(uploadId: string): Error {
  return new S3Error('NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.', {
    UploadId: uploadId,
  });
}

/** Creates `file` exclusively, recreating its directory if a concurrent delete just removed it. */
async function openExclusive(file: string, createDir: boolean): Promise<FileHandle> {
  for (let attempt = 0; ; attempt++) {
    if (createDir) await fsp.mkdir(path.dirname(file), { recursive: true });
    try {
      return await fsp.open(file, 'wx');
    } catch (err) {
      if (!createDir || errorCode(err) !== 'ENOENT' || attempt >= 5) throw err;
    }
  }
}

function md5Counter(): { transform: Transform; result(): { size: number; md5: string } } {
  const hash = createHash('md5');
  let size = 0;
  const transform = new Transform({
    transform(chunk: Buffer, _enc, callback) {
      hash.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  return { transform, result: () => ({ size, md5: hash.digest('hex') }) };
}

/**
 * s3rver's filesystem store with the storage-side fixes: keys listed in S3 order with correct
 * pagination, atomic object and part writes whose stream errors propagate (the original pipes
 * without error handling and hangs or leaves partial files), `bytes=0-0` ranges, multipart
 * uploads that can be listed, aborted and validated, and deletes that tolerate concurrency.
 */
export class FixedFilesystemStore extends FilesystemStore {
  private objectPath(bucket: string, key: string): string {
    const file = this.getResourcePath(bucket, key, 'object');
    const bucketPath = this.getBucketPath(bucket);
    // s3rver joins the key into a path; keys with `..` segments would escape the bucket.
    if (!file.startsWith(bucketPath + path.sep)) {
      throw new S3Error('InvalidArgument', 'Keys with ".." segments that leave the bucket are not supported by this server.', { Key: key });
    }
    // A completed multipart object is a directory named like an object file (object-data.ts).
    if (key.includes(`${OBJECT_SUFFIX}/`)) {
      throw new S3Error('InvalidArgument', `Keys containing "${OBJECT_SUFFIX}/" are not supported by this server.`, { Key: key });
    }
    return file;
  }

  private uploadDir(bucket: string, uploadId: string): string {
    if (!/^[A-Za-z0-9_-]{1,128}$/.test(uploadId)) throw noSuchUpload(uploadId);
    return path.join(this.getBucketPath(bucket), UPLOADS_DIR, uploadId);
  }

  // ---- listing -------------------------------------------------------------------------------

  /** Keys (and common prefixes) in S3 order, at most `maxKeys` entries in all. */
  async listKeys(bucket: string, options: ListKeysOptions): Promise<{ entries: ListEntry[]; isTruncated: boolean }> {
    const { prefix = '', delimiter = '', maxKeys } = options;
    const entries: ListEntry[] = [];
    if (maxKeys <= 0) return { entries, isTruncated: false };
    const skip = { prefix: options.startAfterIsPrefix && options.startAfter ? options.startAfter : null };
    const startDir = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    let isTruncated = false;
    const keys: string[] = [];
    for await (const key of this.walkKeys(bucket, startDir, { prefix, startAfter: options.startAfter ?? '', skip })) {
      if (entries.length >= maxKeys) {
        isTruncated = true;
        break;
      }
      if (delimiter) {
        const idx = key.indexOf(delimiter, prefix.length);
        if (idx !== -1) {
          const commonPrefix = key.slice(0, idx + delimiter.length);
          entries.push({ commonPrefix });
          // Everything else under it collapses into this entry: the walk skips it.
          skip.prefix = commonPrefix;
          continue;
        }
      }
      entries.push({ key, metadata: {} });
      keys.push(key);
    }
    const metadata = await Promise.all(
      keys.map((key) =>
        this.getMetadata(bucket, key).catch((err: unknown) => {
          ignoreMissing(err);
          return null;
        }),
      ),
    );
    const byKey = new Map(keys.map((key, i) => [key, metadata[i]]));
    const present = entries.filter((e) => 'commonPrefix' in e || byKey.get(e.key));
    for (const e of present) if ('key' in e) e.metadata = byKey.get(e.key)!;
    return { entries: present, isTruncated };
  }

  /**
   * Depth-first walk yielding keys in S3 order: each directory's entries are sorted by the key
   * text they stand for (`name/` for a directory, the bare key for an object), and directories
   * that cannot hold a wanted key are not entered.
   */
  private async *walkKeys(
    bucket: string,
    dirKey: string,
    filter: { prefix: string; startAfter: string; skip: { prefix: string | null } },
  ): AsyncGenerator<string> {
    const dirPath = path.join(this.getBucketPath(bucket), dirKey);
    let dirents: import('node:fs').Dirent[];
    try {
      dirents = await fsp.readdir(dirPath, { withFileTypes: true });
    } catch (err) {
      if (isGone(err)) return;
      throw err;
    }
    const items: { token: Buffer; text: string; name: string; dir: boolean }[] = [];
    for (const d of dirents) {
      if ((d.isFile() || d.isDirectory()) && d.name.endsWith(OBJECT_SUFFIX)) {
        const text = d.name.slice(0, -OBJECT_SUFFIX.length);
        items.push({ token: Buffer.from(text), text, name: d.name, dir: false });
      } else if (d.isDirectory()) {
        if (dirKey === '' && d.name === UPLOADS_DIR) continue;
        items.push({ token: Buffer.from(`${d.name}/`), text: `${d.name}/`, name: d.name, dir: true });
      }
    }
    items.sort((a, b) => Buffer.compare(a.token, b.token));
    const { prefix, startAfter, skip } = filter;
    for (const item of items) {
      const full = dirKey + item.text;
      if (item.dir) {
        if (!full.startsWith(prefix) && !prefix.startsWith(full)) continue;
        // Every key under `full` sorts before startAfter unless startAfter lies inside it.
        if (startAfter && !startAfter.startsWith(full) && compareKeys(full, startAfter) < 0) continue;
        if (skip.prefix && full.startsWith(skip.prefix)) continue;
        yield* this.walkKeys(bucket, full, filter);
      } else {
        if (!full.startsWith(prefix)) continue;
        if (startAfter && compareKeys(full, startAfter) <= 0) continue;
        if (skip.prefix && full.startsWith(skip.prefix)) continue;
        yield full;
      }
    }
  }

  /** s3rver's own listing entry point (ListObjects v1, DeleteBucket), now in S3 order. */
  async listObjects(
    bucket: string,
    options: { delimiter?: string; startAfter?: string; prefix?: string; maxKeys?: number },
  ): Promise<{ objects: S3ObjectInstance[]; commonPrefixes: string[]; isTruncated: boolean }> {
    const listOptions: ListKeysOptions = { maxKeys: Math.min(options.maxKeys ?? 1000, 1000) };
    if (options.prefix) listOptions.prefix = options.prefix;
    if (options.delimiter) listOptions.delimiter = options.delimiter;
    if (options.startAfter) listOptions.startAfter = options.startAfter;
    const { entries, isTruncated } = await this.listKeys(bucket, listOptions);
    return {
      objects: entries.flatMap((e) => ('key' in e ? [new S3Object(bucket, e.key, null, e.metadata)] : [])),
      commonPrefixes: entries.flatMap((e) => ('commonPrefix' in e ? [e.commonPrefix] : [])),
      isTruncated,
    };
  }

  // ---- objects -------------------------------------------------------------------------------

  /** s3rver's, for both forms of object data; throws ENOENT when the object does not exist. */
  override async getMetadata(bucket: string, key: string): Promise<Record<string, string>> {
    const objectPath = this.objectPath(bucket, key);
    return this.readMetadata(bucket, key, objectPath, await statObjectData(objectPath));
  }

  private async readMetadata(bucket: string, key: string, objectPath: string, stat: { size: number; mtime: Date }): Promise<Record<string, string>> {
    const stored = await fsp
      .readFile(this.getResourcePath(bucket, key, 'metadata.json'), 'utf8')
      .then((text) => JSON.parse(text) as Record<string, string>)
      .catch((err: unknown) => {
        ignoreMissing(err);
        return {};
      });
    let md5: string;
    try {
      md5 = await fsp.readFile(`${objectPath}.md5`, 'utf8');
    } catch (err) {
      ignoreMissing(err);
      // Objects written by other tools have no md5 file yet; s3rver computes it lazily too.
      const hash = createHash('md5');
      const data = await openObjectData(objectPath);
      if (!data) throw Object.assign(new Error(`no object at ${objectPath}`), { code: 'ENOENT' });
      for await (const chunk of await data.read(0, data.size - 1, READ_CHUNK)) hash.update(chunk as Buffer);
      md5 = hash.digest('hex');
      await fsp.writeFile(`${objectPath}.md5`, md5).catch(() => undefined);
    }
    return { ...stored, etag: JSON.stringify(md5), 'last-modified': stat.mtime.toUTCString(), 'content-length': String(stat.size) };
  }

  async getObject(bucket: string, key: string, options?: { start?: number; end?: number }): Promise<S3ObjectInstance | null> {
    const objectPath = this.objectPath(bucket, key);
    // Size and content come from the same open files, so a concurrent overwrite cannot mix them.
    const data = await openObjectData(objectPath);
    if (!data) return null;
    try {
      const metadata = await this.readMetadata(bucket, key, objectPath, data);
      const wantsRange = options !== undefined && (options.start !== undefined || options.end !== undefined);
      if (wantsRange) {
        const start = options.start ?? 0;
        // The original treats `end: 0` as "no end" and returns the whole object for bytes=0-0.
        const end = Math.min(options.end ?? Infinity, data.size - 1);
        const object = new S3Object(bucket, key, null, metadata);
        object.range = { start, end };
        // Unsatisfiable (including any range of an empty object): no content means InvalidRange.
        if (!(start >= 0) || !(start <= end)) {
          await data.close();
          return object;
        }
        object.content = await data.read(start, end, READ_CHUNK);
        return object;
      }
      return new S3Object(bucket, key, await data.read(0, data.size - 1, READ_CHUNK), metadata);
    } catch (err) {
      await data.close().catch(() => undefined);
      // Deleted or replaced between its manifest and its parts: the read missed it.
      if (isGone(err)) return null;
      throw err;
    }
  }

  /** Streams `source` into a temporary file beside `finalPath`, then renames it into place. */
  private async writeAtomically(finalPath: string, source: Readable, createDir: boolean): Promise<{ size: number; md5: string }> {
    const tmp = tempName(finalPath);
    const handle = await openExclusive(tmp, createDir);
    const counter = md5Counter();
    try {
      await pipeline(source, counter.transform, handle.createWriteStream({ highWaterMark: READ_CHUNK }));
      await replaceObject(tmp, finalPath);
      return counter.result();
    } catch (err) {
      await handle.close().catch(() => undefined);
      await fsp.unlink(tmp).catch(() => undefined);
      // A failed request body must not linger half-read; drain it so the connection stays usable.
      if (!source.destroyed) source.resume();
      throw err;
    }
  }

  async putObject(object: S3ObjectInstance): Promise<{ size: number; md5: string }> {
    const finalPath = this.objectPath(object.bucket, object.key);
    const content = object.content ?? Buffer.alloc(0);
    const source = Buffer.isBuffer(content) ? Readable.from([content]) : content;
    const result = await this.writeAtomically(finalPath, source, true);
    await this.putMetadata(object.bucket, object.key, object.metadata, result.md5);
    return result;
  }

  async deleteObject(bucket: string, key: string): Promise<void> {
    const objectPath = this.objectPath(bucket, key);
    await Promise.all(
      [`${objectPath}.md5`, this.getResourcePath(bucket, key, 'metadata.json'), this.getResourcePath(bucket, key, 'tagging.xml')]
        .map((file) => fsp.unlink(file).catch(ignoreMissing))
        // The object itself may be a directory (a completed multipart upload).
        .concat(fsp.rm(objectPath, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 })),
    );
    // Remove directories left empty; concurrent deletes and puts in the same directory are normal.
    const bucketPath = this.getBucketPath(bucket);
    let dir = path.dirname(objectPath);
    while (dir.startsWith(bucketPath + path.sep)) {
      try {
        await fsp.rmdir(dir);
      } catch (err) {
        if (['ENOTEMPTY', 'EEXIST', 'ENOENT', 'EBUSY'].includes(errorCode(err) ?? '')) break;
        throw err;
      }
      dir = path.dirname(dir);
    }
  }

  // ---- multipart uploads ---------------------------------------------------------------------

  async initiateUpload(bucket: string, key: string, uploadId: string, metadata: Record<string, unknown>): Promise<void> {
    this.objectPath(bucket, key);
    const dir = this.uploadDir(bucket, uploadId);
    await fsp.mkdir(dir, { recursive: true });
    await fsp.writeFile(path.join(dir, 'metadata'), JSON.stringify(metadata));
    await fsp.writeFile(path.join(dir, 'initiated'), new Date().toISOString());
    // Written last: an upload exists (for list, part, complete, abort) once its key file does.
    await fsp.writeFile(path.join(dir, 'key'), key);
  }

  async getUpload(bucket: string, uploadId: string): Promise<MultipartUploadInfo | null> {
    const dir = this.uploadDir(bucket, uploadId);
    try {
      const key = await fsp.readFile(path.join(dir, 'key'), 'utf8');
      const initiated = await fsp
        .readFile(path.join(dir, 'initiated'), 'utf8')
        .then((text) => new Date(text))
        .catch(async () => (await fsp.stat(path.join(dir, 'key'))).mtime);
      return { key, uploadId, initiated };
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return null;
      throw err;
    }
  }

  async listUploads(bucket: string): Promise<MultipartUploadInfo[]> {
    let ids: string[];
    try {
      ids = await fsp.readdir(path.join(this.getBucketPath(bucket), UPLOADS_DIR));
    } catch (err) {
      ignoreMissing(err);
      return [];
    }
    const uploads = await Promise.all(ids.filter((id) => /^[A-Za-z0-9_-]{1,128}$/.test(id)).map((id) => this.getUpload(bucket, id)));
    return uploads.filter((u): u is MultipartUploadInfo => u !== null);
  }

  /** Removes the upload and its parts; false when there was no such upload. */
  async abortUpload(bucket: string, uploadId: string): Promise<boolean> {
    if (!(await this.getUpload(bucket, uploadId))) return false;
    await fsp.rm(this.uploadDir(bucket, uploadId), { recursive: true, force: true, maxRetries: 5, retryDelay: 20 });
    return true;
  }

  async putPart(bucket: string, uploadId: string, partNumber: string | number, content: Readable): Promise<{ size: number; md5: string }> {
    const n = Number(partNumber);
    if (!Number.isInteger(n) || n < 1 || n > 10000) {
      throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive', {
        ArgumentName: 'partNumber',
        ArgumentValue: String(partNumber),
      });
    }
    if (!(await this.getUpload(bucket, uploadId))) {
      content.resume();
      throw noSuchUpload(uploadId);
    }
    const partPath = path.join(this.uploadDir(bucket, uploadId), String(n));
    try {
      // No mkdir: a part must not resurrect an upload that was aborted meanwhile.
      const result = await this.writeAtomically(partPath, content, false);
      await fsp.writeFile(`${partPath}.md5`, result.md5);
      return result;
    } catch (err) {
      if (errorCode(err) === 'ENOENT') throw noSuchUpload(uploadId);
      throw err;
    }
  }

  /**
   * Makes the object out of the listed parts without copying their bytes: they move into a
   * directory with a manifest, which takes the key's place (object-data.ts). If that fails, the
   * parts go back, so the completion can be retried.
   */
  private async assembleByReference(objectPath: string, uploadDir: string, parts: { number: number }[]): Promise<number> {
    const manifest: Manifest = { parts: [] };
    for (const part of parts) manifest.parts.push({ file: String(part.number), size: (await fsp.stat(path.join(uploadDir, String(part.number)))).size });
    const tmp = tempName(objectPath);
    await fsp.mkdir(path.dirname(objectPath), { recursive: true });
    await fsp.mkdir(tmp);
    const moved: string[] = [];
    try {
      for (const { file } of manifest.parts) {
        await fsp.rename(path.join(uploadDir, file), path.join(tmp, file));
        moved.push(file);
      }
      await fsp.writeFile(path.join(tmp, MANIFEST), JSON.stringify(manifest));
      await replaceObject(tmp, objectPath);
    } catch (err) {
      for (const file of moved) await fsp.rename(path.join(tmp, file), path.join(uploadDir, file)).catch(() => undefined);
      await fsp.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
      throw err;
    }
    return manifestSize(manifest);
  }

  /** s3rver's copies the object file; an object can be a directory now, so its bytes are streamed into a new file. */
  async copyObject(
    srcBucket: string,
    srcKey: string,
    destBucket: string,
    destKey: string,
    replacementMetadata?: Record<string, unknown>,
  ): Promise<Record<string, string>> {
    const srcPath = this.objectPath(srcBucket, srcKey);
    const destPath = this.objectPath(destBucket, destKey);
    if (srcPath !== destPath) {
      const data = await openObjectData(srcPath);
      if (!data) throw Object.assign(new Error(`no object at ${srcPath}`), { code: 'ENOENT' });
      const { md5 } = await this.writeAtomically(destPath, await data.read(0, data.size - 1, READ_CHUNK), true);
      const metadata = replacementMetadata ?? (await this.getMetadata(srcBucket, srcKey));
      await this.putMetadata(destBucket, destKey, metadata, md5);
    } else if (replacementMetadata) {
      await this.putMetadata(destBucket, destKey, replacementMetadata);
    }
    return this.getMetadata(destBucket, destKey);
  }

  async putObjectMultipart(bucket: string, uploadId: string, parts: { number: number; etag: string }[]): Promise<{ size: number; md5: string }> {
    const upload = await this.getUpload(bucket, uploadId);
    if (!upload) throw noSuchUpload(uploadId);
    const dir = this.uploadDir(bucket, uploadId);
    const metadata = JSON.parse(await fsp.readFile(path.join(dir, 'metadata'), 'utf8')) as Record<string, unknown>;
    const md5s: Buffer[] = [];
    let previous = 0;
    for (const part of parts) {
      if (!(part.number > previous))
        throw new S3Error('InvalidPartOrder', 'The list of parts was not in ascending order. Parts must be ordered by part number.');
      previous = part.number;
      const stored = await fsp.readFile(path.join(dir, `${part.number}.md5`), 'utf8').catch(() => null);
      if (stored === null || stored !== part.etag) {
        throw new S3Error(
          'InvalidPart',
          [
            'One or more of the specified parts could not be found. The part might not have been uploaded,',
            "or the specified entity tag might not have matched the part's entity tag.",
          ].join(' '),
          { UploadId: uploadId, PartNumber: part.number, ETag: part.etag },
        );
      }
      md5s.push(Buffer.from(stored, 'hex'));
    }
    const size = await this.assembleByReference(this.objectPath(bucket, upload.key), dir, parts);
    // S3's multipart ETag: md5 of the parts' binary md5s, then "-<part count>".
    const etag = `${createHash('md5').update(Buffer.concat(md5s)).digest('hex')}-${parts.length}`;
    await this.putMetadata(bucket, upload.key, metadata, etag);
    await fsp.rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 });
    return { size, md5: etag };
  }
}
