/**
 * How another thread opens the same object store: a store object cannot cross threads, so one
 * that can be reopened elsewhere describes itself (ObjectStore.threadSpec) and the thread builds
 * its own from that. The store modules are loaded only when asked for, so a thread that never
 * reads from S3 never loads the SDK.
 */
import type { FsObjectStoreOptions } from './fs.object-store.ts';
import type { ObjectStore, StoreRequestError } from './object-store.ts';
import type { S3ObjectStoreOptions } from './s3.object-store.ts';

/** Holds credentials: passed between threads of one process, never logged or stored. */
export type ObjectStoreSpec = { kind: 's3'; options: S3ObjectStoreOptions } | { kind: 'fs'; options: FsObjectStoreOptions };

/** One store per spec per thread, kept for the thread's later jobs (an S3 client keeps its sockets). */
const opened = new Map<string, Promise<ObjectStore>>();

export function openStore(spec: ObjectStoreSpec): Promise<ObjectStore> {
  const id = JSON.stringify(spec);
  let store = opened.get(id);
  if (!store) {
    store = open(spec);
    opened.set(id, store);
    store.catch(() => opened.delete(id));
  }
  return store;
}

type RequestErrorListener = (e: StoreRequestError) => void;

/** A failed request of a store thread's store, on its way to the main thread's store (metrics). */
export interface StoreErrorMessage {
  t: 'store-error';
  error: StoreRequestError;
}
const relays = new WeakMap<ObjectStore, Set<RequestErrorListener>>();

/**
 * Reports `store`'s failed requests (an S3 store's, for metrics) to `listener` until the function
 * returned is called. The jobs sharing a thread's store each register one; every failure goes to
 * one of them (the earliest still running), so the main store's counter counts it once.
 */
export function relayRequestErrors(store: ObjectStore, listener: RequestErrorListener): () => void {
  let set = relays.get(store);
  if (!set) {
    const listeners = new Set<RequestErrorListener>();
    set = listeners;
    relays.set(store, listeners);
    store.onRequestError?.((e) => {
      for (const l of listeners) return l(e);
    });
  }
  set.add(listener);
  return () => void set.delete(listener);
}

/** relayRequestErrors, each failure posted (to the main thread) as a StoreErrorMessage. */
export function relayRequestErrorsTo(store: ObjectStore, post: (m: StoreErrorMessage) => void): () => void {
  return relayRequestErrors(store, (error) => post({ t: 'store-error', error }));
}

async function open(spec: ObjectStoreSpec): Promise<ObjectStore> {
  if (spec.kind === 's3') {
    // Node 20 is Cairn's fixed runtime: the SDK's notice about a future Node 22 floor is noise (as in the services' mains).
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const { S3ObjectStore } = await import('./s3.object-store.ts');
    return new S3ObjectStore(spec.options);
  }
  const { FsObjectStore } = await import('./fs.object-store.ts');
  return new FsObjectStore(spec.options);
}
