/** The ObjectStore contract against MemoryObjectStore (the test fake), plus its test aids. */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CairnError } from '../../services/core/src/errors.ts';
import { MemoryObjectStore } from '../../services/core/src/storage/memory.object-store.ts';
import { objectStoreContract } from './object-store.contract.ts';

objectStoreContract('MemoryObjectStore', async () => {
  const store = new MemoryObjectStore({ name: 'contract' });
  const unusableStore = new MemoryObjectStore({ name: 'unusable' });
  unusableStore.available = false;
  const stalled: { body: Readable; put: Promise<unknown> }[] = [];
  return {
    store,
    unusableStore,
    unusableStoreName: 'memory:unusable',
    async leaveIncompleteUpload(key) {
      // A writer that sent data and then stalled: its put stays an incomplete upload.
      const body = new Readable({ read() {} });
      body.push(Buffer.alloc(1024 * 1024, 1));
      const put = store.put(key, body).catch((err: unknown) => err);
      stalled.push({ body, put });
      const found = (await store.listIncompleteUploads(key)).find((u) => u.key === key);
      if (!found) throw new Error('the stalled upload is not listed');
      return found.uploadId;
    },
    async close() {
      for (const { body, put } of stalled) {
        body.destroy();
        await put;
      }
    },
  };
});

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function failure(promise: Promise<unknown>): Promise<CairnError> {
  const err = await promise.then(
    () => {
      throw new Error('expected a rejection, but the promise resolved');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CairnError);
  return err as CairnError;
}

describe('MemoryObjectStore specifics', () => {
  it('fails a put whose upload was aborted by a sweep while it was running', async () => {
    const store = new MemoryObjectStore();
    const body = new Readable({ read() {} });
    body.push(Buffer.alloc(1000, 2));
    const put = store.put('swept/obj', body);
    const [upload] = await store.listIncompleteUploads('swept/');
    expect(upload?.key).toBe('swept/obj');
    await store.abortIncompleteUpload('swept/obj', upload!.uploadId);
    expect(await store.listIncompleteUploads('')).toEqual([]);
    body.push(null);
    expect((await failure(put)).code).toBe('cancelled');
    expect(body.destroyed).toBe(true);
    expect(await store.head('swept/obj')).toBeNull();
  });

  it('ignores an abort naming another key or an unknown upload', async () => {
    const store = new MemoryObjectStore();
    const uploadId = store.addIncompleteUpload('a/b');
    await store.abortIncompleteUpload('a/c', uploadId);
    await store.abortIncompleteUpload('a/b', 'no-such-upload');
    expect((await store.listIncompleteUploads('a/')).map((u) => u.uploadId)).toEqual([uploadId]);
  });

  it('lists uploads added as left behind by crashed writers, without objects', async () => {
    const store = new MemoryObjectStore();
    const old = new Date('2024-01-01T00:00:00Z');
    const first = store.addIncompleteUpload('orphans/b');
    const second = store.addIncompleteUpload('orphans/a', old);
    expect(await store.listIncompleteUploads('orphans/')).toEqual([
      { key: 'orphans/a', uploadId: second, initiated: old },
      { key: 'orphans/b', uploadId: first, initiated: expect.any(Date) },
    ]);
    expect(await store.head('orphans/a')).toBeNull();
    await store.abortIncompleteUpload('orphans/a', second);
    expect((await store.listIncompleteUploads('orphans/')).map((u) => u.key)).toEqual(['orphans/b']);
    expect(() => store.addIncompleteUpload('bad//key')).toThrow(CairnError);
  });

  it('fails the next put, get or delete once when told to, changing nothing', async () => {
    const store = new MemoryObjectStore();
    await store.put('f/x', Buffer.from('old'));

    store.failNext('put');
    const body = Readable.from([Buffer.from('new')]);
    const err = await failure(store.put('f/x', body));
    expect(err.code).toBe('unavailable');
    expect(err.permanent).toBe(false);
    expect(body.destroyed).toBe(true);
    expect((await readAll(await store.get('f/x'))).toString()).toBe('old');
    await store.put('f/x', Buffer.from('new'));

    const custom = new CairnError('checksum-mismatch', 'bad bytes');
    store.failNext('get', custom);
    expect(await failure(store.get('f/x'))).toBe(custom);
    expect((await readAll(await store.get('f/x'))).toString()).toBe('new');

    store.failNext('delete');
    const result = await store.deleteMany(['f/x', 'f/y']);
    expect(result.failed).toEqual([{ key: 'f/x', message: expect.stringContaining('injected failure of delete') }]);
    expect(result.deleted).toEqual(['f/y']);
    expect(await store.head('f/x')).not.toBeNull();
  });

  it('does not spend an injected failure on a call that fails validation or was already cancelled', async () => {
    const store = new MemoryObjectStore();
    store.failNext('put');
    expect((await failure(store.put('bad//key', Buffer.from('x')))).code).toBe('validation');
    const controller = new AbortController();
    controller.abort(new Error('gone'));
    expect((await failure(store.put('ok', Buffer.from('x'), { signal: controller.signal }))).code).toBe('cancelled');
    expect((await failure(store.put('ok', Buffer.from('x')))).code).toBe('unavailable');
    await store.put('ok', Buffer.from('x'));
  });

  it('counts the bytes get streams deliver', async () => {
    const store = new MemoryObjectStore();
    await store.put('count/data', Buffer.alloc(3 * 1024 * 1024, 5));
    expect(store.bytesRead).toBe(0);
    await readAll(await store.get('count/data', { range: { start: 10, end: 19 } }));
    expect(store.bytesRead).toBe(10);
    await readAll(await store.get('count/data', { range: { suffix: 7 } }));
    expect(store.bytesRead).toBe(17);
    await readAll(await store.get('count/data'));
    expect(store.bytesRead).toBe(17 + 3 * 1024 * 1024);
  });

  it('behaves like an unreachable store while marked unavailable', async () => {
    const store = new MemoryObjectStore({ name: 'outage' });
    await store.put('o/x', Buffer.from('x'));
    store.available = false;
    const err = await failure(store.ping());
    expect(err.code).toBe('unavailable');
    expect(err.message).toContain('memory:outage');
    const calls = [
      () => store.put('o/y', Buffer.from('y')),
      () => store.get('o/x'),
      () => store.head('o/x'),
      () => store.list('o/'),
      () => store.delete('o/x'),
    ];
    for (const call of calls) expect((await failure(call())).code).toBe('unavailable');
    store.available = true;
    await store.ping();
    expect((await store.list('o/')).items.map((i) => i.key)).toEqual(['o/x']);
  });

  it('keeps stored bytes apart from the buffers callers put and read', async () => {
    const store = new MemoryObjectStore();
    const data = Buffer.from('original');
    const { etag } = await store.put('iso/x', data);
    data.fill(0);
    const read = await readAll(await store.get('iso/x'));
    read.fill(0);
    expect((await readAll(await store.get('iso/x'))).toString()).toBe('original');
    expect((await store.head('iso/x'))?.etag).toBe(etag);
  });

  it('gives a reader the version it opened, even when the object is replaced meanwhile', async () => {
    const store = new MemoryObjectStore();
    await store.put('snap/x', Buffer.from('first'));
    const stream = await store.get('snap/x');
    await store.put('snap/x', Buffer.from('second'));
    await store.delete('snap/x');
    expect((await readAll(stream)).toString()).toBe('first');
  });

  it('rejects a cursor it did not issue', async () => {
    const store = new MemoryObjectStore();
    expect((await failure(store.list('', { cursor: 'garbage' }))).code).toBe('validation');
  });
});
