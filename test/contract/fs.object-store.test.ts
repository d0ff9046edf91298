/** The ObjectStore contract against FsObjectStore, plus filesystem-only behaviour. */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CairnError } from '../../services/core/src/errors.ts';
import { FsObjectStore } from '../../services/core/src/storage/fs.object-store.ts';
import { objectStoreContract } from './object-store.contract.ts';

objectStoreContract('FsObjectStore', async () => {
  const directory = await fsp.mkdtemp(path.join(os.tmpdir(), 'cairn-fs-contract-'));
  const store = new FsObjectStore({ directory: path.join(directory, 'store') });
  await store.ensureDirectory();
  const stalled: { body: Readable; put: Promise<unknown> }[] = [];
  return {
    store,
    unusableStore: new FsObjectStore({ directory: path.join(directory, 'does-not-exist') }),
    unusableStoreName: path.join(directory, 'does-not-exist'),
    async leaveIncompleteUpload(key) {
      // A writer that sent data and then stalled (or died): its temp file is the incomplete upload.
      const body = new Readable({ read() {} });
      body.push(Buffer.alloc(1024 * 1024, 1));
      const put = store.put(key, body).catch((err: unknown) => err);
      stalled.push({ body, put });
      for (let i = 0; i < 200; i++) {
        const found = (await store.listIncompleteUploads(key)).find((u) => u.key === key);
        if (found) return found.uploadId;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error('the stalled upload never showed up');
    },
    async close() {
      for (const { body, put } of stalled) {
        body.destroy();
        await put;
      }
      await fsp.rm(directory, { recursive: true, force: true });
    },
  };
});

describe('FsObjectStore specifics', () => {
  let directory: string;
  let store: FsObjectStore;
  beforeAll(async () => {
    directory = await fsp.mkdtemp(path.join(os.tmpdir(), 'cairn-fs-store-'));
    store = new FsObjectStore({ directory });
  });
  afterAll(async () => {
    await fsp.rm(directory, { recursive: true, force: true });
  });

  it('stores objects at their key path and keeps temp files out of listings', async () => {
    await store.put('instances/i1/backups/b1/archive.tar.zst', Buffer.from('archive'));
    expect(await fsp.readFile(path.join(directory, 'instances/i1/backups/b1/archive.tar.zst'), 'utf8')).toBe('archive');
    expect(await fsp.readdir(path.join(directory, '.uploads'))).toEqual([]);
    expect((await store.list('')).items.map((i) => i.key)).toEqual(['instances/i1/backups/b1/archive.tar.zst']);
  });

  it('removes directories left empty by deletes', async () => {
    await store.put('tree/a/b/c.bin', Buffer.from('c'));
    await store.delete('tree/a/b/c.bin');
    await expect(fsp.stat(path.join(directory, 'tree'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a key that is both an object and a prefix of other keys, and the reserved area', async () => {
    await store.put('clash/x', Buffer.from('x'));
    const err = await store.put('clash/x/y', Buffer.from('y')).catch((e: unknown) => e);
    expect((err as CairnError).code).toBe('conflict');
    await store.put('clash2/x/y', Buffer.from('y'));
    expect(((await store.put('clash2/x', Buffer.from('x')).catch((e: unknown) => e)) as CairnError).code).toBe('conflict');
    expect(((await store.put('.uploads/evil', Buffer.from('x')).catch((e: unknown) => e)) as CairnError).code).toBe('validation');
    expect((await store.listIncompleteUploads('')).length).toBe(0);
  });

  it('fails a put whose upload was aborted by a sweep while it was running', async () => {
    const body = new Readable({ read() {} });
    body.push(Buffer.alloc(1000, 2));
    const put = store.put('swept/obj', body);
    let upload: { key: string; uploadId: string } | undefined;
    for (let i = 0; i < 200 && !upload; i++) {
      upload = (await store.listIncompleteUploads('swept/'))[0];
      if (!upload) await new Promise((r) => setTimeout(r, 10));
    }
    expect(upload?.key).toBe('swept/obj');
    await store.abortIncompleteUpload('swept/obj', upload!.uploadId);
    body.push(null);
    const err = await put.catch((e: unknown) => e);
    expect((err as CairnError).code).toBe('cancelled');
    expect(await store.head('swept/obj')).toBeNull();
  });

  it('rejects a cursor it did not issue', async () => {
    const err = await store.list('', { cursor: 'garbage' }).catch((e: unknown) => e);
    expect((err as CairnError).code).toBe('validation');
  });
});
