/** The ObjectStore contract against S3ObjectStore on the fixed s3rver, plus S3-only behaviour. */
import { CreateMultipartUploadCommand, GetObjectCommand, ListObjectsV2Command, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CairnError } from '../../services/core/src/errors.ts';
import { S3ObjectStore, type S3ObjectStoreOptions } from '../../services/core/src/storage/s3.object-store.ts';
import { MAX_PART_SIZE, MAX_PARTS, ObjectUpload, PartBufferPool, partSizeOf } from '../../services/core/src/storage/s3-upload.ts';
import { S3_SERVER_CREDENTIALS, startS3Server, type S3Server } from '../support/s3rver/index.ts';
import { objectStoreContract } from './object-store.contract.ts';

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Stack {
  server: S3Server;
  directory: string;
  options: S3ObjectStoreOptions;
  client: S3Client;
  close(): Promise<void>;
}

/** A fixed s3rver in its own temp dir and a fresh bucket for this test file. */
async function startStack(): Promise<Stack> {
  const directory = await fsp.mkdtemp(path.join(os.tmpdir(), 'cairn-s3-contract-'));
  const server = await startS3Server({ directory });
  const options: S3ObjectStoreOptions = {
    endpoint: server.endpoint,
    region: 'us-east-1',
    bucket: `contract-${randomBytes(4).toString('hex')}`,
    prefix: 'cairn-test',
    ...S3_SERVER_CREDENTIALS,
    forcePathStyle: true,
  };
  const client = new S3Client({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: S3_SERVER_CREDENTIALS });
  return {
    server,
    directory,
    options,
    client,
    async close() {
      client.destroy();
      await server.close();
      await fsp.rm(directory, { recursive: true, force: true });
    },
  };
}

objectStoreContract('S3ObjectStore on the fixed s3rver', async () => {
  const stack = await startStack();
  const store = new S3ObjectStore(stack.options);
  await store.ensureBucket();
  const unusable = new S3ObjectStore({ ...stack.options, endpoint: `http://127.0.0.1:${await freePort()}`, bucket: 'unreachable-bucket', maxAttempts: 1 });
  return {
    store,
    unusableStore: unusable,
    unusableStoreName: 'unreachable-bucket',
    async leaveIncompleteUpload(key) {
      // What a crashed writer leaves: an upload created and a part sent, never completed.
      const fullKey = `cairn-test/${key}`;
      const { UploadId } = await stack.client.send(new CreateMultipartUploadCommand({ Bucket: stack.options.bucket, Key: fullKey }));
      await stack.client.send(
        new UploadPartCommand({ Bucket: stack.options.bucket, Key: fullKey, UploadId, PartNumber: 1, Body: randomBytes(5 * 1024 * 1024) }),
      );
      return UploadId!;
    },
    async close() {
      await store.close();
      await unusable.close();
      await stack.close();
    },
  };
});

describe('S3ObjectStore specifics', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack.close();
  });

  it('creates its bucket once and keeps stores with different prefixes apart', async () => {
    const a = new S3ObjectStore({ ...stack.options, prefix: '/tenant-a/' });
    const b = S3ObjectStore.withClient(stack.client, { bucket: stack.options.bucket, prefix: 'tenant-b' });
    await a.ensureBucket();
    await a.ensureBucket();
    await a.put('same/key', Buffer.from('from a'));
    await b.put('same/key', Buffer.from('from b'));
    expect((await a.list('')).items.map((i) => i.key)).toEqual(['same/key']);
    expect((await b.head('same/key'))?.size).toBe(6);
    const raw = await stack.client.send(new ListObjectsV2Command({ Bucket: stack.options.bucket }));
    expect(raw.Contents?.map((o) => o.Key).sort()).toEqual(['tenant-a/same/key', 'tenant-b/same/key']);
    await a.close();
  });

  it('uploads streams larger than a part as multipart uploads of the configured part size', async () => {
    const store = new S3ObjectStore({ ...stack.options, prefix: 'parts', partSize: 5 * 1024 * 1024, queueSize: 2 });
    await store.ensureBucket();
    const data = randomBytes(12 * 1024 * 1024);
    const result = await store.put('three-parts', Readable.from([data.subarray(0, 1000), data.subarray(1000)]));
    // S3's multipart ETag ends with the part count.
    expect(result).toEqual({ size: data.length, etag: expect.stringMatching(/-3$/) });
    expect((await store.head('three-parts'))?.etag).toBe(result.etag);
    expect((await store.put('one-part', data.subarray(0, 1024))).etag).toMatch(/^[0-9a-f]{32}$/);
    await store.close();
  });

  it('stores a body of exactly one part with one PUT, and one byte more as two parts', async () => {
    const store = new S3ObjectStore({ ...stack.options, prefix: 'edges', partSize: 5 * 1024 * 1024, queueSize: 1 });
    const data = randomBytes(5 * 1024 * 1024 + 1);
    const one = await store.put('exact', Readable.from([data.subarray(0, 5 * 1024 * 1024)]));
    expect(one.etag).toMatch(/^[0-9a-f]{32}$/);
    const two = await store.put('plus-one', Readable.from([data]));
    expect(two).toEqual({ size: data.length, etag: expect.stringMatching(/-2$/) });
    const chunks: Buffer[] = [];
    for await (const c of await store.get('plus-one')) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    await store.close();
  });

  it('reuses its part buffers: memory stays at partSize × (queueSize + 1) whatever the size', async () => {
    const partSize = 5 * 1024 * 1024;
    const pool = new PartBufferPool(partSize, 2);
    const data = randomBytes(8 * partSize + 12345);
    const pieces = Array.from({ length: 64 }, (_, i) => data.subarray((i * data.length) / 64, ((i + 1) * data.length) / 64));
    const target = { client: stack.client, bucket: stack.options.bucket, queueSize: 2, pool };
    const upload = new ObjectUpload({ ...target, key: 'pool/nine-parts' });
    expect(await upload.run(Readable.from(pieces))).toMatch(/-9"?$/);
    expect(upload.size).toBe(data.length);
    expect(pool.allocated).toBe(3);
    // A second upload takes the same buffers.
    await new ObjectUpload({ ...target, key: 'pool/again' }).run(Readable.from([data]));
    expect(pool.allocated).toBe(3);
    const chunks: Buffer[] = [];
    for await (const c of (await stack.client.send(new GetObjectCommand({ Bucket: stack.options.bucket, Key: 'pool/nine-parts' }))).Body as Readable)
      chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
  });

  it('shares its buffers between uploads running at once: at most max(queueSize + 1, 2 per upload)', async () => {
    const partSize = 5 * 1024 * 1024;
    const pool = new PartBufferPool(partSize, 2);
    const target = { client: stack.client, bucket: stack.options.bucket, queueSize: 2, pool };
    const bodies = [randomBytes(6 * partSize + 1), randomBytes(5 * partSize + 2)];
    const pieces = (data: Buffer) => Array.from({ length: 32 }, (_, i) => data.subarray((i * data.length) / 32, ((i + 1) * data.length) / 32));
    const etags = await Promise.all(bodies.map((data, i) => new ObjectUpload({ ...target, key: `shared/${i}` }).run(Readable.from(pieces(data)))));
    expect(etags[0]).toMatch(/-7"?$/);
    expect(etags[1]).toMatch(/-6"?$/);
    // Alone, one upload would take queueSize + 1 = 3; two at once take 4 between them, not 6.
    expect(pool.peakOut).toBe(4);
    expect(pool.allocated).toBeLessThanOrEqual(4);
    expect(pool.inUse).toBe(0);
    for (const [i, data] of bodies.entries()) {
      const chunks: Buffer[] = [];
      for await (const c of (await stack.client.send(new GetObjectCommand({ Bucket: stack.options.bucket, Key: `shared/${i}` }))).Body as Readable)
        chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
    }
  });

  it("grows its parts so an archive of any size fits in S3's parts, and reads back equal", async () => {
    const partSize = 5 * 1024 * 1024;
    const pool = new PartBufferPool(partSize, 2);
    const sent: number[] = [];
    const client = {
      config: stack.client.config,
      send: (command: { input: { ContentLength?: number } }, options?: unknown) => {
        if (command instanceof UploadPartCommand) sent.push(command.input.ContentLength!);
        return stack.client.send(command as never, options as never);
      },
    } as unknown as S3Client;
    // Sizes double every 2 parts here (every 1,000 by default): 5, 5, 10, 10, 20 MiB, the last part short.
    const data = randomBytes(45 * 1024 * 1024 + 7);
    const upload = new ObjectUpload({ client, bucket: stack.options.bucket, queueSize: 2, pool, key: 'grow/five-parts', partsPerSize: 2 });
    expect(await upload.run(Readable.from([data]))).toMatch(/-5"?$/);
    const MiB = 1024 * 1024;
    expect(sent.sort((a, b) => a - b)).toEqual([5 * MiB, 5 * MiB, 10 * MiB, 10 * MiB, 15 * MiB + 7]);
    const chunks: Buffer[] = [];
    for await (const c of (await stack.client.send(new GetObjectCommand({ Bucket: stack.options.bucket, Key: 'grow/five-parts' }))).Body as Readable)
      chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    // The default growth: 1,000 parts of each size from the first, capped at S3's 5 GiB a part,
    // which from 8 MiB (the default) holds more than S3's 5 TiB object limit in 10,000 parts.
    expect([1, 1000, 1001, 2001, 10_000].map((n) => partSizeOf(8 * MiB, n) / MiB)).toEqual([8, 8, 16, 32, 4096]);
    let total = 0;
    for (let n = 1; n <= MAX_PARTS; n++) total += partSizeOf(8 * MiB, n);
    expect(total).toBeGreaterThan(5 * 1024 ** 4);
    expect(partSizeOf(5 * 1024 ** 3, 5000)).toBe(MAX_PART_SIZE);
  });

  it('refuses an object of more parts than S3 allows, naming the setting, and leaves no upload behind', async () => {
    const partSize = 5 * 1024 * 1024;
    const target = { client: stack.client, bucket: stack.options.bucket, queueSize: 2, pool: new PartBufferPool(partSize, 2) };
    const upload = new ObjectUpload({ ...target, key: 'limit/too-many', maxParts: 2 });
    const err = await upload.run(Readable.from([randomBytes(3 * partSize + 1)])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CairnError);
    expect((err as CairnError).message).toMatch(/larger than 2 parts .*S3_PART_SIZE/);
    // Every part buffer is back: a failed upload holds none of the store's.
    expect(target.pool.inUse).toBe(0);
    const store = new S3ObjectStore({ ...stack.options, prefix: '' });
    expect(await store.listIncompleteUploads('limit/')).toEqual([]);
    expect(await store.head('limit/too-many')).toBeNull();
    await store.close();
  });

  it('uses flexible checksums or only required ones, as configured', async () => {
    for (const checksumMode of ['WHEN_SUPPORTED', 'WHEN_REQUIRED'] as const) {
      const store = new S3ObjectStore({ ...stack.options, prefix: `mode-${checksumMode}`, checksumMode, partSize: 5 * 1024 * 1024 });
      await store.ensureBucket();
      const data = randomBytes(12 * 1024 * 1024);
      // Multipart (part checksums listed on completion), then one PUT.
      expect((await store.put('obj', data)).etag).toMatch(/-3$/);
      expect((await store.put('small', data.subarray(0, 1024))).etag).toMatch(/^[0-9a-f]{32}$/);
      const chunks: Buffer[] = [];
      for await (const c of await store.get('obj')) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
      expect((await store.deleteMany(['obj', 'small'])).deleted).toEqual(['obj', 'small']);
      await store.close();
    }
  });

  it('reports a missing bucket as unavailable, naming it', async () => {
    const store = new S3ObjectStore({ ...stack.options, bucket: 'no-such-bucket-here' });
    const err = await store.ping().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CairnError);
    expect((err as CairnError).code).toBe('unavailable');
    expect((err as CairnError).message).toContain('no-such-bucket-here');
    const putErr = await store.put('k', Buffer.from('x')).catch((e: unknown) => e);
    expect((putErr as CairnError).code).toBe('unavailable');
    await store.close();
  });

  it('reports an invalid bucket name as a configuration error naming the bucket and the setting', async () => {
    const store = new S3ObjectStore({ ...stack.options, bucket: 'x' });
    const err = await store.ensureBucket().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CairnError);
    expect((err as CairnError).code).toBe('config');
    expect((err as CairnError).message).toMatch(/"x" is not a valid bucket name .*S3_BUCKET/);
    await store.close();
  });

  it('classifies an unreachable endpoint as transient', async () => {
    const store = new S3ObjectStore({ ...stack.options, endpoint: `http://127.0.0.1:${await freePort()}`, maxAttempts: 1 });
    for (const attempt of [() => store.get('k'), () => store.head('k'), () => store.list(''), () => store.put('k', Buffer.from('x'))]) {
      const err = await attempt().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CairnError);
      expect((err as CairnError).code).toBe('unavailable');
      expect((err as CairnError).permanent).toBe(false);
    }
    await store.close();
  });

  it('rejects unusable options', () => {
    expect(() => new S3ObjectStore({ ...stack.options, partSize: 1024 })).toThrow(/at least 5 MiB/);
    expect(() => new S3ObjectStore({ ...stack.options, accessKeyId: 'only-one', secretAccessKey: undefined })).toThrow(/together/);
  });
});
