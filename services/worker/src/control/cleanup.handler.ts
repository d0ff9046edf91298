import { abortIncompleteUploads, CairnError, backupPrefix } from '@cairn/core';
import { type ObjectDecision, releaseArchiveObjects } from '@cairn/core/domain/object-references.ts';
import type { ControlHandler } from './control-context.ts';

/**
 * Cleanup of a soft-deleted backup (SPEC §10), then mark it `deleted`:
 * 1. what only this backup uses: any incomplete upload and every object under its prefix but its
 *    archive object (the index...);
 * 2. its archive object and those of the older backups it reads from (an incremental): each one
 *    is deleted when its owner is dead and no live backup reads from it, and kept otherwise, to be
 *    deleted by the cleanup of its last reader (domain/object-references.ts decides, under the GC
 *    lock). The backup is marked `deleted` even when its archive object stays.
 * Idempotent: running it twice is harmless. For a full backup nobody references, this removes
 * everything under its prefix, as it always did.
 */
export const runCleanup: ControlHandler = (ctx, payload) => ({
  record: payload.jobId ? { kind: 'existing', jobId: payload.jobId } : { kind: 'none' },
  work: {
    async run(run) {
      if (!payload.backupId) throw new CairnError('validation', 'cleanup needs a backupId');
      const backup = await ctx.records.backups.get(payload.backupId);
      if (!backup) throw new CairnError('not-found', `backup ${payload.backupId} does not exist`);
      if (backup.status !== 'deleting' && backup.status !== 'deleted')
        throw new CairnError('conflict', `backup ${backup.id} is ${backup.status}, not deleting`);

      const prefix = backupPrefix(backup.instanceId, backup.id);
      await abortIncompleteUploads(ctx.store, prefix);
      const own: string[] = [];
      for await (const obj of ctx.store.listAll(prefix)) if (obj.key !== backup.storageKey) own.push(obj.key);
      if (own.length) {
        const { failed } = await ctx.store.deleteMany(own);
        if (failed.length) throw new CairnError('unavailable', `could not delete ${failed.length} object(s): ${failed[0]!.message}`, { permanent: false });
      }

      const released = await releaseArchiveObjects(ctx.records, ctx.store, backup.id);
      await ctx.records.backups.transition(backup.id, ['deleting'], 'deleted', { deletedAt: backup.deletedAt ?? new Date() });
      const object = ({ ownerId, key }: ObjectDecision) => ({ backupId: ownerId, key });
      const objects = {
        deleted: [...own.map((key) => ({ backupId: backup.id, key })), ...released.deleted.map(object)],
        kept: released.kept.map((d) => ({ ...object(d), status: d.ownerStatus, reason: d.reason, ...(d.referrers ? { referencedBy: d.referrers } : {}) })),
      };
      const deletedObjects = objects.deleted.length;
      run.log.info({ backupId: backup.id, deletedObjects, kept: objects.kept.length }, 'backup objects removed');
      return { status: 'succeeded', result: { deletedObjects, objects } };
    },
  },
});
