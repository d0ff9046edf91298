/** Starts the fixed s3rver (or, for control checks, the plain one) in a temp dir with a client. */
import { S3Client } from '@aws-sdk/client-s3';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { S3rver } from '../support/s3rver/s3rver-internals.ts';
import { S3_SERVER_CREDENTIALS, startS3Server } from '../support/s3rver/index.ts';

export interface S3Fixture {
  endpoint: string;
  directory: string;
  bucket: string;
  client: S3Client;
  close(): Promise<void>;
}

export async function startFixture(options: { plain?: boolean; bucket?: string } = {}): Promise<S3Fixture> {
  const bucket = options.bucket ?? 'regression';
  const directory = await fsp.mkdtemp(path.join(os.tmpdir(), 'cairn-s3rver-'));
  let endpoint: string;
  let stop: () => Promise<void>;
  if (options.plain) {
    const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, configureBuckets: [{ name: bucket, configs: [] }] });
    const address = await server.run();
    endpoint = `http://127.0.0.1:${address.port}`;
    stop = async () => {
      server.httpServer?.closeAllConnections();
      await server.close();
    };
  } else {
    const server = await startS3Server({ directory, buckets: [bucket] });
    endpoint = server.endpoint;
    stop = () => server.close();
  }
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: S3_SERVER_CREDENTIALS, maxAttempts: 1 });
  return {
    endpoint,
    directory,
    bucket,
    client,
    async close() {
      client.destroy();
      await stop();
      await fsp.rm(directory, { recursive: true, force: true });
    },
  };
}

/** Deterministic bytes that differ at every offset (so a shifted range is noticed). */
export function pattern(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Runs `fn` over `items` with at most `concurrency` at a time. */
export async function mapLimit<T, R>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i]!, i);
      }
    }),
  );
  return results;
}
