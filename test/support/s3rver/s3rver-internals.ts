/**
 * Typed access to the parts of s3rver 3.7.1 (CommonJS, untyped) that the fixes build on. Its
 * own dependencies are loaded from its location so they match the versions it was written for.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';

const requireHere = createRequire(import.meta.url);
const s3rverRequire = createRequire(requireHere.resolve('s3rver/package.json'));

export type Next = () => Promise<void>;

/** The Koa 2 context as s3rver's controllers use it. */
export interface S3rverContext {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  headers: Record<string, string | string[] | undefined>;
  /** The request body as the controllers read it; replaced by a decoder for aws-chunked bodies. */
  req: IncomingMessage | Readable;
  request: { req: IncomingMessage };
  res: ServerResponse;
  status: number;
  body: unknown;
  type: string;
  params: Record<string, string | undefined>;
  state: Record<string, unknown>;
  store: S3rverStore;
  app: { store: S3rverStore };
  get(header: string): string;
  set(header: string, value: string): void;
  set(headers: Record<string, string>): void;
}

export type S3rverMiddleware = (ctx: S3rverContext, next: Next) => Promise<void> | void;

export interface S3ObjectInstance {
  bucket: string;
  key: string;
  content: Readable | Buffer | null;
  metadata: Record<string, string>;
  range?: { start: number; end: number };
  readonly size: number;
  readonly lastModifiedDate: Date;
}
export type S3ObjectCtor = new (bucket: string, key: string, content: Readable | Buffer | null, metadata: Record<string, unknown>) => S3ObjectInstance;

export interface S3rverStore {
  rootDirectory: string;
  getBucketPath(bucket: string): string;
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  getMetadata(bucket: string, key: string): Promise<Record<string, string>>;
  putMetadata(bucket: string, key: string, metadata: Record<string, unknown>, md5?: string): Promise<void>;
  getBucket(bucket: string): Promise<{ name: string; creationDate: Date } | null>;
  existsObject(bucket: string, key: string): Promise<boolean>;
}
export type FilesystemStoreCtor = new (rootDirectory: string) => S3rverStore;

export interface S3ErrorInstance extends Error {
  code: string;
  status: number;
  detail: Record<string, unknown>;
}
export type S3ErrorCtor = new (code: string, message?: string, detail?: Record<string, unknown>) => S3ErrorInstance;

export interface S3rverOptions {
  address?: string;
  port?: number;
  silent?: boolean;
  directory: string;
  resetOnClose?: boolean;
  vhostBuckets?: boolean;
  allowMismatchedSignatures?: boolean;
  configureBuckets?: { name: string; configs?: (string | Buffer)[] }[];
}

export interface S3rverInstance {
  store: S3rverStore;
  context: { store: S3rverStore };
  middleware: S3rverMiddleware[];
  httpServer?: Server;
  run(): Promise<{ address: string; port: number; family: string }>;
  close(): Promise<void>;
  on(event: 'error', listener: (err: Error) => void): unknown;
}
export type S3rverCtor = new (options: S3rverOptions) => S3rverInstance;

export interface AwsAccount {
  id: number | string;
  displayName: string;
  createKeyPair(accessKeyId: string, secretAccessKey: string): void;
}

export interface XmlParser {
  validate(xml: string): true | object;
  parse(xml: string, options?: Record<string, unknown>): Record<string, unknown>;
}

export const S3rver = s3rverRequire('s3rver') as S3rverCtor;
export const FilesystemStore = s3rverRequire('s3rver/lib/stores/filesystem.js') as FilesystemStoreCtor;
export const S3Object = s3rverRequire('s3rver/lib/models/object.js') as S3ObjectCtor;
export const S3Error = s3rverRequire('s3rver/lib/models/error.js') as S3ErrorCtor;
export const DUMMY_ACCOUNT = (s3rverRequire('s3rver/lib/models/account.js') as { DUMMY_ACCOUNT: AwsAccount }).DUMMY_ACCOUNT;
export const authentication = (s3rverRequire('s3rver/lib/middleware/authentication.js') as () => S3rverMiddleware)();
export const bucketExists = (s3rverRequire('s3rver/lib/controllers/bucket.js') as { bucketExists: (ctx: S3rverContext) => Promise<void> }).bucketExists;
export const xmlParser = s3rverRequire('fast-xml-parser') as XmlParser;
export const decodeXmlEntities = (s3rverRequire('he') as { decode(text: string): string }).decode;
