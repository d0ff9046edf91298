/**
 * Bug 4: s3rver 3.7.1 answers ListMultipartUploads with 501 and AbortMultipartUpload with 405,
 * and the parts of abandoned uploads stay on disk. The fixed server lists and aborts uploads,
 * removes their parts, and refuses parts and completions for uploads that no longer exist.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  UploadPartCommand,
  type ListMultipartUploadsCommandOutput,
} from '@aws-sdk/client-s3';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pattern, startFixture, type S3Fixture } from './s3rver.fixture.ts';

function uploadDir(fx: S3Fixture, uploadId: string): string {
  return path.join(fx.directory, fx.bucket, '._S3rver_uploads', uploadId);
}

async function create(fx: S3Fixture, key: string): Promise<string> {
  const { UploadId } = await fx.client.send(new CreateMultipartUploadCommand({ Bucket: fx.bucket, Key: key }));
  expect(UploadId).toBeTruthy();
  return UploadId!;
}

async function uploadPart(fx: S3Fixture, key: string, uploadId: string, partNumber: number, body: Buffer): Promise<string> {
  const out = await fx.client.send(new UploadPartCommand({ Bucket: fx.bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: body }));
  return out.ETag!;
}

describe('fixed s3rver: multipart upload listing and abort', () => {
  let fx: S3Fixture;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    fx = await startFixture();
    // Created one after the other so the two uploads of u/a have distinct initiation times.
    ids['a1'] = await create(fx, 'u/a');
    await new Promise((r) => setTimeout(r, 5));
    ids['a2'] = await create(fx, 'u/a');
    ids['b'] = await create(fx, 'u/b');
    ids['other'] = await create(fx, 'other/c');
    await uploadPart(fx, 'u/b', ids['b'], 1, pattern(1024, 1));
  });
  afterAll(async () => {
    await fx.close();
  });

  it('lists incomplete uploads under a prefix, oldest first for the same key', async () => {
    const out = await fx.client.send(new ListMultipartUploadsCommand({ Bucket: fx.bucket, Prefix: 'u/' }));
    expect(out.IsTruncated).toBe(false);
    expect(out.Uploads?.map((u) => [u.Key, u.UploadId])).toEqual([
      ['u/a', ids['a1']],
      ['u/a', ids['a2']],
      ['u/b', ids['b']],
    ]);
    for (const u of out.Uploads ?? []) expect(Math.abs(u.Initiated!.getTime() - Date.now())).toBeLessThan(60_000);
  });

  it('pages with key and upload id markers', async () => {
    const seen: string[] = [];
    let markers: { KeyMarker?: string; UploadIdMarker?: string } = {};
    for (;;) {
      const page: ListMultipartUploadsCommandOutput = await fx.client.send(new ListMultipartUploadsCommand({ Bucket: fx.bucket, MaxUploads: 1, ...markers }));
      seen.push(...(page.Uploads ?? []).map((u) => u.UploadId!));
      if (!page.IsTruncated) break;
      markers = { KeyMarker: page.NextKeyMarker!, UploadIdMarker: page.NextUploadIdMarker! };
    }
    expect(seen).toEqual([ids['other'], ids['a1'], ids['a2'], ids['b']]);
  });

  it('aborts an upload: gone from the listing and its parts gone from disk', async () => {
    expect(fs.existsSync(path.join(uploadDir(fx, ids['b']!), '1'))).toBe(true);
    const out = await fx.client.send(new AbortMultipartUploadCommand({ Bucket: fx.bucket, Key: 'u/b', UploadId: ids['b'] }));
    expect(out.$metadata.httpStatusCode).toBe(204);
    expect(fs.existsSync(uploadDir(fx, ids['b']!))).toBe(false);
    const list = await fx.client.send(new ListMultipartUploadsCommand({ Bucket: fx.bucket, Prefix: 'u/' }));
    expect(list.Uploads?.map((u) => u.UploadId)).toEqual([ids['a1'], ids['a2']]);
  });

  it('refuses parts, completion and a second abort of an aborted upload, without recreating it', async () => {
    const noSuchUpload = { name: 'NoSuchUpload', $metadata: { httpStatusCode: 404 } };
    await expect(uploadPart(fx, 'u/b', ids['b']!, 2, pattern(100, 2))).rejects.toMatchObject(noSuchUpload);
    await expect(
      fx.client.send(
        new CompleteMultipartUploadCommand({ Bucket: fx.bucket, Key: 'u/b', UploadId: ids['b'], MultipartUpload: { Parts: [{ PartNumber: 1, ETag: '"x"' }] } }),
      ),
    ).rejects.toMatchObject(noSuchUpload);
    await expect(fx.client.send(new AbortMultipartUploadCommand({ Bucket: fx.bucket, Key: 'u/b', UploadId: ids['b'] }))).rejects.toMatchObject(noSuchUpload);
    // The upload must be addressed by its own key.
    await expect(fx.client.send(new AbortMultipartUploadCommand({ Bucket: fx.bucket, Key: 'u/wrong', UploadId: ids['a1'] }))).rejects.toMatchObject(
      noSuchUpload,
    );
    expect(fs.existsSync(uploadDir(fx, ids['b']!))).toBe(false);
  });

  it('refuses to complete with a part whose ETag does not match', async () => {
    const key = 'u/etag';
    const id = await create(fx, key);
    await uploadPart(fx, key, id, 1, pattern(100, 3));
    await expect(
      fx.client.send(
        new CompleteMultipartUploadCommand({ Bucket: fx.bucket, Key: key, UploadId: id, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: '"0000"' }] } }),
      ),
    ).rejects.toMatchObject({ name: 'InvalidPart' });
    await fx.client.send(new AbortMultipartUploadCommand({ Bucket: fx.bucket, Key: key, UploadId: id }));
  });
});

describe('plain s3rver 3.7.1 (control: the bug this fixes)', () => {
  it('does not implement ListMultipartUploads (501) nor AbortMultipartUpload (405)', async () => {
    const fx = await startFixture({ plain: true });
    try {
      const id = await create(fx, 'k');
      await expect(fx.client.send(new ListMultipartUploadsCommand({ Bucket: fx.bucket }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 501 } });
      await expect(fx.client.send(new AbortMultipartUploadCommand({ Bucket: fx.bucket, Key: 'k', UploadId: id }))).rejects.toMatchObject({
        $metadata: { httpStatusCode: 405 },
      });
    } finally {
      await fx.close();
    }
  });
});
