/**
 * Range reads of a backup's archive objects, the one helper for every reader (restore, migrate
 * apply, verify, the gateway's downloads and file reads): its own object, or (a format 2 block's
 * `object`) the archive object of the backup named, which is of the same instance and codec
 * (frames are only reused so), so that object's key follows from the id.
 */
import type { Codec, RangeReader, UnpackSource } from '../archive/archive-types.ts';
import { CairnError } from '../errors.ts';
import type { Backup } from '../records/records.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { archiveKey, type Compression } from './object-layout.ts';

/** A missing object is `archive-missing`, naming the backup whose object it is and its key. */
export function backupRangeReader(
  store: ObjectStore,
  backup: Pick<Backup, 'id' | 'instanceId' | 'storageKey'>,
  codec: Codec,
  signal?: AbortSignal,
): RangeReader {
  return async (start, end, object) => {
    const key = object === undefined ? backup.storageKey : archiveKey(backup.instanceId, object, codec as Compression);
    try {
      return await store.get(key, { range: { start, end }, ...(signal ? { signal } : {}) });
    } catch (err) {
      if (err instanceof CairnError && err.code === 'not-found') {
        const what =
          object === undefined ? `the archive object of backup ${backup.id}` : `the archive object of backup ${object}, which backup ${backup.id} reads from,`;
        throw new CairnError('archive-missing', `${what} is missing (${key})`, { cause: err });
      }
      throw err;
    }
  };
}

/**
 * The unpack source of a backup's archive: its range reader, or with `thread` (STORE_THREAD), where
 * the store can be reopened in another thread, the recipe for the store thread to make the same
 * reads (its failed requests still reach this store's metrics).
 */
export function backupRangeSource(
  store: ObjectStore,
  backup: Pick<Backup, 'id' | 'instanceId' | 'storageKey'>,
  codec: Codec,
  signal?: AbortSignal,
  thread = true,
): Extract<UnpackSource, { rangeReader: RangeReader }> {
  const rangeReader = backupRangeReader(store, backup, codec, signal);
  const spec = thread ? store.threadSpec?.() : undefined;
  if (!spec) return { rangeReader };
  const report = store.reportRequestError?.bind(store);
  return {
    rangeReader,
    thread: {
      recipe: { kind: 'backup', store: spec, backup: { id: backup.id, instanceId: backup.instanceId, storageKey: backup.storageKey }, codec },
      ...(report ? { onRequestError: report } : {}),
    },
  };
}
