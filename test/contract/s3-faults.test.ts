/** S3ObjectStore against the fixed s3rver through the fault proxy (issue 16): stalls time out, resets keep their cause. */
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CairnError } from '../../services/core/src/errors.ts';
import { S3ObjectStore } from '../../services/core/src/storage/s3.object-store.ts';
import { streamInto } from '../../services/core/src/storage/stream-into.ts';
import { startS3FaultProxy, type S3FaultProxy } from '../support/s3-fault-proxy.ts';
import { S3_SERVER_CREDENTIALS, startS3Server, type S3Server } from '../support/s3rver/index.ts';

/** Writes `bytes` into the sink the way the archive packer does, and fails as it does when the sink goes away. */
async function produce(sink: Writable, bytes: number): Promise<number> {
  for (let sent = 0; sent < bytes; sent += 64 * 1024) {
    if (sink.destroyed) throw new Error('the output stream closed before the archive was complete');
    if (!sink.write(randomBytes(64 * 1024)))
      await new Promise((resolve) => {
        sink.once('drain', resolve);
        sink.once('close', resolve);
      });
  }
  return bytes;
}

describe('S3 object store under network faults', () => {
  let server: S3Server;
  let proxy: S3FaultProxy;
  let directory: string;
  let store: S3ObjectStore;

  beforeAll(async () => {
    directory = await fsp.mkdtemp(path.join(os.tmpdir(), 'cairn-s3-faults-'));
    server = await startS3Server({ directory });
    proxy = await startS3FaultProxy(server.endpoint);
    store = new S3ObjectStore({
      endpoint: proxy.endpoint,
      region: 'us-east-1',
      bucket: `faults-${randomBytes(4).toString('hex')}`,
      ...S3_SERVER_CREDENTIALS,
      forcePathStyle: true,
      checksumMode: 'WHEN_REQUIRED',
      socketTimeoutMs: 1000,
      // Small parts, one at a time: the producer is still writing when the first part fails.
      partSize: 5 * 1024 * 1024,
      queueSize: 1,
    });
    await store.ensureBucket();
  });
  afterAll(async () => {
    await store?.close();
    await proxy?.close();
    await server?.close();
    if (directory) await fsp.rm(directory, { recursive: true, force: true });
  });

  it('a download that never answers times out and the retry reads the object', async () => {
    const body = randomBytes(1024 * 1024);
    await store.put('stalled/object', body);
    proxy.stall((r) => r.method === 'GET' && r.path.endsWith('/stalled/object'));
    const started = Date.now();
    const chunks: Buffer[] = [];
    for await (const chunk of await store.get('stalled/object')) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(body)).toBe(true);
    expect(proxy.faults.stalled).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
  });

  it("an upload whose connection is reset fails with the store's error, not the producer's", async () => {
    // Every try the SDK makes of the first part is cut mid-body.
    proxy.reset((r) => r.method === 'PUT' && r.path.endsWith('/reset/object'), 128 * 1024, 10);
    const failure = await streamInto(
      (sink) => produce(sink, 32 * 1024 * 1024),
      (source, signal) => store.put('reset/object', source, { signal }),
      { signal: new AbortController().signal },
    ).then(
      () => null,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(CairnError);
    expect((failure as CairnError).code).toBe('unavailable');
    expect((failure as CairnError).message).toMatch(/put of "reset\/object" .* failed: .*(ECONNRESET|socket hang up|EPIPE)/);
    expect((failure as CairnError).message).not.toMatch(/output stream closed/);
    expect(proxy.faults.reset).toBeGreaterThanOrEqual(1);
    expect(await store.listIncompleteUploads('reset/')).toEqual([]);
  });
});
