import { createHash, randomUUID } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { abortError, CairnError } from '../errors.ts';
import {
  assertValidKey,
  assertValidPrefix,
  assertValidRange,
  beforePut,
  bindSignal,
  listAllPages,
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

export interface MemoryObjectStoreOptions {
  /** Shown in error messages as `memory:<name>`. Default `store`. */
  name?: string;
}

/** Operations whose next call can be made to fail with {@link MemoryObjectStore.failNext}. */
export type MemoryStoreOperation = 'put' | 'get' | 'delete';

interface StoredObject {
  data: Buffer;
  lastModified: Date;
  etag: string;
}

interface Upload {
  key: string;
  initiated: Date;
  /** Fails the put that owns this upload; absent for uploads added by addIncompleteUpload. */
  cancel?: (err: CairnError) => void;
}

/** Chunk size of get streams, as the filesystem store reads, so aborts can land mid-read. */
const READ_CHUNK = 1024 * 1024;

/**
 * An ObjectStore held in process memory, intended to be used as a test fake in unit tests: it
 * behaves like the filesystem and S3 stores (the same contract suite runs against it) without a
 * disk or a server. A streamed put is an incomplete upload until its body ends, then the object
 * appears at once; readers get a snapshot, so a concurrent replace or delete never mixes versions.
 *
 * For tests only, beyond the interface: {@link failNext} injects a failure, {@link bytesRead}
 * counts the bytes get streams have delivered, {@link available} simulates an outage and
 * {@link addIncompleteUpload} leaves an upload like a crashed writer does.
 */
export class MemoryObjectStore implements ObjectStore {
  readonly name: string;
  /** Test aid: bytes delivered by get streams so far (ranges and reads stopped early count what was read). */
  bytesRead = 0;
  /** Test aid: when false, ping and every operation fail with 'unavailable' (not permanent), like an unreachable store. */
  available = true;
  private readonly objects = new Map<string, StoredObject>();
  private readonly uploads = new Map<string, Upload>();
  private readonly failures = new Map<MemoryStoreOperation, Error[]>();

  constructor(options: MemoryObjectStoreOptions = {}) {
    this.name = `memory:${options.name ?? 'store'}`;
  }

  /**
   * Test aid: the next call of `operation` with a valid key fails with `error` (default: a
   * transient 'unavailable' CairnError) and changes nothing. Calls queue up: two calls make the
   * next two operations fail. A failed put destroys a stream body without reading it.
   */
  failNext(operation: MemoryStoreOperation, error?: Error): void {
    const err = error ?? new CairnError('unavailable', `injected failure of ${operation} in ${this.name}`, { permanent: false });
    const queue = this.failures.get(operation) ?? [];
    queue.push(err);
    this.failures.set(operation, queue);
  }

  /**
   * Test aid: records an upload of `key` that no writer will ever complete (a crashed writer),
   * for orphan sweeps; it is listed by listIncompleteUploads until aborted. Returns its id.
   */
  addIncompleteUpload(key: string, initiated: Date = new Date()): string {
    assertValidKey(key);
    const uploadId = randomUUID();
    this.uploads.set(uploadId, { key, initiated: new Date(initiated) });
    return uploadId;
  }

  /** Availability first, then any injected failure: both before anything changes. */
  private checkUsable(operation: MemoryStoreOperation | null, what: string): void {
    if (!this.available) throw this.unavailable(what);
    const injected = operation ? this.failures.get(operation)?.shift() : undefined;
    if (injected) throw injected;
  }

  private unavailable(what: string): CairnError {
    return new CairnError('unavailable', `${what} in ${this.name} failed: the store is marked unavailable`, { permanent: false });
  }

  async put(key: string, body: Readable | Buffer, opts: PutObjectOptions = {}): Promise<{ size: number; etag: string }> {
    const { signal } = opts;
    beforePut(body, signal, () => assertValidKey(key));
    try {
      this.checkUsable('put', `put of "${key}"`);
    } catch (err) {
      if (!Buffer.isBuffer(body)) body.destroy();
      throw err;
    }
    if (Buffer.isBuffer(body)) return this.store(key, Buffer.from(body));

    const uploadId = randomUUID();
    const chunks: Buffer[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, callback) {
        chunks.push(chunk);
        // Yield like real I/O: a body that produces synchronously would otherwise starve timers (and aborts set by them).
        setImmediate(callback);
      },
    });
    this.uploads.set(uploadId, { key, initiated: new Date(), cancel: (err) => sink.destroy(err) });
    try {
      await pipeline(body, sink, signal ? { signal } : {});
      if (signal?.aborted) throw abortError(signal);
      // Aborted by a sweep after the body ended but before this continuation ran.
      if (!this.uploads.has(uploadId)) throw this.sweptError(key);
      return this.store(key, Buffer.concat(chunks));
    } catch (err) {
      if (!body.destroyed) body.destroy();
      if (signal?.aborted) throw abortError(signal);
      // A body error is rethrown as is; a sweep's abort arrives as the sink's CairnError.
      throw err;
    } finally {
      this.uploads.delete(uploadId);
    }
  }

  private sweptError(key: string): CairnError {
    return new CairnError('cancelled', `put of "${key}" in ${this.name} was aborted by abortIncompleteUpload`);
  }

  private store(key: string, data: Buffer): { size: number; etag: string } {
    const etag = createHash('md5').update(data).digest('hex');
    this.objects.set(key, { data, lastModified: new Date(), etag });
    return { size: data.length, etag };
  }

  async get(key: string, opts: GetObjectOptions = {}): Promise<Readable> {
    assertValidKey(key);
    const { range, signal } = opts;
    if (range) assertValidRange(range);
    if (signal?.aborted) throw abortError(signal);
    this.checkUsable('get', `get of "${key}"`);
    const object = this.objects.get(key);
    if (!object) throw new CairnError('not-found', `object "${key}" not found in ${this.name}`);
    const { start, end } = range ? resolveRange(range, object.data.length) : { start: 0, end: object.data.length - 1 };
    return bindSignal(this.readStream(object.data, start, end), signal);
  }

  /** Bytes `start`..`end` (inclusive) of a stored buffer, copied chunk by chunk so readers cannot alter the store. */
  private readStream(data: Buffer, start: number, end: number): Readable {
    let position = start;
    const counted = (chunk: Buffer) => {
      this.bytesRead += chunk.length;
      return chunk;
    };
    return new Readable({
      highWaterMark: READ_CHUNK,
      read() {
        if (position > end) {
          this.push(null);
          return;
        }
        const next = Math.min(position + READ_CHUNK, end + 1);
        const chunk = Buffer.from(data.subarray(position, next));
        position = next;
        this.push(counted(chunk));
      },
    });
  }

  async head(key: string): Promise<ObjectInfo | null> {
    assertValidKey(key);
    this.checkUsable(null, `head of "${key}"`);
    const object = this.objects.get(key);
    return object ? this.info(key, object) : null;
  }

  private info(key: string, object: StoredObject): ObjectInfo {
    return { key, size: object.data.length, lastModified: new Date(object.lastModified), etag: object.etag };
  }

  async list(prefix: string, opts: ListObjectsOptions = {}): Promise<{ items: ObjectInfo[]; nextCursor: string | null }> {
    assertValidPrefix(prefix);
    const limit = listLimit(opts.limit);
    const after = opts.cursor ? decodeListCursor(opts.cursor) : '';
    this.checkUsable(null, `list of "${prefix}"`);
    const keys = [...this.objects.keys()].filter((key) => key.startsWith(prefix) && (!after || compareObjectKeys(key, after) > 0)).sort(compareObjectKeys);
    const page = keys.slice(0, limit);
    const items = page.map((key) => this.info(key, this.objects.get(key)!));
    return { items, nextCursor: keys.length > limit ? encodeListCursor(page[page.length - 1]!) : null };
  }

  listAll(prefix: string): AsyncIterable<ObjectInfo> {
    return listAllPages(this, prefix);
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    this.checkUsable('delete', `delete of "${key}"`);
    this.objects.delete(key);
  }

  async deleteMany(keys: string[]): Promise<{ deleted: string[]; failed: { key: string; message: string }[] }> {
    const deleted: string[] = [];
    const failed: { key: string; message: string }[] = [];
    for (const key of keys) {
      try {
        await this.delete(key);
        deleted.push(key);
      } catch (err) {
        failed.push({ key, message: err instanceof Error ? err.message : String(err) });
      }
    }
    return { deleted, failed };
  }

  async listIncompleteUploads(prefix: string): Promise<IncompleteUpload[]> {
    assertValidPrefix(prefix);
    this.checkUsable(null, 'listing incomplete uploads');
    return [...this.uploads]
      .filter(([, upload]) => upload.key.startsWith(prefix))
      .map(([uploadId, { key, initiated }]) => ({ key, uploadId, initiated: new Date(initiated) }))
      .sort((a, b) => compareObjectKeys(a.key, b.key) || a.initiated.getTime() - b.initiated.getTime());
  }

  async abortIncompleteUpload(key: string, uploadId: string): Promise<void> {
    assertValidKey(key);
    if (!uploadId) throw new CairnError('validation', 'upload id is required');
    this.checkUsable(null, `abort of upload ${uploadId}`);
    const upload = this.uploads.get(uploadId);
    if (!upload || upload.key !== key) return;
    // Gone from listings at once; a put still running fails with 'cancelled', as on S3 and the filesystem.
    this.uploads.delete(uploadId);
    upload.cancel?.(this.sweptError(key));
  }

  async ping(): Promise<void> {
    if (!this.available) throw new CairnError('unavailable', `object store ${this.name} is not usable: marked unavailable`, { permanent: false });
  }
}
