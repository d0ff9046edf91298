/**
 * The main thread's side of the upload job (upload-job.ts): an object stored from a stream by the
 * store thread, each chunk handed over by transfer when the thread asks for one. Used for a pack's
 * output, whose chunks are frames nothing else holds; a store that cannot be reopened in another
 * thread (ObjectStore.threadSpec) stores the stream itself.
 */
import type { Readable } from 'node:stream';
import { MessageChannel } from 'node:worker_threads';
import { abortError, CairnError } from '../errors.ts';
import { eachChunk } from '../storage/each-chunk.ts';
import type { ObjectStore, PutObjectOptions } from '../storage/object-store.ts';
import { Wakeup } from './async-queue.ts';
import { transferView } from './buffers.ts';
import type { UploadJobData, UploadMessage, UploadRequest } from './upload-job.ts';
import { sharedWorkerHost, type WorkerHost } from './worker-host.ts';

const DRAIN_MS = 5_000;

/**
 * `store.put(key, body, opts)`, made by the store thread when the store can be reopened there.
 * The body's chunks are given away: those over 64 KiB are transferred (buffers.ts transferView),
 * so whoever wrote them must not use them again (a pack's frames, written once).
 */
export async function putFromThread(
  store: ObjectStore,
  key: string,
  body: Readable,
  opts: PutObjectOptions = {},
  host: WorkerHost = sharedWorkerHost(),
): Promise<{ size: number; etag?: string }> {
  const spec = store.threadSpec?.();
  if (!spec) return store.put(key, body, opts);
  const { signal } = opts;
  if (signal?.aborted) {
    body.destroy();
    throw abortError(signal);
  }
  const report = store.reportRequestError?.bind(store);
  let w: Awaited<ReturnType<WorkerHost['acquireStoreThread']>>;
  try {
    w = await host.acquireStoreThread();
  } catch (err) {
    body.destroy();
    throw err;
  }
  const { port1, port2 } = new MessageChannel();
  // The thread closes its end once its job is over, after the last of its messages: the failed
  // requests it relays arrive on this port, not with the job's answer, and may come after it.
  // Waited for only once the job is over; bounded, should a thread's job end without closing it.
  const closed = new Promise<void>((resolve) => port1.once('close', resolve));
  const drained = (): Promise<void> =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, DRAIN_MS);
      void closed.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  let failed: unknown;
  let jobFailed = false;
  let wanted = false;
  const wakeup = new Wakeup();
  const fail = (err: unknown): void => {
    failed ??= err;
    wakeup.notify();
  };
  const stop = (err: unknown): void => {
    port1.close();
    fail(err);
  };
  port1.on('message', (m: UploadRequest) => {
    if (m.t === 'store-error') report?.(m.error);
    else wanted = true;
    wakeup.notify();
  });
  const onAbort = (): void => stop(abortError(signal!));
  signal?.addEventListener('abort', onAbort, { once: true });
  // Cancelled while the store thread started: no event comes for that.
  if (signal?.aborted) onAbort();
  const data: UploadJobData = { store: spec, key, port: port2, ...(opts.contentType ? { contentType: opts.contentType } : {}) };
  const job = w.request<{ size: number; etag?: string }>('put-object', { data }, [port2]);
  // The thread's own failure (the store refused): stop sending, and it is the error thrown below.
  // The port stays open until the thread closes it, so its relayed request errors still arrive.
  job.catch((err: unknown) => {
    jobFailed = true;
    fail(err);
  });
  const send = (m: UploadMessage, transfer: ArrayBuffer[] = []): void => port1.postMessage(m, transfer);
  try {
    await eachChunk(body, async (chunk) => {
      await wakeup.until(() => wanted || failed !== undefined);
      if (failed !== undefined) throw failed;
      wanted = false;
      const view = transferView(chunk);
      send({ t: 'chunk', ...view }, [view.buf]);
    });
    if (failed === undefined) send({ t: 'end' });
    const done = await job;
    await drained();
    return done;
  } catch (err) {
    // Closing this end stops the thread's upload; not needed when the thread failed it itself.
    if (!jobFailed) stop(err);
    // The thread's answer explains an upload it stopped; an abort is a cancel whatever came first.
    await job.catch(() => undefined);
    await drained();
    if (signal?.aborted) throw abortError(signal);
    throw failed instanceof CairnError && failed.code !== 'cancelled' ? failed : err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    port1.close();
    host.releaseStoreThread();
  }
}
