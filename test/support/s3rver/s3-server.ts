import fsp from 'node:fs/promises';
import { FixedFilesystemStore } from './fixed-filesystem.store.ts';
import { fixesMiddleware } from './fixes.middleware.ts';
import { DUMMY_ACCOUNT, S3rver, type S3rverOptions } from './s3rver-internals.ts';

export interface S3ServerOptions {
  /** Where buckets and objects are stored (created when missing). */
  directory: string;
  /** 0 picks a free port. */
  port?: number;
  host?: string;
  /** Buckets created at start (existing ones are kept). */
  buckets?: string[];
  /** Key pairs accepted besides s3rver's built-in S3RVER/S3RVER. */
  credentials?: { accessKeyId: string; secretAccessKey: string }[];
  /** Log requests and errors to the console (off by default). */
  verbose?: boolean;
}

export interface S3Server {
  /** e.g. http://127.0.0.1:40123 — use with forcePathStyle. */
  endpoint: string;
  port: number;
  host: string;
  directory: string;
  close(): Promise<void>;
}

/** Default key pair accepted by the server (s3rver's built-in account). */
export const S3_SERVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/** s3rver 3.7.1 with the fixes of TOOLCHAIN.md (and a few more found on the way). */
export class FixedS3rver extends S3rver {
  constructor(options: S3rverOptions) {
    super(options);
    const store = new FixedFilesystemStore(options.directory);
    this.store = store;
    this.context.store = store;
    // s3rver's stack is [logger, xml encoder, mount interop, vhost, router]: the fixes must see
    // the rewritten path and have their plain-object bodies encoded, so they go before the router.
    if (this.middleware.length !== 5) throw new Error(`unexpected s3rver middleware stack (${this.middleware.length} entries); is s3rver still 3.7.1?`);
    this.middleware.splice(this.middleware.length - 1, 0, fixesMiddleware(store));
  }
}

const CLOSE_GRACE_MS = 2000;

export async function startS3Server(options: S3ServerOptions): Promise<S3Server> {
  const host = options.host ?? '127.0.0.1';
  await fsp.mkdir(options.directory, { recursive: true });
  for (const { accessKeyId, secretAccessKey } of options.credentials ?? []) DUMMY_ACCOUNT.createKeyPair(accessKeyId, secretAccessKey);
  const server = new FixedS3rver({
    address: host,
    port: options.port ?? 0,
    silent: !options.verbose,
    directory: options.directory,
    vhostBuckets: false,
    configureBuckets: (options.buckets ?? []).map((name) => ({ name, configs: [] })),
  });
  const address = await server.run();
  const http = server.httpServer!;
  // Uploads of large parts over slow links must not be cut by Node's 5-minute request timeout,
  // and idle keep-alive sockets should outlive the SDK's reuse of them.
  http.requestTimeout = 0;
  http.keepAliveTimeout = 30_000;
  const urlHost = address.family === 'IPv6' || host.includes(':') ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    endpoint: `http://${urlHost}:${address.port}`,
    port: address.port,
    host,
    directory: options.directory,
    close() {
      closing ??= (async () => {
        const done = server.close();
        http.closeIdleConnections();
        // Requests still running after the grace period (a stalled upload) are cut.
        const timer = setTimeout(() => http.closeAllConnections(), CLOSE_GRACE_MS);
        try {
          await done;
        } finally {
          clearTimeout(timer);
        }
      })();
      return closing;
    },
  };
}
