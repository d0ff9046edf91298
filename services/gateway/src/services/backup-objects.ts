import type { ObjectStore } from '@cairn/core/storage/object-store.ts';

/** Removal of everything stored under one backup's prefix, as the cleanup job does it. */
export class BackupObjects {
  constructor(private readonly store: ObjectStore) {}

  /** Aborts incomplete uploads and deletes every object under `prefix`; returns the count. */
  async deletePrefix(prefix: string): Promise<number> {
    for (const upload of await this.store.listIncompleteUploads(prefix)) await this.store.abortIncompleteUpload(upload.key, upload.uploadId);
    const keys: string[] = [];
    for await (const obj of this.store.listAll(prefix)) keys.push(obj.key);
    if (keys.length === 0) return 0;
    const { failed } = await this.store.deleteMany(keys);
    if (failed.length) throw new Error(`could not delete ${failed.length} object(s): ${failed[0]!.message}`);
    return keys.length;
  }
}
