/**
 * Bug 1: s3rver 3.7.1 stores `aws-chunked` request bodies (the SDK's default flexible checksums
 * on streamed bodies, signed streaming uploads of other clients) with the chunk markers inside
 * the object. The fixed server decodes them and checks every checksum sent.
 */
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BodyDecoder } from '../support/s3rver/aws-chunked.decoder.ts';
import { createChecksum, type ChecksumAlgorithm } from '../support/s3rver/checksums.ts';
import { pattern, startFixture, type S3Fixture } from './s3rver.fixture.ts';

function checksumOf(alg: ChecksumAlgorithm, data: Buffer): string {
  const c = createChecksum(alg);
  c.update(data);
  return c.digest().toString('base64');
}

/** An aws-chunked body as S3 clients send it. */
function encodeChunked(data: Buffer, options: { chunkSize: number; signed?: boolean; trailer?: string; finalCrlf?: boolean }): Buffer {
  const sig = (i: number) => (options.signed ? `;chunk-signature=${createHash('sha256').update(String(i)).digest('hex')}` : '');
  const parts: Buffer[] = [];
  let i = 0;
  for (let offset = 0; offset < data.length; offset += options.chunkSize, i++) {
    const chunk = data.subarray(offset, offset + options.chunkSize);
    parts.push(Buffer.from(`${chunk.length.toString(16)}${sig(i)}\r\n`), chunk, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`0${sig(i)}\r\n`));
  if (options.trailer) parts.push(Buffer.from(`${options.trailer}\r\n`));
  if (options.finalCrlf ?? true) parts.push(Buffer.from('\r\n'));
  return Buffer.concat(parts);
}

function rawRequest(
  endpoint: string,
  method: string,
  urlPath: string,
  headers: Record<string, string>,
  body?: Buffer,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      new URL(urlPath, endpoint),
      { method, headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function getBytes(fx: S3Fixture, key: string): Promise<Buffer> {
  const out = await fx.client.send(new GetObjectCommand({ Bucket: fx.bucket, Key: key }));
  return Buffer.from(await out.Body!.transformToByteArray());
}

describe('fixed s3rver: aws-chunked request bodies', () => {
  let fx: S3Fixture;
  beforeAll(async () => {
    fx = await startFixture();
  });
  afterAll(async () => {
    await fx.close();
  });

  it('stores a streamed PutObject (SDK default flexible checksums) byte for byte', async () => {
    const data = pattern(300_000, 7);
    const put = await fx.client.send(
      new PutObjectCommand({
        Bucket: fx.bucket,
        Key: 'sdk/put.bin',
        Body: Readable.from([data.subarray(0, 123_456), data.subarray(123_456)]),
        ContentLength: data.length,
      }),
    );
    // The server echoes the checksum it verified, as S3 does.
    expect(put.ChecksumCRC32).toBe(checksumOf('crc32', data));
    const stored = await getBytes(fx, 'sdk/put.bin');
    expect(stored.length).toBe(data.length);
    expect(stored.equals(data)).toBe(true);
    const head = await fx.client.send(new HeadObjectCommand({ Bucket: fx.bucket, Key: 'sdk/put.bin' }));
    expect(head.ContentLength).toBe(data.length);
    expect(head.ContentEncoding).toBeUndefined();
  });

  it('stores streamed UploadPart bodies of a multipart upload byte for byte', async () => {
    const part1 = pattern(5 * 1024 * 1024, 11);
    const part2 = pattern(70_000, 12);
    const key = 'sdk/multipart.bin';
    const { UploadId } = await fx.client.send(new CreateMultipartUploadCommand({ Bucket: fx.bucket, Key: key }));
    const etags: string[] = [];
    for (const [i, part] of [part1, part2].entries()) {
      const out = await fx.client.send(
        new UploadPartCommand({ Bucket: fx.bucket, Key: key, UploadId, PartNumber: i + 1, Body: Readable.from([part]), ContentLength: part.length }),
      );
      etags.push(out.ETag!);
    }
    await fx.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: fx.bucket,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
      }),
    );
    const stored = await getBytes(fx, key);
    expect(stored.equals(Buffer.concat([part1, part2]))).toBe(true);
  });

  it('decodes signed chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD, chunk-signature extensions)', async () => {
    const data = pattern(200_000, 3);
    const res = await rawRequest(
      fx.endpoint,
      'PUT',
      `/${fx.bucket}/raw/signed.bin`,
      { 'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(data.length) },
      encodeChunked(data, { chunkSize: 65_536, signed: true }),
    );
    expect(res.status).toBe(200);
    expect((await getBytes(fx, 'raw/signed.bin')).equals(data)).toBe(true);
  });

  it('decodes unsigned chunks with a checksum trailer and keeps other content encodings', async () => {
    const data = pattern(10_000, 4);
    const res = await rawRequest(
      fx.endpoint,
      'PUT',
      `/${fx.bucket}/raw/trailer.bin`,
      {
        'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
        'content-encoding': 'gzip,aws-chunked',
        'x-amz-trailer': 'x-amz-checksum-crc32c',
        'x-amz-decoded-content-length': String(data.length),
      },
      encodeChunked(data, { chunkSize: 4096, trailer: `x-amz-checksum-crc32c:${checksumOf('crc32c', data)}` }),
    );
    expect(res.status).toBe(200);
    expect(res.headers['x-amz-checksum-crc32c']).toBe(checksumOf('crc32c', data));
    expect((await getBytes(fx, 'raw/trailer.bin')).equals(data)).toBe(true);
    const head = await fx.client.send(new HeadObjectCommand({ Bucket: fx.bucket, Key: 'raw/trailer.bin' }));
    expect(head.ContentEncoding).toBe('gzip');
  });

  it('rejects a body whose trailer checksum does not match, leaving the old object in place', async () => {
    const key = 'raw/bad-digest.bin';
    const original = pattern(1000, 5);
    await fx.client.send(new PutObjectCommand({ Bucket: fx.bucket, Key: key, Body: original }));
    const data = pattern(5000, 6);
    const res = await rawRequest(
      fx.endpoint,
      'PUT',
      `/${fx.bucket}/${key}`,
      { 'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER', 'content-encoding': 'aws-chunked', 'x-amz-trailer': 'x-amz-checksum-crc32' },
      encodeChunked(data, { chunkSize: 1000, trailer: `x-amz-checksum-crc32:${checksumOf('crc32', original)}` }),
    );
    expect(res.status).toBe(400);
    expect(res.body.toString()).toContain('<Code>BadDigest</Code>');
    expect((await getBytes(fx, key)).equals(original)).toBe(true);
  });

  it('rejects a truncated chunked body with IncompleteBody and stores nothing', async () => {
    const data = pattern(3000, 8);
    const encoded = encodeChunked(data, { chunkSize: 1000, signed: true });
    const res = await rawRequest(
      fx.endpoint,
      'PUT',
      `/${fx.bucket}/raw/truncated.bin`,
      { 'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', 'content-encoding': 'aws-chunked' },
      encoded.subarray(0, 1500),
    );
    expect(res.status).toBe(400);
    expect(res.body.toString()).toContain('<Code>IncompleteBody</Code>');
    await expect(fx.client.send(new HeadObjectCommand({ Bucket: fx.bucket, Key: 'raw/truncated.bin' }))).rejects.toMatchObject({
      $metadata: { httpStatusCode: 404 },
    });
  });

  it('checks a Content-MD5 sent with a plain body', async () => {
    const data = pattern(2000, 9);
    const wrong = createHash('md5').update('something else').digest('base64');
    const res = await rawRequest(fx.endpoint, 'PUT', `/${fx.bucket}/raw/md5.bin`, { 'content-md5': wrong }, data);
    expect(res.status).toBe(400);
    expect(res.body.toString()).toContain('<Code>BadDigest</Code>');
    const ok = await rawRequest(fx.endpoint, 'PUT', `/${fx.bucket}/raw/md5.bin`, { 'content-md5': createHash('md5').update(data).digest('base64') }, data);
    expect(ok.status).toBe(200);
  });
});

describe('BodyDecoder framing', () => {
  async function decode(input: Buffer, splitEvery: number, options: Partial<ConstructorParameters<typeof BodyDecoder>[0]> = {}): Promise<Buffer> {
    const decoder = new BodyDecoder({ chunked: true, expected: new Map(), trailerAlgorithms: [], ...options });
    const pieces: Buffer[] = [];
    for (let i = 0; i < input.length; i += splitEvery) pieces.push(input.subarray(i, i + splitEvery));
    const out: Buffer[] = [];
    for await (const chunk of Readable.from(pieces).pipe(decoder)) out.push(chunk as Buffer);
    return Buffer.concat(out);
  }

  it('decodes whatever the network splits look like', async () => {
    const data = pattern(777, 10);
    const encoded = encodeChunked(data, { chunkSize: 100, signed: true, trailer: `x-amz-checksum-sha256:${checksumOf('sha256', data)}` });
    for (const split of [1, 2, 3, 7, 64, 101, encoded.length]) {
      const decoded = await decode(encoded, split, { trailerAlgorithms: ['sha256'], decodedLength: data.length });
      expect(decoded.equals(data), `split every ${split} bytes`).toBe(true);
    }
  });

  it('accepts the SDK ending without trailer (`0\\r\\n` and nothing more)', async () => {
    const data = pattern(50, 2);
    expect((await decode(encodeChunked(data, { chunkSize: 16, finalCrlf: false }), 5)).equals(data)).toBe(true);
  });

  it('verifies CRC64NVME trailers and rejects a wrong decoded length', async () => {
    const data = pattern(5000, 3);
    const encoded = encodeChunked(data, { chunkSize: 999, trailer: `x-amz-checksum-crc64nvme:${checksumOf('crc64nvme', data)}` });
    expect((await decode(encoded, 500, { trailerAlgorithms: ['crc64nvme'] })).equals(data)).toBe(true);
    await expect(decode(encoded, 500, { decodedLength: data.length + 1 })).rejects.toMatchObject({ code: 'IncompleteBody' });
  });

  it('rejects a malformed chunk header', async () => {
    await expect(decode(Buffer.from('zz\r\nabc\r\n0\r\n\r\n'), 4)).rejects.toMatchObject({ code: 'InvalidRequest' });
  });
});

describe('plain s3rver 3.7.1 (control: the bug this fixes)', () => {
  it('stores the chunk markers of a streamed PutObject inside the object', async () => {
    const fx = await startFixture({ plain: true });
    try {
      const data = pattern(10_000, 7);
      await fx.client.send(new PutObjectCommand({ Bucket: fx.bucket, Key: 'put.bin', Body: Readable.from([data]), ContentLength: data.length }));
      const stored = await getBytes(fx, 'put.bin');
      expect(stored.equals(data)).toBe(false);
      expect(stored.toString('latin1')).toContain('x-amz-checksum-crc32:');
    } finally {
      await fx.close();
    }
  });
});
