import type { IncomingMessage } from 'node:http';
import { BodyDecoder } from './aws-chunked.decoder.ts';
import { algorithmOfHeader, type ChecksumAlgorithm } from './checksums.ts';
import { compareKeys, type FixedFilesystemStore, type ListKeysOptions, type MultipartUploadInfo } from './fixed-filesystem.store.ts';
import {
  authentication,
  bucketExists,
  decodeXmlEntities,
  DUMMY_ACCOUNT,
  S3Error,
  xmlParser,
  type Next,
  type S3rverContext,
  type S3rverMiddleware,
} from './s3rver-internals.ts';

const XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';

interface Target {
  bucket: string;
  key?: string;
}

function header(ctx: S3rverContext, name: string): string | undefined {
  const value = ctx.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function queryParam(ctx: S3rverContext, name: string): string | undefined {
  const value = ctx.query[name];
  return Array.isArray(value) ? value[0] : value;
}

function parseTarget(pathname: string): Target | null {
  const m = /^\/([^/]+)(?:\/(.*))?$/.exec(pathname);
  if (!m) return null;
  try {
    const bucket = decodeURIComponent(m[1]!);
    return m[2] ? { bucket, key: decodeURIComponent(m[2]) } : { bucket };
  } catch {
    return null;
  }
}

function owner(): { ID: string | number; DisplayName: string } {
  return { ID: DUMMY_ACCOUNT.id, DisplayName: DUMMY_ACCOUNT.displayName };
}

/** Parses a max-keys style argument the way S3 validates it, capped at 1000. */
function parseMax(ctx: S3rverContext, name: string): number {
  const raw = queryParam(ctx, name);
  if (raw === undefined || raw === '') return 1000;
  const value = /^-?\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(value >= 0 && value <= 2147483647)) {
    throw new S3Error('InvalidArgument', `Argument ${name} must be an integer between 0 and 2147483647`, { ArgumentName: name, ArgumentValue: raw });
  }
  return Math.min(1000, value);
}

// ListObjectsV2 continuation tokens: the original encrypts them with DES, which Node >= 17
// refuses (500 on every second page). An opaque base64url JSON serves the same purpose.
function encodeToken(bucket: string, after: string, isPrefix: boolean): string {
  return Buffer.from(JSON.stringify({ v: 1, b: bucket, k: after, p: isPrefix })).toString('base64url');
}

function decodeToken(bucket: string, token: string): { after: string; isPrefix: boolean } {
  try {
    const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { v?: unknown; b?: unknown; k?: unknown; p?: unknown };
    if (parsed.v === 1 && parsed.b === bucket && typeof parsed.k === 'string') return { after: parsed.k, isPrefix: parsed.p === true };
  } catch {
    // fall through to the S3 error below
  }
  throw new S3Error('InvalidArgument', 'The continuation token provided is incorrect', { ArgumentName: 'continuation-token' });
}

async function listObjectsV2(ctx: S3rverContext, store: FixedFilesystemStore, { bucket }: Target): Promise<void> {
  if ('marker' in ctx.query) {
    throw new S3Error('InvalidArgument', 'Marker unsupported with REST.GET.BUCKET in list-type=2', { ArgumentName: 'marker' });
  }
  const maxKeys = parseMax(ctx, 'max-keys');
  const prefix = queryParam(ctx, 'prefix') ?? '';
  const delimiter = queryParam(ctx, 'delimiter') ?? '';
  const token = queryParam(ctx, 'continuation-token') || undefined;
  const startAfterParam = queryParam(ctx, 'start-after') || undefined;
  const options: ListKeysOptions = { prefix, delimiter, maxKeys };
  if (token) {
    const { after, isPrefix } = decodeToken(bucket, token);
    options.startAfter = after;
    options.startAfterIsPrefix = isPrefix;
  } else if (startAfterParam) {
    options.startAfter = startAfterParam;
  }
  const { entries, isTruncated } = await store.listKeys(bucket, options);
  const last = entries.at(-1);
  const fetchOwner = queryParam(ctx, 'fetch-owner') === 'true';
  ctx.body = {
    ListBucketResult: {
      '@': { xmlns: XMLNS },
      Name: bucket,
      Prefix: prefix,
      StartAfter: token ? undefined : startAfterParam,
      ContinuationToken: token,
      NextContinuationToken:
        isTruncated && last ? ('key' in last ? encodeToken(bucket, last.key, false) : encodeToken(bucket, last.commonPrefix, true)) : undefined,
      KeyCount: entries.length,
      MaxKeys: queryParam(ctx, 'max-keys') || 1000,
      Delimiter: delimiter || undefined,
      IsTruncated: isTruncated,
      Contents: entries.flatMap((e) =>
        'key' in e
          ? [
              {
                Key: e.key,
                LastModified: new Date(e.metadata['last-modified'] ?? 0).toISOString(),
                ETag: e.metadata['etag'],
                Size: Number(e.metadata['content-length'] ?? 0),
                Owner: fetchOwner ? owner() : undefined,
                StorageClass: 'STANDARD',
              },
            ]
          : [],
      ),
      CommonPrefixes: entries.flatMap((e) => ('commonPrefix' in e ? [{ Prefix: e.commonPrefix }] : [])),
    },
  };
}

async function listMultipartUploads(ctx: S3rverContext, store: FixedFilesystemStore, { bucket }: Target): Promise<void> {
  const maxUploads = parseMax(ctx, 'max-uploads');
  const prefix = queryParam(ctx, 'prefix') ?? '';
  const delimiter = queryParam(ctx, 'delimiter') ?? '';
  const keyMarker = queryParam(ctx, 'key-marker') ?? '';
  const uploadIdMarker = queryParam(ctx, 'upload-id-marker') ?? '';

  // Same key: oldest first, as S3 lists them.
  const all = (await store.listUploads(bucket))
    .filter((u) => u.key.startsWith(prefix))
    .sort((a, b) => compareKeys(a.key, b.key) || a.initiated.getTime() - b.initiated.getTime() || compareKeys(a.uploadId, b.uploadId));
  let remaining = all;
  if (keyMarker) {
    const at = uploadIdMarker ? all.findIndex((u) => u.key === keyMarker && u.uploadId === uploadIdMarker) : -1;
    if (at >= 0) remaining = all.slice(at + 1);
    else {
      const skipUnder = !uploadIdMarker && delimiter && keyMarker.endsWith(delimiter) ? keyMarker : null;
      remaining = all.filter((u) => {
        if (skipUnder && u.key.startsWith(skipUnder)) return false;
        const c = compareKeys(u.key, keyMarker);
        return c > 0 || (c === 0 && uploadIdMarker !== '' && compareKeys(u.uploadId, uploadIdMarker) > 0);
      });
    }
  }

  const entries: ({ upload: MultipartUploadInfo } | { commonPrefix: string })[] = [];
  let isTruncated = false;
  for (const upload of remaining) {
    const idx = delimiter ? upload.key.indexOf(delimiter, prefix.length) : -1;
    const commonPrefix = idx === -1 ? null : upload.key.slice(0, idx + delimiter.length);
    const lastEntry = entries.at(-1);
    if (commonPrefix && lastEntry && 'commonPrefix' in lastEntry && lastEntry.commonPrefix === commonPrefix) continue;
    if (entries.length >= maxUploads) {
      isTruncated = true;
      break;
    }
    entries.push(commonPrefix ? { commonPrefix } : { upload });
  }
  const last = entries.at(-1);
  ctx.body = {
    ListMultipartUploadsResult: {
      '@': { xmlns: XMLNS },
      Bucket: bucket,
      KeyMarker: keyMarker,
      UploadIdMarker: uploadIdMarker,
      NextKeyMarker: isTruncated && last ? ('upload' in last ? last.upload.key : last.commonPrefix) : undefined,
      NextUploadIdMarker: isTruncated && last && 'upload' in last ? last.upload.uploadId : undefined,
      Prefix: prefix || undefined,
      Delimiter: delimiter || undefined,
      MaxUploads: maxUploads,
      IsTruncated: isTruncated,
      Upload: entries.flatMap((e) =>
        'upload' in e
          ? [
              {
                Key: e.upload.key,
                UploadId: e.upload.uploadId,
                Initiator: owner(),
                Owner: owner(),
                StorageClass: 'STANDARD',
                Initiated: e.upload.initiated.toISOString(),
              },
            ]
          : [],
      ),
      CommonPrefixes: entries.flatMap((e) => ('commonPrefix' in e ? [{ Prefix: e.commonPrefix }] : [])),
    },
  };
}

async function abortMultipartUpload(ctx: S3rverContext, store: FixedFilesystemStore, { bucket, key }: Target): Promise<void> {
  const uploadId = queryParam(ctx, 'uploadId') ?? '';
  const upload = await store.getUpload(bucket, uploadId).catch(() => null);
  if (!upload || upload.key !== key || !(await store.abortUpload(bucket, uploadId))) {
    throw new S3Error('NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.', {
      UploadId: uploadId,
    });
  }
  ctx.status = 204;
}

async function readBody(ctx: S3rverContext): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of ctx.req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * DeleteObjects. The original parses numeric-looking keys ("0001") as numbers, deleting the
 * wrong object or failing, and ignores Quiet.
 */
async function deleteObjects(ctx: S3rverContext, store: FixedFilesystemStore, { bucket }: Target): Promise<void> {
  const xml = await readBody(ctx);
  const malformed = () => new S3Error('MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.');
  if (xmlParser.validate(xml) !== true) throw malformed();
  const parsed = xmlParser.parse(xml, { parseNodeValue: false, trimValues: false, tagValueProcessor: (v: string) => decodeXmlEntities(v) }) as {
    Delete?: { Object?: unknown; Quiet?: unknown };
  };
  const objects = ([] as unknown[]).concat(parsed.Delete?.Object ?? []);
  if (objects.length === 0 || objects.length > 1000) throw malformed();
  const keys = objects.map((o) => (o && typeof o === 'object' && 'Key' in o ? String((o as { Key: unknown }).Key) : ''));
  if (keys.some((k) => k === '')) throw malformed();
  const quiet = String(parsed.Delete?.Quiet ?? '').trim() === 'true';
  const deleted: { Key: string }[] = [];
  const errors: { Key: string; Code: string; Message: string }[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(16, keys.length) }, async () => {
      while (next < keys.length) {
        const key = keys[next++]!;
        try {
          await store.deleteObject(bucket, key);
          deleted.push({ Key: key });
        } catch (err) {
          errors.push({
            Key: key,
            Code: (err as { code?: string }).code === 'InvalidArgument' ? 'InvalidArgument' : 'InternalError',
            Message: String((err as Error).message),
          });
        }
      }
    }),
  );
  ctx.body = { DeleteResult: { '@': { xmlns: XMLNS }, Deleted: quiet ? undefined : deleted, Error: errors } };
}

/**
 * Fixes `bytes=-N`: the original reads it as `bytes=0-N` and returns the first N+1 bytes. It is
 * rewritten to the absolute range of the last N bytes before the original handles the GET.
 */
async function rewriteSuffixRange(ctx: S3rverContext, store: FixedFilesystemStore, { bucket, key }: Target): Promise<void> {
  const range = header(ctx, 'range');
  const m = range ? /^\s*bytes=-(\d+)\s*$/.exec(range) : null;
  if (!m || key === undefined) return;
  const metadata = await store.getMetadata(bucket, key).catch(() => null);
  if (!metadata) return; // the original answers NoSuchKey
  const size = Number(metadata['content-length']);
  const n = Number(m[1]);
  // No byte of an empty object can satisfy a range, as with S3.
  if (n === 0 || size === 0) {
    throw new S3Error('InvalidRange', 'The requested range is not satisfiable', { RangeRequested: range, ActualObjectSize: size });
  }
  ctx.headers['range'] = `bytes=${Math.max(0, size - n)}-${size - 1}`;
}

/**
 * Puts a decoder between the request and s3rver when the body is aws-chunked or carries
 * checksums: the original stores chunk markers inside the object and verifies nothing.
 */
function installBodyDecoder(ctx: S3rverContext): BodyDecoder | null {
  const sha = header(ctx, 'x-amz-content-sha256') ?? '';
  const encodings = (header(ctx, 'content-encoding') ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  const chunked = /^STREAMING-/i.test(sha) || encodings.includes('aws-chunked');
  const expected = new Map<ChecksumAlgorithm, string>();
  // On CompleteMultipartUpload these headers describe the assembled object, not the XML body.
  const describesObject = ctx.method === 'POST' && 'uploadId' in ctx.query;
  for (const name of describesObject ? [] : Object.keys(ctx.headers)) {
    const alg = algorithmOfHeader(name);
    const value = header(ctx, name);
    if (alg && value) expected.set(alg, value.trim());
  }
  if (/^[0-9a-f]{64}$/i.test(sha) && !expected.has('sha256')) expected.set('sha256', Buffer.from(sha, 'hex').toString('base64'));
  const md5 = header(ctx, 'content-md5');
  if (md5) expected.set('md5', md5.trim());
  const trailerAlgorithms = (header(ctx, 'x-amz-trailer') ?? '')
    .split(',')
    .map((name) => algorithmOfHeader(name))
    .filter((alg): alg is ChecksumAlgorithm => alg !== null);
  if (!chunked && expected.size === 0) return null;

  const decodedLengthHeader = header(ctx, 'x-amz-decoded-content-length');
  const decodedLength = decodedLengthHeader && /^\d+$/.test(decodedLengthHeader) ? Number(decodedLengthHeader) : undefined;
  if (chunked) {
    // Real S3 strips aws-chunked from the stored Content-Encoding and stores the decoded length.
    const rest = encodings.filter((e) => e !== 'aws-chunked');
    if (rest.length) ctx.headers['content-encoding'] = rest.join(', ');
    else delete ctx.headers['content-encoding'];
    if (decodedLength !== undefined) ctx.headers['content-length'] = String(decodedLength);
  }
  const decoder = new BodyDecoder({ chunked, expected, trailerAlgorithms, ...(decodedLength !== undefined ? { decodedLength } : {}) });
  const req = ctx.req as IncomingMessage;
  // A bad body fails the request with an S3 error; the rest of it is drained so that the
  // response can still be written on the same connection.
  decoder.on('error', () => {
    req.unpipe(decoder);
    req.resume();
  });
  req.on('error', (err) => decoder.destroy(err));
  req.pipe(decoder);
  ctx.req = decoder;
  return decoder;
}

async function handle(
  ctx: S3rverContext,
  target: Target,
  store: FixedFilesystemStore,
  handler: (ctx: S3rverContext, store: FixedFilesystemStore, target: Target) => Promise<void>,
): Promise<void> {
  ctx.params = { bucket: target.bucket, key: target.key };
  await authentication(ctx, async () => undefined);
  await bucketExists(ctx);
  await handler(ctx, store, target);
}

/** Runs before s3rver's router; answers what s3rver gets wrong and hands the rest on. */
export function fixesMiddleware(store: FixedFilesystemStore): S3rverMiddleware {
  return async function s3rverFixes(ctx: S3rverContext, next: Next): Promise<void> {
    const target = parseTarget(ctx.path);
    if (!target) return next();
    const method = ctx.method;
    const decoder = method === 'PUT' || method === 'POST' ? installBodyDecoder(ctx) : null;
    try {
      if (target.key === undefined) {
        if (method === 'GET' && queryParam(ctx, 'list-type') === '2') return await handle(ctx, target, store, listObjectsV2);
        if (method === 'GET' && 'uploads' in ctx.query) return await handle(ctx, target, store, listMultipartUploads);
        if (method === 'POST' && 'delete' in ctx.query) return await handle(ctx, target, store, deleteObjects);
        if (method === 'HEAD' && Object.keys(ctx.query).length === 0) {
          // The original lists up to 1000 objects (with their metadata) to answer HeadBucket.
          return await handle(ctx, target, store, async (c) => {
            c.status = 200;
          });
        }
      } else {
        if (method === 'DELETE' && 'uploadId' in ctx.query) return await handle(ctx, target, store, abortMultipartUpload);
        if (method === 'GET' || method === 'HEAD') await rewriteSuffixRange(ctx, store, target);
      }
      await next();
      if (decoder && method === 'PUT' && ctx.status < 300) {
        for (const [alg, value] of decoder.computed) if (alg !== 'md5') ctx.set(`x-amz-checksum-${alg}`, value);
      }
    } finally {
      // Nothing read the body (e.g. NoSuchBucket): drain it so the connection can be reused.
      if (decoder && !decoder.readableEnded && !decoder.destroyed) decoder.resume();
    }
  };
}
