/**
 * How another thread opens the same object store: a store object cannot cross threads, so one
 * that can be reopened elsewhere describes itself (ObjectStore.threadSpec) and the thread builds
 * its own from that. The store modules are loaded only when asked for, so a thread that never
 * reads from S3 never loads the SDK.
 */
import type { FsObjectStoreOptions } from './fs.object-store.ts';
import type { ObjectStore } from './object-store.ts';
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

async function open(spec: ObjectStoreSpec): Promise<ObjectStore> {
  if (spec.kind === 's3') {
    const { S3ObjectStore } = await import('./s3.object-store.ts');
    return new S3ObjectStore(spec.options);
  }
  const { FsObjectStore } = await import('./fs.object-store.ts');
  return new FsObjectStore(spec.options);
}
