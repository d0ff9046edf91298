import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
  type BucketLocationConstraint,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import { abortError, CairnError } from '../errors.ts';
import {
  beforePut,
  listAllPages,
  assertValidKey,
  assertValidPrefix,
  assertValidRange,
  bindSignal,
  listLimit,
  rangeHeader,
  rangeNotSatisfiable,
  type GetObjectOptions,
  type IncompleteUpload,
  type ListObjectsOptions,
  type ObjectInfo,
  type ObjectStore,
  type PutObjectOptions,
} from './object-store.ts';
import { ObjectUpload, PartBufferPool } from './s3-upload.ts';
import type { ObjectStoreSpec } from './store-spec.ts';

export interface S3ObjectStoreOptions {
  /** Omit for AWS; set for S3-compatible stores (MinIO, the test s3rver...). */
  endpoint?: string;
  region: string;
  bucket: string;
  /** Prepended to every key (a trailing `/` is implied). */
  prefix?: string;
  /** Both or neither; neither uses the SDK's default credential chain. */
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle?: boolean;
  /** 'WHEN_REQUIRED' for stores without flexible checksums. Default 'WHEN_SUPPORTED'. */
  checksumMode?: 'WHEN_SUPPORTED' | 'WHEN_REQUIRED';
  /** The first multipart parts' size in bytes, at least 5 MiB (parts grow: s3-upload.ts). Default 6 MiB. */
  partSize?: number;
  /**
   * Parts uploaded concurrently. Default 4. Memory use is about partSize × (queueSize + 1) for one
   * upload; uploads at once share max(queueSize + 1, 2 each) part buffers (PartBufferPool).
   */
  queueSize?: number;
  /** SDK attempts per request (retries of transient errors). Default 3. */
  maxAttempts?: number;
  /** A request whose response has not begun this long after it was sent fails (then is retried). Default 15 min. */
  requestTimeoutMs?: number;
  /** A connection with no traffic this long, mid-request or mid-download, fails (then is retried). Default 60 s. */
  socketTimeoutMs?: number;
}

const MIB = 1024 * 1024;
// 6 MiB: the least that still lets growing parts reach S3's 5 TiB object limit (s3-upload.ts).
const DEFAULT_PART_SIZE = 6 * MIB;
const DEFAULT_QUEUE_SIZE = 4;
const DELETE_BATCH = 1000;

const THROTTLING = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'TooManyRequestsException', 'RequestLimitExceeded', 'RequestThrottled']);
const TRANSIENT = new Set(['RequestTimeout', 'RequestTimeoutException', 'TimeoutError', 'InternalError', 'ServiceUnavailable', 'NetworkingError']);
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ERR_STREAM_PREMATURE_CLOSE',
]);
const ACCESS = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'AllAccessDisabled']);

interface SdkError {
  name?: string;
  message?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
  cause?: unknown;
}

function statusOf(err: unknown): number | undefined {
  return (err as SdkError | null)?.$metadata?.httpStatusCode;
}

function nameOf(err: unknown): string {
  return (err as SdkError | null)?.name ?? '';
}

function networkCode(err: unknown): string | undefined {
  for (let e = err as SdkError | undefined, depth = 0; e && depth < 4; e = e.cause as SdkError | undefined, depth++) {
    if (e.code && NETWORK_CODES.has(e.code)) return e.code;
  }
  return undefined;
}

/** What went wrong with one S3 request, for the `cairn_s3_request_errors_total` metric (a small, fixed set). */
export type S3ErrorKind = 'throttled' | 'server' | 'network' | 'access-denied' | 'not-found' | 'aborted' | 'client';

/** Sorts an SDK error (one attempt of one request) into an S3ErrorKind. */
export function s3ErrorKind(err: unknown): S3ErrorKind {
  const status = statusOf(err);
  const name = nameOf(err);
  if (name === 'AbortError') return 'aborted';
  if (networkCode(err)) return 'network';
  if (status === 429 || THROTTLING.has(name)) return 'throttled';
  if ((status !== undefined && status >= 500) || TRANSIENT.has(name)) return 'server';
  if (status === 403 || ACCESS.has(name)) return 'access-denied';
  if (status === 404 || name === 'NoSuchKey' || name === 'NotFound' || name === 'NoSuchBucket' || name === 'NoSuchUpload') return 'not-found';
  return status === undefined ? 'network' : 'client';
}

/** Told of every failed attempt of an S3 request: the operation (`PutObject`, `UploadPart`...) and the kind of error. */
export type S3RequestErrorListener = (error: { operation: string; kind: S3ErrorKind }) => void;

function stripQuotes(etag: string | undefined): string | undefined {
  return etag?.replace(/^"|"$/g, '');
}

/** The S3 client for these options (also usable by callers that need raw S3 access). */
export function createS3Client(options: S3ObjectStoreOptions): S3Client {
  if (Boolean(options.accessKeyId) !== Boolean(options.secretAccessKey)) {
    throw new CairnError('config', 'S3 access key id and secret access key must be given together');
  }
  const config: S3ClientConfig = {
    region: options.region,
    forcePathStyle: options.forcePathStyle ?? false,
    requestChecksumCalculation: options.checksumMode ?? 'WHEN_SUPPORTED',
    responseChecksumValidation: options.checksumMode ?? 'WHEN_SUPPORTED',
    maxAttempts: options.maxAttempts ?? 3,
    // Fail fast when nothing answers (readiness). A stalled transfer must end too, or it hangs its
    // job forever: a bound on the wait for a response (generous, parts can be large) and on a
    // silent connection, which also covers a download that stops mid-body.
    requestHandler: {
      connectionTimeout: 5000,
      requestTimeout: options.requestTimeoutMs ?? 15 * 60_000,
      throwOnRequestTimeout: true,
      socketTimeout: options.socketTimeoutMs ?? 60_000,
    },
  };
  if (options.endpoint) config.endpoint = options.endpoint;
  if (options.accessKeyId && options.secretAccessKey) {
    config.credentials = { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey };
  }
  return new S3Client(config);
}

export class S3ObjectStore implements ObjectStore {
  readonly bucket: string;
  readonly prefix: string;
  /** e.g. `s3://backups/cairn/ (http://127.0.0.1:4568)`, used in error messages. */
  readonly name: string;
  private readonly client: S3Client;
  private readonly ownsClient: boolean;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly parts: PartBufferPool;
  private readonly errorListeners: S3RequestErrorListener[] = [];
  private readonly options: S3ObjectStoreOptions;

  /** Builds its own client from `options` unless one is given (tests, shared clients). */
  constructor(options: S3ObjectStoreOptions, client?: S3Client) {
    if (!options.bucket) throw new CairnError('config', 'S3 bucket is required');
    this.partSize = options.partSize ?? DEFAULT_PART_SIZE;
    this.queueSize = options.queueSize ?? DEFAULT_QUEUE_SIZE;
    if (!Number.isInteger(this.partSize) || this.partSize < 5 * MIB)
      throw new CairnError('config', `S3 part size must be at least 5 MiB, got ${this.partSize}`);
    if (!Number.isInteger(this.queueSize) || this.queueSize < 1) throw new CairnError('config', `S3 queue size must be at least 1, got ${this.queueSize}`);
    this.parts = new PartBufferPool(this.partSize, this.queueSize);
    this.bucket = options.bucket;
    const trimmed = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.prefix = trimmed ? `${trimmed}/` : '';
    this.name = `s3://${this.bucket}/${this.prefix}${options.endpoint ? ` (${options.endpoint})` : ''}`;
    this.client = client ?? createS3Client(options);
    this.ownsClient = !client;
    this.options = options;
  }

  /** The options it was built from; none over a client given to it (that client's setup is not known). */
  threadSpec(): ObjectStoreSpec | undefined {
    return this.ownsClient ? { kind: 's3', options: this.options } : undefined;
  }

  /** A store over an existing client (not closed by close()). */
  static withClient(
    client: S3Client,
    options: Omit<S3ObjectStoreOptions, 'region' | 'accessKeyId' | 'secretAccessKey' | 'forcePathStyle' | 'checksumMode' | 'maxAttempts'>,
  ): S3ObjectStore {
    return new S3ObjectStore({ region: 'unused', ...options }, client);
  }

  private fullKey(key: string): string {
    assertValidKey(key);
    return this.prefix + key;
  }

  private relativeKey(fullKey: string): string {
    return fullKey.startsWith(this.prefix) ? fullKey.slice(this.prefix.length) : fullKey;
  }

  /** Maps an SDK error to a CairnError; 5xx, throttling and network problems are transient. */
  private toCairnError(err: unknown, what: string, signal?: AbortSignal): CairnError {
    if (err instanceof CairnError) return err;
    if (signal?.aborted) return abortError(signal);
    const status = statusOf(err);
    const name = nameOf(err);
    const message = `${what} at ${this.name} failed: ${name && name !== 'Error' ? `${name}: ` : ''}${(err as SdkError | null)?.message ?? String(err)}`;
    const details = { status, s3Code: name && name !== 'Error' ? name : undefined };
    if (name === 'NoSuchBucket')
      return new CairnError('unavailable', `${what}: bucket "${this.bucket}" does not exist at ${this.name}`, { cause: err, details, permanent: false });
    // A setting to fix (S3_BUCKET), not a fault of Cairn's.
    if (name === 'InvalidBucketName')
      return new CairnError('config', `${what}: "${this.bucket}" is not a valid bucket name at ${this.name} (S3_BUCKET): ${(err as SdkError).message ?? ''}`, {
        cause: err,
        details,
      });
    if (name === 'NoSuchKey' || name === 'NotFound' || name === 'NoSuchUpload' || status === 404)
      return new CairnError('not-found', message, { cause: err, details });
    if (name === 'InvalidRange' || status === 416)
      return new CairnError('validation', message, { cause: err, details: { ...details, reason: 'range-not-satisfiable' } });
    const code = networkCode(err);
    if (
      (status !== undefined && status >= 500) ||
      status === 429 ||
      status === 408 ||
      THROTTLING.has(name) ||
      TRANSIENT.has(name) ||
      code ||
      name === 'AbortError'
    ) {
      return new CairnError('unavailable', message, { cause: err, details: { ...details, networkCode: code }, permanent: false });
    }
    // Wrong or expired credentials can be fixed by an operator while jobs wait to retry.
    if (status === 403 || ACCESS.has(name)) return new CairnError('unavailable', message, { cause: err, details, permanent: false });
    return new CairnError('internal', message, { cause: err, details });
  }

  async put(key: string, body: Readable | Buffer, opts: PutObjectOptions = {}): Promise<{ size: number; etag?: string }> {
    const { signal } = opts;
    const fullKey = beforePut(body, signal, () => this.fullKey(key));
    const upload = new ObjectUpload({
      client: this.client,
      bucket: this.bucket,
      key: fullKey,
      ...(opts.contentType ? { contentType: opts.contentType } : {}),
      queueSize: this.queueSize,
      pool: this.parts,
    });
    let sourceError: unknown;
    if (!Buffer.isBuffer(body)) body.once('error', (err) => (sourceError ??= err));
    const onAbort = () => {
      upload.stop();
      if (!Buffer.isBuffer(body)) body.destroy(abortError(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const etag = await upload.run(body);
      return { size: upload.size, etag: stripQuotes(etag) };
    } catch (err) {
      if (!Buffer.isBuffer(body)) body.destroy();
      // A request that failed first explains the failure: the packer then only saw its output
      // close (and streamInto cancelled this put), which must not hide the store's own error.
      if (upload.failure !== undefined && !upload.stoppedFirst) throw this.toCairnError(upload.failure, `put of "${key}"`);
      if (signal?.aborted) throw abortError(signal);
      if (sourceError !== undefined) throw sourceError;
      throw this.toCairnError(err, `put of "${key}"`);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async get(key: string, opts: GetObjectOptions = {}): Promise<Readable> {
    const fullKey = this.fullKey(key);
    const { range, signal } = opts;
    if (range) assertValidRange(range);
    if (signal?.aborted) throw abortError(signal);
    try {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: fullKey, ...(range ? { Range: rangeHeader(range) } : {}) }),
        signal ? { abortSignal: signal } : {},
      );
      const body = out.Body;
      if (!(body instanceof Readable)) throw new CairnError('internal', `get of "${key}" at ${this.name}: the response has no stream body`);
      return bindSignal(body, signal);
    } catch (err) {
      const mapped = this.toCairnError(err, `get of "${key}"`, signal);
      if (range && mapped.code === 'validation') throw rangeNotSatisfiable(range);
      throw mapped;
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const fullKey = this.fullKey(key);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: fullKey }));
      return { key, size: out.ContentLength ?? 0, lastModified: out.LastModified ?? new Date(0), ...(out.ETag ? { etag: stripQuotes(out.ETag)! } : {}) };
    } catch (err) {
      const mapped = this.toCairnError(err, `head of "${key}"`);
      if (mapped.code === 'not-found') return null;
      throw mapped;
    }
  }

  async list(prefix: string, opts: ListObjectsOptions = {}): Promise<{ items: ObjectInfo[]; nextCursor: string | null }> {
    assertValidPrefix(prefix);
    const limit = listLimit(opts.limit);
    try {
      const out = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.prefix + prefix,
          MaxKeys: limit,
          ...(opts.cursor ? { ContinuationToken: opts.cursor } : {}),
        }),
      );
      const items = (out.Contents ?? []).map(
        (o): ObjectInfo => ({
          key: this.relativeKey(o.Key ?? ''),
          size: o.Size ?? 0,
          lastModified: o.LastModified ?? new Date(0),
          ...(o.ETag ? { etag: stripQuotes(o.ETag)! } : {}),
        }),
      );
      return { items, nextCursor: out.IsTruncated && out.NextContinuationToken ? out.NextContinuationToken : null };
    } catch (err) {
      if (opts.cursor && statusOf(err) === 400) throw new CairnError('validation', `invalid list cursor for ${this.name}`, { cause: err });
      throw this.toCairnError(err, `list of "${prefix}"`);
    }
  }

  listAll(prefix: string): AsyncIterable<ObjectInfo> {
    return listAllPages(this, prefix);
  }

  async delete(key: string): Promise<void> {
    const fullKey = this.fullKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: fullKey }));
    } catch (err) {
      const mapped = this.toCairnError(err, `delete of "${key}"`);
      if (mapped.code !== 'not-found' || nameOf(err) === 'NoSuchBucket') throw mapped;
    }
  }

  async deleteMany(keys: string[]): Promise<{ deleted: string[]; failed: { key: string; message: string }[] }> {
    const deleted: string[] = [];
    const failed: { key: string; message: string }[] = [];
    const valid: string[] = [];
    for (const key of keys) {
      try {
        assertValidKey(key);
        valid.push(key);
      } catch (err) {
        failed.push({ key, message: (err as Error).message });
      }
    }
    for (let i = 0; i < valid.length; i += DELETE_BATCH) {
      const batch = valid.slice(i, i + DELETE_BATCH);
      try {
        const out = await this.client.send(
          new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((key) => ({ Key: this.prefix + key })), Quiet: true } }),
        );
        const errors = new Map((out.Errors ?? []).map((e) => [this.relativeKey(e.Key ?? ''), `${e.Code ?? 'Error'}: ${e.Message ?? ''}`]));
        for (const key of batch) {
          const message = errors.get(key);
          if (message === undefined) deleted.push(key);
          else failed.push({ key, message });
        }
      } catch (err) {
        // A batch that failed as a whole is reported per key; the other batches still run.
        const message = this.toCairnError(err, 'batch delete').message;
        for (const key of batch) failed.push({ key, message });
      }
    }
    return { deleted, failed };
  }

  async listIncompleteUploads(prefix: string): Promise<IncompleteUpload[]> {
    assertValidPrefix(prefix);
    const uploads: IncompleteUpload[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    try {
      for (;;) {
        const out = await this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            ...(keyMarker ? { KeyMarker: keyMarker } : {}),
            ...(uploadIdMarker ? { UploadIdMarker: uploadIdMarker } : {}),
          }),
        );
        for (const u of out.Uploads ?? []) {
          if (u.Key && u.UploadId) uploads.push({ key: this.relativeKey(u.Key), uploadId: u.UploadId, initiated: u.Initiated ?? new Date(0) });
        }
        if (!out.IsTruncated || (!out.NextKeyMarker && !out.NextUploadIdMarker)) break;
        keyMarker = out.NextKeyMarker;
        uploadIdMarker = out.NextUploadIdMarker;
      }
    } catch (err) {
      throw this.toCairnError(err, `listing incomplete uploads under "${prefix}"`);
    }
    return uploads;
  }

  async abortIncompleteUpload(key: string, uploadId: string): Promise<void> {
    const fullKey = this.fullKey(key);
    if (!uploadId) throw new CairnError('validation', 'upload id is required');
    await this.abortIncompleteFullKey(fullKey, uploadId);
  }

  private async abortIncompleteFullKey(fullKey: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: fullKey, UploadId: uploadId }));
    } catch (err) {
      if (nameOf(err) === 'NoSuchUpload' || (statusOf(err) === 404 && nameOf(err) !== 'NoSuchBucket')) return;
      throw this.toCairnError(err, `abort of upload ${uploadId} of "${this.relativeKey(fullKey)}"`);
    }
  }

  async ping(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      const status = statusOf(err);
      const reason =
        status === 404 || nameOf(err) === 'NotFound' || nameOf(err) === 'NoSuchBucket'
          ? `bucket "${this.bucket}" does not exist`
          : (networkCode(err) ?? (nameOf(err) && nameOf(err) !== 'Error' ? nameOf(err) : ((err as Error).message ?? String(err))));
      throw new CairnError('unavailable', `object store ${this.name} is not reachable: ${reason}`, { cause: err, permanent: false });
    }
  }

  /** Creates the bucket unless it exists (local stacks and tests). */
  async ensureBucket(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      if (statusOf(err) !== 404 && nameOf(err) !== 'NotFound' && nameOf(err) !== 'NoSuchBucket') throw this.toCairnError(err, 'bucket check');
    }
    // Outside us-east-1, S3 wants the region stated when a bucket is created.
    const region = await this.client.config.region();
    try {
      await this.client.send(
        new CreateBucketCommand({
          Bucket: this.bucket,
          ...(region && region !== 'us-east-1' ? { CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint } } : {}),
        }),
      );
    } catch (err) {
      // Someone else created it meanwhile.
      if (nameOf(err) === 'BucketAlreadyOwnedByYou' || nameOf(err) === 'BucketAlreadyExists') return;
      throw this.toCairnError(err, `creation of bucket "${this.bucket}"`);
    }
  }

  /**
   * Calls `listener` for each failed attempt of every request of this store's client (metrics).
   * Added inside the SDK's retry step, so a request retried after a throttle counts each refusal.
   */
  onRequestError(listener: S3RequestErrorListener): void {
    this.errorListeners.push(listener);
    if (this.errorListeners.length > 1) return;
    const listeners = this.errorListeners;
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        try {
          return await next(args);
        } catch (err) {
          const error = { operation: String(context.commandName ?? 'unknown').replace(/Command$/, ''), kind: s3ErrorKind(err) };
          for (const l of listeners) l(error);
          throw err;
        }
      },
      { step: 'finalizeRequest', priority: 'low', name: 'cairnRequestErrors' },
    );
  }

  /** Reports a failed request made elsewhere for this store (the store thread's own client) to its listeners. */
  reportRequestError(error: Parameters<S3RequestErrorListener>[0]): void {
    for (const l of this.errorListeners) l(error);
  }

  /** Releases the client's sockets when this store created the client. */
  async close(): Promise<void> {
    if (this.ownsClient) this.client.destroy();
  }
}
