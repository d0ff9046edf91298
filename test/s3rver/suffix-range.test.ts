/**
 * Bug 3: s3rver 3.7.1 reads `Range: bytes=-N` (the last N bytes) as `bytes=0-N` and returns the
 * first N+1 bytes; it also returns the whole object for `bytes=0-0`.
 */
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pattern, startFixture, type S3Fixture } from './s3rver.fixture.ts';

const data = pattern(1000, 21);

async function ranged(fx: S3Fixture, key: string, range: string): Promise<{ bytes: Buffer; contentRange?: string; status?: number }> {
  const out = await fx.client.send(new GetObjectCommand({ Bucket: fx.bucket, Key: key, Range: range }));
  const result: { bytes: Buffer; contentRange?: string; status?: number } = { bytes: Buffer.from(await out.Body!.transformToByteArray()) };
  if (out.ContentRange) result.contentRange = out.ContentRange;
  if (out.$metadata.httpStatusCode) result.status = out.$metadata.httpStatusCode;
  return result;
}

describe('fixed s3rver: range requests', () => {
  let fx: S3Fixture;
  beforeAll(async () => {
    fx = await startFixture();
    await fx.client.send(new PutObjectCommand({ Bucket: fx.bucket, Key: 'r/data.bin', Body: data }));
    await fx.client.send(new PutObjectCommand({ Bucket: fx.bucket, Key: 'r/empty.bin', Body: Buffer.alloc(0) }));
  });
  afterAll(async () => {
    await fx.close();
  });

  it('returns the last N bytes for bytes=-N', async () => {
    const r = await ranged(fx, 'r/data.bin', 'bytes=-10');
    expect(r.status).toBe(206);
    expect(r.contentRange).toBe('bytes 990-999/1000');
    expect(r.bytes.equals(data.subarray(990))).toBe(true);
  });

  it('returns the whole object when the suffix is longer than it', async () => {
    const r = await ranged(fx, 'r/data.bin', 'bytes=-5000');
    expect(r.contentRange).toBe('bytes 0-999/1000');
    expect(r.bytes.equals(data)).toBe(true);
  });

  it('returns exactly one byte for bytes=0-0 and the tail for an open range', async () => {
    expect((await ranged(fx, 'r/data.bin', 'bytes=0-0')).bytes.equals(data.subarray(0, 1))).toBe(true);
    expect((await ranged(fx, 'r/data.bin', 'bytes=995-')).bytes.equals(data.subarray(995))).toBe(true);
    expect((await ranged(fx, 'r/data.bin', 'bytes=10-19')).bytes.equals(data.subarray(10, 20))).toBe(true);
  });

  it('answers 416 for bytes=-0, a start past the end, and any range of an empty object', async () => {
    for (const [key, range] of [
      ['r/data.bin', 'bytes=-0'],
      ['r/data.bin', 'bytes=1000-'],
      ['r/empty.bin', 'bytes=-1'],
      ['r/empty.bin', 'bytes=0-'],
    ] as const) {
      await expect(ranged(fx, key, range), `${key} ${range}`).rejects.toMatchObject({ name: 'InvalidRange', $metadata: { httpStatusCode: 416 } });
    }
  });
});

describe('plain s3rver 3.7.1 (control: the bug this fixes)', () => {
  it('returns the first N+1 bytes for bytes=-N', async () => {
    const fx = await startFixture({ plain: true });
    try {
      await fx.client.send(new PutObjectCommand({ Bucket: fx.bucket, Key: 'data.bin', Body: data }));
      const r = await ranged(fx, 'data.bin', 'bytes=-10');
      expect(r.bytes.equals(data.subarray(0, 11))).toBe(true);
    } finally {
      await fx.close();
    }
  });
});
