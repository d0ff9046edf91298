import type { Logger } from '@cairn/core';
import { writeBackupManifest } from '@cairn/core/domain/catalog-manifest.ts';
import type { NodeContext } from './node-context.ts';

/**
 * Writes the manifest of a backup that just completed (issue 14, restore from the bucket alone:
 * domain/catalog-manifest.ts), next to its index. Best effort: the backup is completed and
 * restorable either way, and `cairn catalog rebuild` falls back to the index of a backup without
 * one; a failure is logged, never thrown.
 */
export async function recordBackupManifest(ctx: Pick<NodeContext, 'records' | 'store'>, backupId: string, log: Logger): Promise<void> {
  try {
    const key = await writeBackupManifest(ctx.records, ctx.store, backupId);
    log.debug({ backupId, key }, 'backup manifest written');
  } catch (err) {
    log.warn({ backupId, err: (err as Error).message }, 'could not write the backup manifest; a catalog rebuild will fall back to its index');
  }
}
