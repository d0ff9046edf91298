import type { Readable } from 'node:stream';
import { abortError, CairnError } from '../errors.ts';
import type { ObjectStoreSpec } from './store-spec.ts';

/** One failed request of a store's client, for metrics (an S3 store sorts them into kinds: s3ErrorKind). */
export interface StoreRequestError {
  operation: string;
  kind: string;
}

/** One stored object, its key relative to the store's prefix. */
export interface ObjectInfo {
  key: string;
  size: number;
  lastModified: Date;
  etag?: string;
}

/** Inclusive byte range, an open-ended one (`end` omitted) or the last `suffix` bytes. */
export type ByteRange = { start: number; end?: number } | { suffix: number };

export interface PutObjectOptions {
  contentType?: string;
  signal?: AbortSignal;
}

export interface GetObjectOptions {
  range?: ByteRange;
  signal?: AbortSignal;
}

export interface ListObjectsOptions {
  /** `nextCursor` of the previous page. */
  cursor?: string;
  /** Page size, 1–1000 (default and maximum 1000, like S3). */
  limit?: number;
}

export interface IncompleteUpload {
  key: string;
  uploadId: string;
  initiated: Date;
}

/**
 * Where archives and indexes live (S3 in production, a directory for local use and tests). Keys
 * are relative to the store's configured prefix. Every implementation passes the one contract
 * suite in test/contract/object-store.contract.ts.
 */
export interface ObjectStore {
  /**
   * Streams `body` into `key`, replacing any object there. On failure or abort the previous state
   * stays (no object, or the old one) and no incomplete upload remains; a stream body is
   * destroyed, and an error of the body itself is rethrown as is.
   */
  put(key: string, body: Readable | Buffer, opts?: PutObjectOptions): Promise<{ size: number; etag?: string }>;
  /** The object's bytes (or a range of them). Missing key: CairnError('not-found'). */
  get(key: string, opts?: GetObjectOptions): Promise<Readable>;
  /** null when there is no such object. */
  head(key: string): Promise<ObjectInfo | null>;
  /** One page of the objects whose key starts with `prefix`, in key order. */
  list(prefix: string, opts?: ListObjectsOptions): Promise<{ items: ObjectInfo[]; nextCursor: string | null }>;
  listAll(prefix: string): AsyncIterable<ObjectInfo>;
  /** Idempotent: deleting a missing key succeeds. */
  delete(key: string): Promise<void>;
  /** Idempotent per key; per-key problems are reported, not thrown. */
  deleteMany(keys: string[]): Promise<{ deleted: string[]; failed: { key: string; message: string }[] }>;
  /** Uploads started and never completed (crashed writers), for orphan sweeps. */
  listIncompleteUploads(prefix: string): Promise<IncompleteUpload[]>;
  /** Idempotent: an upload that no longer exists is not an error. */
  abortIncompleteUpload(key: string, uploadId: string): Promise<void>;
  /** Readiness: throws CairnError('unavailable') naming the store when it cannot be used. */
  ping(): Promise<void>;
  /** How a worker thread opens this same store (store-spec.ts); undefined when only this thread can use it. */
  threadSpec?(): ObjectStoreSpec | undefined;
  /** Calls `listener` for each failed request of the store's client (stores without a client have none). */
  onRequestError?(listener: (e: StoreRequestError) => void): void;
  /** Reports to those listeners a failed request made for this store elsewhere (the store thread's own client). */
  reportRequestError?(e: StoreRequestError): void;
}

export const MAX_KEY_BYTES = 1024;
export const MAX_LIST_LIMIT = 1000;

/**
 * Keys are `/`-separated relative paths: no leading or trailing `/`, no empty, `.` or `..`
 * segments, no control characters, at most 1024 UTF-8 bytes. The same rules for every store
 * keep a key valid wherever the data moves, and make filesystem paths safe.
 */
export function assertValidKey(key: string): void {
  const problem = keyProblem(key);
  if (problem) throw new CairnError('validation', `invalid object key ${JSON.stringify(key)}: ${problem}`, { details: { key } });
}

function keyProblem(key: unknown): string | null {
  if (typeof key !== 'string' || key.length === 0) return 'empty';
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) return `longer than ${MAX_KEY_BYTES} bytes`;
  if (/[\u0000-\u001f\u007f]/.test(key)) return 'contains control characters';
  if (key.startsWith('/')) return 'starts with "/"';
  if (key.endsWith('/')) return 'ends with "/"';
  for (const segment of key.split('/')) {
    if (segment === '') return 'contains an empty segment ("//")';
    if (segment === '.' || segment === '..') return `contains a "${segment}" segment`;
  }
  return null;
}

/** A list prefix may end anywhere (even mid-segment) but must not start with `/`. */
export function assertValidPrefix(prefix: string): void {
  if (typeof prefix !== 'string' || prefix.startsWith('/') || /[\u0000-\u001f\u007f]/.test(prefix)) {
    throw new CairnError('validation', `invalid key prefix ${JSON.stringify(prefix)}`, { details: { prefix } });
  }
}

export function listLimit(limit: number | undefined): number {
  if (limit === undefined) return MAX_LIST_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) throw new CairnError('validation', `list limit must be a positive integer, got ${limit}`);
  return Math.min(limit, MAX_LIST_LIMIT);
}

export function assertValidRange(range: ByteRange): void {
  const ok =
    'suffix' in range
      ? Number.isSafeInteger(range.suffix) && range.suffix > 0
      : Number.isSafeInteger(range.start) && range.start >= 0 && (range.end === undefined || (Number.isSafeInteger(range.end) && range.end >= range.start));
  if (!ok) throw new CairnError('validation', `invalid byte range ${JSON.stringify(range)}`, { details: { range } });
}

/** HTTP Range header value of a validated range. */
export function rangeHeader(range: ByteRange): string {
  if ('suffix' in range) return `bytes=-${range.suffix}`;
  return `bytes=${range.start}-${range.end ?? ''}`;
}

/**
 * Resolves a range against an object's size, as S3 does: the end is clamped to the last byte, a
 * suffix longer than the object means all of it, and a range starting past the end (or any
 * range on an empty object) is unsatisfiable.
 */
export function resolveRange(range: ByteRange, size: number): { start: number; end: number } {
  const start = 'suffix' in range ? Math.max(0, size - range.suffix) : range.start;
  const end = 'suffix' in range ? size - 1 : Math.min(range.end ?? size - 1, size - 1);
  if (size === 0 || start >= size) throw rangeNotSatisfiable(range, size);
  return { start, end };
}

export function rangeNotSatisfiable(range: ByteRange, size?: number): CairnError {
  return new CairnError(
    'validation',
    `byte range ${rangeHeader(range).slice(6)} is not satisfiable${size === undefined ? '' : ` for an object of ${size} bytes`}`,
    {
      details: { reason: 'range-not-satisfiable', range, size },
    },
  );
}

/** Destroys `stream` with CairnError('cancelled') when `signal` fires while it is open. */
export function bindSignal<T extends Readable>(stream: T, signal: AbortSignal | undefined): T {
  if (!signal) return stream;
  if (signal.aborted) {
    stream.destroy(abortError(signal));
    return stream;
  }
  const onAbort = () => stream.destroy(abortError(signal));
  signal.addEventListener('abort', onAbort, { once: true });
  stream.once('close', () => signal.removeEventListener('abort', onAbort));
  return stream;
}

/** Every object under `prefix`, walking `list` page by page (the one listAll of every store). */
export async function* listAllPages(store: Pick<ObjectStore, 'list'>, prefix: string): AsyncIterable<ObjectInfo> {
  let cursor: string | null = null;
  do {
    const page: { items: ObjectInfo[]; nextCursor: string | null } = await store.list(prefix, cursor ? { cursor } : {});
    yield* page.items;
    cursor = page.nextCursor;
  } while (cursor);
}

/**
 * The check every put starts with: resolve the key and honour an already-aborted signal; on
 * failure the body stream is released before the error is thrown, so no reader is left hanging.
 */
export function beforePut<T>(body: Readable | Buffer, signal: AbortSignal | undefined, resolveKey: () => T): T {
  try {
    const resolved = resolveKey();
    if (signal?.aborted) throw abortError(signal);
    return resolved;
  } catch (err) {
    if (!Buffer.isBuffer(body)) body.destroy();
    throw err;
  }
}

/**
 * Aborts every incomplete multipart upload under `prefix` (a backup's earlier attempt, a deleted
 * backup's upload in progress); returns the ones aborted. The one place this is done.
 */
export async function abortIncompleteUploads(
  store: Pick<ObjectStore, 'listIncompleteUploads' | 'abortIncompleteUpload'>,
  prefix: string,
): Promise<IncompleteUpload[]> {
  const uploads = await store.listIncompleteUploads(prefix);
  for (const upload of uploads) await store.abortIncompleteUpload(upload.key, upload.uploadId);
  return uploads;
}

/**
 * Removes everything stored under `prefix` (a backup's objects and any upload still open under
 * it); returns how many objects were deleted. Fails, transiently, when some could not be deleted:
 * running it again finishes the job. Used by the cleanup job and by an instance's removal.
 */
export async function deletePrefix(store: ObjectStore, prefix: string): Promise<number> {
  await abortIncompleteUploads(store, prefix);
  const keys: string[] = [];
  for await (const obj of store.listAll(prefix)) keys.push(obj.key);
  if (keys.length === 0) return 0;
  const { failed } = await store.deleteMany(keys);
  if (failed.length) throw new CairnError('unavailable', `could not delete ${failed.length} object(s): ${failed[0]!.message}`, { permanent: false });
  return keys.length;
}

/** S3 orders keys by UTF-8 bytes; plain string comparison would order by UTF-16 units. */
export function compareObjectKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** The list cursor of the stores that page themselves (filesystem, in-memory): the last key of the page, opaque to callers. */
export function encodeListCursor(lastKey: string): string {
  return Buffer.from(`1\n${lastKey}`).toString('base64url');
}

export function decodeListCursor(cursor: string): string {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!text.startsWith('1\n') || text.length < 3) throw new CairnError('validation', 'invalid list cursor');
  return text.slice(2);
}
