import { CairnError, backupPrefix, transitionBackup, transitionJob, type Logger, type PrismaClient } from '@cairn/core';
import type { ObjectStore } from '@cairn/core/storage/object-store.ts';

export interface CleanupContext {
  prisma: PrismaClient;
  store: ObjectStore;
  logger: Logger;
}

/**
 * Cleanup of a soft-deleted backup (SPEC §10): delete every object under its prefix (and any
 * incomplete upload), then mark it `deleted`. Idempotent: running it twice is harmless.
 */
export async function runCleanup(ctx: CleanupContext, payload: { backupId?: string; jobId?: string }): Promise<{ deletedObjects: number }> {
  if (!payload.backupId) throw new CairnError('validation', 'cleanup needs a backupId');
  const backup = await ctx.prisma.backup.findUnique({ where: { id: payload.backupId } });
  if (!backup) throw new CairnError('not-found', `backup ${payload.backupId} does not exist`);
  if (payload.jobId) await transitionJob(ctx.prisma, payload.jobId, ['queued', 'running'], 'running', { startedAt: new Date() });
  if (backup.status !== 'deleting' && backup.status !== 'deleted') {
    throw new CairnError('conflict', `backup ${backup.id} is ${backup.status}, not deleting`);
  }
  const prefix = backupPrefix(backup.instanceId, backup.id);
  for (const upload of await ctx.store.listIncompleteUploads(prefix)) await ctx.store.abortIncompleteUpload(upload.key, upload.uploadId);
  const keys: string[] = [];
  for await (const obj of ctx.store.listAll(prefix)) keys.push(obj.key);
  const { failed } = await ctx.store.deleteMany(keys);
  if (failed.length) {
    throw new CairnError('unavailable', `could not delete ${failed.length} object(s): ${failed[0]!.message}`, { permanent: false });
  }
  await transitionBackup(ctx.prisma, backup.id, ['deleting'], 'deleted', { deletedAt: backup.deletedAt ?? new Date() });
  if (payload.jobId) await transitionJob(ctx.prisma, payload.jobId, ['queued', 'running'], 'succeeded', { result: { deletedObjects: keys.length } });
  ctx.logger.info({ backupId: backup.id, deletedObjects: keys.length }, 'backup objects removed');
  return { deletedObjects: keys.length };
}
