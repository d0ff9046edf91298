/** Failed S3 requests reach `onRequestError` (worker metrics), each attempt with its operation and kind. */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadConfig, s3ErrorKind, S3ObjectStore, type S3ErrorKind } from '@cairn/core';
import { putFromThread } from '@cairn/core/archive/index.ts';
import { createObjectStore } from '@cairn/core/runtime.ts';

function observed(store: S3ObjectStore) {
  const seen: Array<{ operation: string; kind: S3ErrorKind }> = [];
  store.onRequestError((e) => seen.push(e));
  return seen;
}

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('S3 request errors', () => {
  it('reports a missing object as not-found, and a request that succeeds not at all', async () => {
    const store = createObjectStore(loadConfig()) as S3ObjectStore;
    const seen = observed(store);
    try {
      await store.put(`errors-${Date.now()}/present`, Buffer.from('x'));
      expect(seen).toEqual([]);
      expect(await store.head(`errors-${Date.now()}/absent`)).toBeNull();
      expect(seen).toEqual([{ operation: 'HeadObject', kind: 'not-found' }]);
    } finally {
      await store.close();
    }
  });

  it('reports a refused (unknown) access key as access-denied', async () => {
    const store = createObjectStore({ ...loadConfig(), S3_ACCESS_KEY_ID: 'NOBODY' }) as S3ObjectStore;
    const seen = observed(store);
    try {
      await expect(store.put(`errors-${Date.now()}/refused`, Buffer.from('x'))).rejects.toThrow();
      expect(seen.length).toBeGreaterThanOrEqual(1);
      expect(seen, JSON.stringify(seen)).toEqual(seen.map(() => ({ operation: 'PutObject', kind: 'access-denied' })));
    } finally {
      await store.close();
    }
  });

  it('counts every attempt of a request the SDK retries (nothing listening: network)', async () => {
    const store = new S3ObjectStore({
      endpoint: `http://127.0.0.1:${await closedPort()}`,
      region: 'us-east-1',
      bucket: 'nowhere',
      accessKeyId: 'a',
      secretAccessKey: 'b',
      forcePathStyle: true,
      maxAttempts: 2,
    });
    const seen = observed(store);
    try {
      await expect(store.list('x/')).rejects.toThrow(/not reachable|failed/);
      expect(seen).toEqual([
        { operation: 'ListObjectsV2', kind: 'network' },
        { operation: 'ListObjectsV2', kind: 'network' },
      ]);
    } finally {
      await store.close();
    }
  });

  it("the store thread's failed requests reach the main store's listeners, and its refusal is the upload's error", async () => {
    const store = createObjectStore({ ...loadConfig(), S3_ACCESS_KEY_ID: 'NOBODY' }) as S3ObjectStore;
    const seen = observed(store);
    try {
      // Several uploads: the relayed errors come on the job's own port, the refusal with the job's
      // answer; each upload must wait for the former (one in five was lost when it did not).
      for (let i = 0; i < 10; i++) {
        const before = seen.length;
        const body = Readable.from([randomBytes(300_000), randomBytes(300_000)]);
        const err = await putFromThread(store, `errors-${Date.now()}-${i}/threaded`, body).catch((e: unknown) => e);
        expect(err).toMatchObject({ code: 'unavailable' });
        expect(seen.length, `upload ${i}`).toBeGreaterThan(before);
      }
      expect(seen, JSON.stringify(seen)).toEqual(seen.map(() => ({ operation: 'PutObject', kind: 'access-denied' })));
    } finally {
      await store.close();
    }
  });

  it('sorts SDK errors into kinds', () => {
    const err = (name: string, status?: number, extra: object = {}) =>
      Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status }, ...extra });
    expect(s3ErrorKind(err('SlowDown', 503))).toBe('throttled');
    expect(s3ErrorKind(err('TooManyRequestsException', 429))).toBe('throttled');
    expect(s3ErrorKind(err('InternalError', 500))).toBe('server');
    expect(s3ErrorKind(err('AccessDenied', 403))).toBe('access-denied');
    expect(s3ErrorKind(err('NoSuchKey', 404))).toBe('not-found');
    expect(s3ErrorKind(err('InvalidArgument', 400))).toBe('client');
    expect(s3ErrorKind(err('AbortError'))).toBe('aborted');
    expect(s3ErrorKind(err('Error', undefined, { cause: Object.assign(new Error('reset'), { code: 'ECONNRESET' }) }))).toBe('network');
  });
});
