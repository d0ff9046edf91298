/**
 * The upload job, run on the store thread (WorkerHost.acquireStoreThread) during a backup: it
 * stores one object from the chunks the main thread hands over by transfer (a pack's frames), with
 * the thread's own store built from the main thread's spec. So the frames do not die in the main
 * thread's heap (there, every one stayed external memory until a collection, and V8 marked that
 * whole heap every ~10 MB of them: DESIGN §10); here they are copied into part buffers and dropped
 * where the heap is small and a collection cheap.
 *
 * Flow: the body asks for more (UploadRequest) whenever its buffer has room; the main thread sends
 * a chunk per request. The main thread closing its port aborts the upload (nothing is left behind:
 * ObjectStore.put's contract); the result or the error is the job's reply.
 */
import { Readable } from 'node:stream';
import type { MessagePort } from 'node:worker_threads';
import { CairnError } from '../errors.ts';
import { openStore, relayRequestErrorsTo, type ObjectStoreSpec, type StoreErrorMessage } from '../storage/store-spec.ts';
import { fromView, type TransferView } from './buffers.ts';
import { handled } from './thread-gc.ts';

export interface UploadJobData {
  store: ObjectStoreSpec;
  key: string;
  contentType?: string;
  port: MessagePort;
}

/** Main thread -> store thread. */
export type UploadMessage = ({ t: 'chunk' } & TransferView) | { t: 'end' };

/** Store thread -> main thread: send one more chunk; a failed store request (metrics). */
export type UploadRequest = { t: 'more' } | StoreErrorMessage;

/** Whatever the body holds before it asks for more (the main thread keeps the rest, in its pack's backpressure). */
const BODY_BUFFER = 1 << 20;

export async function runUploadJob(d: UploadJobData): Promise<{ size: number; etag?: string }> {
  const { port } = d;
  const stop = new AbortController();
  let asked = false;
  const body = new Readable({
    highWaterMark: BODY_BUFFER,
    read() {
      if (asked) return;
      asked = true;
      port.postMessage({ t: 'more' } satisfies UploadRequest);
    },
  });
  port.on('message', (m: UploadMessage) => {
    if (m.t === 'end') {
      body.push(null);
      return;
    }
    asked = false;
    body.push(fromView(m));
    handled(m.length);
  });
  port.once('close', () => {
    const err = new CairnError('cancelled', 'the upload was stopped');
    stop.abort(err);
    body.destroy(err);
  });
  let unrelay = (): void => undefined;
  try {
    const store = await openStore(d.store);
    unrelay = relayRequestErrorsTo(store, (m) => port.postMessage(m satisfies UploadRequest));
    if (stop.signal.aborted) throw stop.signal.reason;
    return await store.put(d.key, body, { signal: stop.signal, ...(d.contentType ? { contentType: d.contentType } : {}) });
  } finally {
    unrelay();
    port.close();
  }
}
