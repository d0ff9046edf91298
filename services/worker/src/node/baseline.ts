import { createHash } from 'node:crypto';
import { lstatSync } from 'node:fs';
import { pipeline } from 'node:stream';
import { CairnError, encryptionOf, keyringOf, sealIndexStream, type Backup } from '@cairn/core';
import { encodeIndexStream } from '@cairn/core/archive/archive-index.ts';
import { pathToBytes, type ArchiveEntry, type ArchiveIndexHead, type StreamedIndex } from '@cairn/core/archive/index.ts';
import { msFromParts, splitNs } from '@cairn/core/archive/tar-header.ts';
import { referenceParent, releaseArchiveObjects } from '@cairn/core/domain/object-references.ts';
import type { JobRun } from '../job-lifecycle.ts';
import type { NodeContext } from './node-context.ts';

const EMPTY_SHA256 = createHash('sha256').digest('hex');

/**
 * A moved instance's stat baseline (issue 12): after a migrate restored backup `of` into the
 * target host paths, backup `backupId` (pending, made by the migrate) becomes a backup of the
 * same tree whose index carries the target's ctime, inode and device for every entry, and whose
 * frames are all `of`'s (it stores nothing of its own). The instance's next `auto` backup on the
 * target takes it as parent and reads only what changed, instead of every file (their inodes
 * and ctimes differ from the source's).
 *
 * Best effort: a baseline that cannot be written is marked failed (and releases what it
 * referenced); the restore it follows stands.
 */
export async function writeBaseline(
  ctx: NodeContext,
  run: JobRun,
  opts: { backupId: string; of: Backup; index: StreamedIndex; dirs: Record<string, string> },
): Promise<boolean> {
  const { records, store } = ctx;
  const { backupId, of, index, dirs } = opts;
  const baseline = await records.backups.get(backupId);
  if (baseline?.status !== 'pending' && baseline?.status !== 'running') return false;
  try {
    if (!(await records.backups.transition(backupId, ['pending', 'running'], 'running', { startedAt: new Date() }))) return false;
    const objects = await referenceParent(records, { backupId, parentId: of.id });
    const statOf = (e: ArchiveEntry): ArchiveEntry => {
      const slash = e.path.indexOf('/');
      const volume = slash < 0 ? e.path : e.path.slice(0, slash);
      const dir = dirs[volume];
      if (!dir) throw new CairnError('internal', `no restored directory for volume ${volume}`);
      const full = slash < 0 ? Buffer.from(dir) : Buffer.concat([Buffer.from(`${dir}/`), pathToBytes(e.path.slice(slash + 1))]);
      const st = lstatSync(full, { bigint: true });
      const { sec, nsec } = splitNs(st.ctimeNs);
      return { ...e, ctimeMs: msFromParts(sec, nsec), ino: Number(st.ino), dev: Number(st.dev) };
    };
    // Stated batch by batch as the index is uploaded: memory stays one batch whatever the file count.
    const entries = index.entries;
    const count = index.totals.entries;
    const batches = (function* () {
      for (const batch of entries.batches()) yield batch.map(statOf);
    })();
    const blocks = index.blocks.map((b) => (b.object === undefined ? { ...b, object: of.id } : b));
    const reusedBytes = blocks.reduce((n, b) => n + b.compressedLength, 0);
    const head: ArchiveIndexHead = {
      ...index,
      createdAt: new Date().toISOString(),
      meta: { ...index.meta, backupId, baselineOf: of.id, nodeId: ctx.nodeId },
      sha256: EMPTY_SHA256,
      objects: [...new Set([...(index.objects ?? []), of.id])].filter((o) => objects.includes(o)),
      totals: { ...index.totals, storedBytes: 0, reusedBytes },
      blocks,
    };
    delete (head as Partial<StreamedIndex>).entries;
    // Its own data key when the backups are encrypted: the index is sealed like any other.
    const dataKey = encryptionOf(of.encryption) ? keyringOf(ctx.config as never)?.newDataKey(backupId) : undefined;
    if (encryptionOf(of.encryption) && !dataKey) throw new CairnError('config', `backup ${of.id} is encrypted and CAIRN_MASTER_KEYS is not set here`);
    if (!(await records.backups.transition(backupId, ['running'], 'running', { encryption: dataKey?.encryption ?? { mode: 'none' } })))
      throw new CairnError('conflict', `baseline backup ${backupId} changed while it was written`);
    const plain = encodeIndexStream(head, count, batches);
    let body: NodeJS.ReadableStream = plain;
    if (dataKey) {
      const sealed = sealIndexStream(dataKey.key, backupId);
      pipeline(plain, sealed, () => undefined);
      body = sealed;
    }
    await store.put(baseline.indexKey, body as never, { signal: run.signal, contentType: dataKey ? 'application/octet-stream' : 'application/gzip' });
    const done = await records.backups.transition(backupId, ['running'], 'completed', {
      completedAt: new Date(),
      sizeBytes: 0n,
      logicalBytes: BigInt(index.totals.logicalBytes),
      reusedBytes: BigInt(reusedBytes),
      fileCount: index.totals.files,
      sha256: EMPTY_SHA256,
      format: index.version,
      error: null,
    });
    if (!done) throw new CairnError('conflict', `baseline backup ${backupId} changed while it was written`);
    return true;
  } catch (err) {
    run.log.warn({ err: (err as Error).message, backupId }, 'the stat baseline of the moved instance could not be written; its next backup reads every file');
    await records.backups
      .transition(backupId, ['pending', 'running'], 'failed', { error: (err as Error).message, completedAt: new Date() })
      .then(() => releaseArchiveObjects(records, store, backupId))
      .catch(() => undefined);
    return false;
  }
}
