import { CairnError, backupPrefix, deletePrefix } from '@cairn/core';
import type { ControlHandler } from './control-context.ts';

/**
 * Cleanup of a soft-deleted backup (SPEC §10): delete every object under its prefix (and any
 * incomplete upload), then mark it `deleted`. Idempotent: running it twice is harmless.
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
      const deletedObjects = await deletePrefix(ctx.store, backupPrefix(backup.instanceId, backup.id));
      await ctx.records.backups.transition(backup.id, ['deleting'], 'deleted', { deletedAt: backup.deletedAt ?? new Date() });
      run.log.info({ backupId: backup.id, deletedObjects }, 'backup objects removed');
      return { status: 'succeeded', result: { deletedObjects } };
    },
  },
});
