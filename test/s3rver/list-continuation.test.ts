/**
 * Bug 2: s3rver 3.7.1 encrypts ListObjectsV2 continuation tokens with DES, which Node >= 17
 * refuses, so every listing past the first page answers 500. It also lists keys in directory
 * walk order rather than S3's byte order. The fixed server answers both correctly.
 */
import { ListObjectsV2Command, PutObjectCommand, type ListObjectsV2CommandOutput } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mapLimit, startFixture, type S3Fixture } from './s3rver.fixture.ts';

async function putKeys(fx: S3Fixture, keys: string[]): Promise<void> {
  await mapLimit(keys, 32, (key) => fx.client.send(new PutObjectCommand({ Bucket: fx.bucket, Key: key, Body: Buffer.from(key) })));
}

async function listPages(fx: S3Fixture, input: { Prefix?: string; Delimiter?: string; MaxKeys?: number }): Promise<ListObjectsV2CommandOutput[]> {
  const pages: ListObjectsV2CommandOutput[] = [];
  let token: string | undefined;
  do {
    const page = await fx.client.send(new ListObjectsV2Command({ Bucket: fx.bucket, ...input, ...(token ? { ContinuationToken: token } : {}) }));
    pages.push(page);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
    if (page.IsTruncated) expect(token).toBeTruthy();
  } while (token);
  return pages;
}

const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

describe('fixed s3rver: ListObjectsV2 pagination', () => {
  let fx: S3Fixture;
  const many = Array.from({ length: 1100 }, (_, i) => `many/k-${String(i).padStart(5, '0')}`);

  beforeAll(async () => {
    fx = await startFixture();
    await putKeys(fx, many);
  });
  afterAll(async () => {
    await fx.close();
  });

  it('pages through more than 1000 keys with continuation tokens', async () => {
    const pages = await listPages(fx, { Prefix: 'many/' });
    expect(pages.map((p) => p.KeyCount)).toEqual([1000, 100]);
    expect(pages.flatMap((p) => p.Contents ?? []).map((o) => o.Key)).toEqual(many);
    expect(pages[1]!.Contents![0]!.Size).toBe(Buffer.byteLength(many[1000]!));
  });

  it('honours MaxKeys on every page', async () => {
    const pages = await listPages(fx, { Prefix: 'many/', MaxKeys: 250 });
    expect(pages.map((p) => p.KeyCount)).toEqual([250, 250, 250, 250, 100]);
    expect(pages.flatMap((p) => p.Contents ?? []).map((o) => o.Key)).toEqual(many);
  });

  it('lists in S3 (UTF-8 byte) order, also across directory boundaries', async () => {
    const keys = ['order/a', 'order/a-b', 'order/a/b', 'order/a0', 'order/b/c/d', 'order/b.x', 'order/é', 'order/z'];
    await putKeys(fx, keys);
    const expected = [...keys].sort(byteOrder);
    expect(expected).toEqual(['order/a', 'order/a-b', 'order/a/b', 'order/a0', 'order/b.x', 'order/b/c/d', 'order/z', 'order/é']);
    const whole = await listPages(fx, { Prefix: 'order/' });
    expect(whole.flatMap((p) => p.Contents ?? []).map((o) => o.Key)).toEqual(expected);
    const oneByOne = await listPages(fx, { Prefix: 'order/', MaxKeys: 1 });
    expect(oneByOne.flatMap((p) => p.Contents ?? []).map((o) => o.Key)).toEqual(expected);
  });

  it('paginates common prefixes with a delimiter without repeating them', async () => {
    await putKeys(fx, ['delim/x/1', 'delim/x/2', 'delim/y', 'delim/z/1', 'delim/z/2/3']);
    const pages = await listPages(fx, { Prefix: 'delim/', Delimiter: '/', MaxKeys: 1 });
    const seen = pages.flatMap((p) => [...(p.CommonPrefixes ?? []).map((c) => `prefix:${c.Prefix}`), ...(p.Contents ?? []).map((o) => `key:${o.Key}`)]);
    expect(seen).toEqual(['prefix:delim/x/', 'key:delim/y', 'prefix:delim/z/']);
  });

  it('rejects a continuation token it did not issue', async () => {
    await expect(fx.client.send(new ListObjectsV2Command({ Bucket: fx.bucket, ContinuationToken: 'not-a-token' }))).rejects.toMatchObject({
      name: 'InvalidArgument',
      $metadata: { httpStatusCode: 400 },
    });
  });
});

describe('plain s3rver 3.7.1 (control: the bug this fixes)', () => {
  it('answers 500 for the second page', async () => {
    const fx = await startFixture({ plain: true });
    try {
      await putKeys(fx, ['a', 'b', 'c']);
      await expect(fx.client.send(new ListObjectsV2Command({ Bucket: fx.bucket, MaxKeys: 1 }))).rejects.toMatchObject({
        $metadata: { httpStatusCode: 500 },
      });
    } finally {
      await fx.close();
    }
  });

  it('lists keys in directory walk order, not byte order', async () => {
    const fx = await startFixture({ plain: true });
    try {
      await putKeys(fx, ['o/a', 'o/a-b', 'o/a/b']);
      const page = await fx.client.send(new ListObjectsV2Command({ Bucket: fx.bucket }));
      const keys = (page.Contents ?? []).map((o) => o.Key);
      expect(keys).toHaveLength(3);
      expect(keys).not.toEqual(['o/a', 'o/a-b', 'o/a/b']);
    } finally {
      await fx.close();
    }
  });
});
