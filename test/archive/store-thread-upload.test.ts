/**
 * Objects stored by the store thread (upload-job.ts, threaded-upload.ts): the bytes arrive whole
 * and in order, the stream's writer keeps its backpressure, and a cancel, a refusing store or a
 * failing body leave no object and no upload behind, with the error that explains it.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { putFromThread } from '@cairn/core/archive/index.ts';
import { CairnError } from '@cairn/core/errors.ts';
import { FsObjectStore } from '@cairn/core/storage/fs.object-store.ts';
import { MemoryObjectStore } from '@cairn/core/storage/memory.object-store.ts';
import type { ObjectStore } from '@cairn/core/storage/object-store.ts';

let work: string;
let store: FsObjectStore;

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-store-thread-'));
  store = new FsObjectStore({ directory: path.join(work, 'store') });
});

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

/** Chunks as a pack writes them: large frames of their own, and a few small ones. */
function frames(count: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) out.push(i % 7 === 3 ? Buffer.from(`small ${i}\n`) : randomBytes(200_000 + i * 997));
  return out;
}

function drainOrClose(s: PassThrough): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      s.off('drain', done);
      s.off('close', done);
      resolve();
    };
    s.on('drain', done);
    s.on('close', done);
  });
}

async function leftovers(): Promise<number> {
  return (await store.listIncompleteUploads('')).length;
}

describe('putFromThread', () => {
  it('stores the stream byte for byte through the store thread, the writer held back while it waits', async () => {
    const chunks = frames(60);
    const want = Buffer.concat(chunks);
    const body = new PassThrough({ highWaterMark: 1 << 20 });
    let pending = 0;
    const writing = (async () => {
      for (const c of chunks) {
        // Never more than the writer's own buffer ahead: the store thread asks for chunks as it takes them.
        if (!body.write(c)) await new Promise((resolve) => body.once('drain', resolve));
        pending = Math.max(pending, body.writableLength);
      }
      body.end();
    })();
    const r = await putFromThread(store, 'objects/whole.bin', body);
    await writing;
    expect(r.size).toBe(want.length);
    expect(fs.readFileSync(path.join(store.directory, 'objects', 'whole.bin')).equals(want)).toBe(true);
    expect(pending).toBeLessThanOrEqual((1 << 20) + 300_000);
    expect(await leftovers()).toBe(0);
  });

  it('a store that cannot be reopened in another thread stores the stream itself', async () => {
    const memory = new MemoryObjectStore();
    expect((memory as ObjectStore).threadSpec?.()).toBeUndefined();
    const chunks = frames(5);
    await putFromThread(memory, 'k', Readable.from(chunks));
    const back: Buffer[] = [];
    for await (const c of await memory.get('k')) back.push(c as Buffer);
    expect(Buffer.concat(back).equals(Buffer.concat(chunks))).toBe(true);
  });

  it('a cancel mid-way leaves neither the object nor an upload behind, and says it was cancelled', async () => {
    const ac = new AbortController();
    const body = new PassThrough();
    let written = 0;
    const writing = (async () => {
      for (const c of frames(200)) {
        if (body.destroyed) return;
        written += c.length;
        if (written > 3_000_000) ac.abort(new Error('operator cancelled'));
        if (!body.write(c)) await drainOrClose(body);
      }
      body.end();
    })();
    const err = await putFromThread(store, 'objects/cancelled.bin', body, { signal: ac.signal }).catch((e: unknown) => e);
    await writing;
    expect(err).toMatchObject({ code: 'cancelled' });
    expect(fs.existsSync(path.join(store.directory, 'objects', 'cancelled.bin'))).toBe(false);
    expect(await leftovers()).toBe(0);
  });

  it("the store's refusal is the error (the body is stopped), and a failing body's own error is thrown as is", async () => {
    fs.mkdirSync(path.join(store.directory, 'taken'), { recursive: true });
    fs.writeFileSync(path.join(store.directory, 'taken', 'file'), 'x');
    // `taken` is a "directory" of other keys: the filesystem store refuses an object there.
    const body = Readable.from(frames(20));
    const refused = await putFromThread(store, 'taken', body).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(CairnError);
    expect((refused as CairnError).code).not.toBe('cancelled');
    expect(body.destroyed).toBe(true);

    const broken = new PassThrough();
    broken.write(randomBytes(300_000));
    setTimeout(() => broken.destroy(new CairnError('archive-corrupt', 'the packer failed')), 50);
    const err = await putFromThread(store, 'objects/broken.bin', broken).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'archive-corrupt', message: 'the packer failed' });
    expect(fs.existsSync(path.join(store.directory, 'objects', 'broken.bin'))).toBe(false);
    expect(await leftovers()).toBe(0);
  });
});
