/**
 * Garbage collection of archive objects shared by incremental backups (issue 11): the cleanup
 * job's decisions, referenceParent's refusals and exclusiveBytes, over MemoryRecords and
 * MemoryObjectStore.
 */
import { describe, expect, it } from 'vitest';
import { CairnError, createLogger, type JobQueues, MemoryObjectStore, MemoryRecords } from '@cairn/core';
import { exclusiveBytes, referenceParent, releaseArchiveObjects } from '@cairn/core/domain/object-references.ts';
import {
  archiveOf,
  cleanup,
  complete,
  deleteBackup,
  fullBackup,
  type GcWorld,
  gcWorld,
  incrementalBackup,
  indexOf,
  markDeleting,
  objectKeys,
  startBackup,
  uploadArchive,
  uploadIndex,
} from './gc-fixture.ts';
import { runOrphanSweep } from '@cairn/worker/control/orphan-sweep.service.ts';

async function world(): Promise<GcWorld & { records: MemoryRecords; store: MemoryObjectStore }> {
  const records = new MemoryRecords();
  const store = new MemoryObjectStore();
  return (await gcWorld(records, store)) as GcWorld & { records: MemoryRecords; store: MemoryObjectStore };
}

const status = async (w: GcWorld, id: string) => (await w.records.backups.get(id))?.status;

describe('cleanup with shared archive objects', () => {
  it('a full backup nobody reads from: everything under its prefix goes, an incomplete upload too', async () => {
    const w = await world();
    const full = await fullBackup(w);
    const other = await fullBackup(w);
    w.store.addIncompleteUpload(`instances/${w.instanceId}/backups/${full}/archive.tar.zst`);
    const result = await deleteBackup(w, full);
    expect(result.deletedObjects).toBe(2);
    expect(result.objects).toEqual({
      deleted: [
        { backupId: full, key: indexOf(w, full) },
        { backupId: full, key: archiveOf(w, full) },
      ],
      kept: [],
    });
    expect(await status(w, full)).toBe('deleted');
    expect(await objectKeys(w)).toEqual([archiveOf(w, other), indexOf(w, other)].sort());
    expect(await w.store.listIncompleteUploads(`instances/${w.instanceId}/`)).toEqual([]);
  });

  it('an owner deleted while an incremental reads from it: its index goes, its archive stays, the row is deleted', async () => {
    const w = await world();
    const full = await fullBackup(w);
    const inc = await incrementalBackup(w, full);
    expect(inc.owners).toEqual([full]);
    const result = await deleteBackup(w, full);
    expect(await status(w, full)).toBe('deleted');
    expect(result.objects).toEqual({
      deleted: [{ backupId: full, key: indexOf(w, full) }],
      kept: [{ backupId: full, key: archiveOf(w, full), status: 'deleting', reason: 'referenced by live backups', referencedBy: [inc.id] }],
    });
    expect(await objectKeys(w)).toEqual([archiveOf(w, full), archiveOf(w, inc.id), indexOf(w, inc.id)].sort());
  });

  it('the last reader deleted: its objects and the archive it kept alive both go', async () => {
    const w = await world();
    const full = await fullBackup(w);
    const inc = await incrementalBackup(w, full);
    await deleteBackup(w, full);
    const result = await deleteBackup(w, inc.id);
    expect(result.deletedObjects).toBe(3);
    expect(result.objects.deleted).toEqual([
      { backupId: inc.id, key: indexOf(w, inc.id) },
      { backupId: inc.id, key: archiveOf(w, inc.id) },
      { backupId: full, key: archiveOf(w, full) },
    ]);
    expect(result.objects.kept).toEqual([]);
    expect(await objectKeys(w)).toEqual([]);
    expect(await status(w, inc.id)).toBe('deleted');
  });

  it('an incremental deleted before its parent: the parent, still completed, keeps its archive', async () => {
    const w = await world();
    const full = await fullBackup(w);
    const inc = await incrementalBackup(w, full);
    const result = await deleteBackup(w, inc.id);
    expect(result.objects.kept).toEqual([{ backupId: full, key: archiveOf(w, full), status: 'completed', reason: 'owner is live' }]);
    expect(await objectKeys(w)).toEqual([archiveOf(w, full), indexOf(w, full)].sort());
    // Then the parent: nothing reads from it any more.
    await deleteBackup(w, full);
    expect(await objectKeys(w)).toEqual([]);
  });

  it('a failed or cancelled reader keeps nothing alive', async () => {
    const w = await world();
    const full = await fullBackup(w);
    const failed = await startBackup(w, full);
    await referenceParent(w.records, { backupId: failed, parentId: full });
    const cancelled = await startBackup(w, full);
    await referenceParent(w.records, { backupId: cancelled, parentId: full });
    expect(await w.records.backups.liveReferrers(full)).toEqual([failed, cancelled].sort());
    await w.records.backups.transition(failed, ['running'], 'failed', { error: 'boom' });
    await w.records.backups.transition(cancelled, ['running'], 'cancelled', { error: 'stop' });
    const result = await deleteBackup(w, full);
    expect(result.objects.kept).toEqual([]);
    expect(await objectKeys(w)).toEqual([]);
  });

  it('a reader that fails after its owner was cleaned up releases the owner (the pipeline failure path)', async () => {
    const w = await world();
    const full = await fullBackup(w);
    const running = await startBackup(w, full);
    await referenceParent(w.records, { backupId: running, parentId: full });
    await uploadArchive(w, running, 10);
    expect((await deleteBackup(w, full)).objects.kept.map((k) => k.backupId)).toEqual([full]);
    expect(await w.store.head(archiveOf(w, full))).not.toBeNull();
    await w.records.backups.transition(running, ['running'], 'failed', { error: 'boom' });
    const released = await releaseArchiveObjects(w.records, w.store, running);
    expect(released.deleted.map((d) => d.ownerId)).toEqual([running, full]);
    expect(await objectKeys(w)).toEqual([]);
    // A live backup releases nothing.
    const live = await fullBackup(w);
    await expect(releaseArchiveObjects(w.records, w.store, live)).rejects.toMatchObject({ code: 'conflict' });
    expect(await w.store.head(archiveOf(w, live))).not.toBeNull();
  });

  it('a chain of three: each deletion keeps exactly what a live backup still reads, whatever the order', async () => {
    const orders = [
      ['full', 'inc1', 'inc2'],
      ['full', 'inc2', 'inc1'],
      ['inc1', 'full', 'inc2'],
      ['inc1', 'inc2', 'full'],
      ['inc2', 'full', 'inc1'],
      ['inc2', 'inc1', 'full'],
    ] as const;
    for (const order of orders) {
      const w = await world();
      const full = await fullBackup(w);
      const inc1 = await incrementalBackup(w, full);
      const inc2 = await incrementalBackup(w, inc1.id);
      // References propagate: the second incremental reads from its parent and its parent's owner.
      expect(inc2.owners).toEqual([inc1.id, full]);
      expect(await w.records.backups.referencedOwners(inc2.id)).toEqual([full, inc1.id].sort());
      const ids = { full, inc1: inc1.id, inc2: inc2.id };
      const readers: Record<string, string[]> = { full: [], inc1: ['full'], inc2: ['full', 'inc1'] };
      const deleted = new Set<string>();
      for (const name of order) {
        await deleteBackup(w, ids[name]);
        deleted.add(name);
        // An archive must stay exactly while its owner or a backup reading from it is alive.
        const expected: string[] = [];
        for (const [n, id] of Object.entries(ids)) {
          const needed = !deleted.has(n) || Object.entries(readers).some(([reader, owners]) => !deleted.has(reader) && owners.includes(n));
          if (needed) expected.push(archiveOf(w, id));
          if (!deleted.has(n)) expected.push(indexOf(w, id));
        }
        expect(await objectKeys(w), `after deleting ${[...deleted].join(', ')}`).toEqual(expected.sort());
        expect(await status(w, ids[name])).toBe('deleted');
      }
      expect(await objectKeys(w)).toEqual([]);
    }
  });

  it('a store failure fails the cleanup transiently and leaves it deleting; the retry finishes it', async () => {
    const w = await world();
    const full = await fullBackup(w);
    expect(await markDeleting(w, full)).toBe(true);
    w.store.failNext('delete');
    await expect(cleanup(w, full)).rejects.toThrow(/unavailable: could not delete 1 object/);
    expect(await status(w, full)).toBe('deleting');
    await cleanup(w, full);
    expect(await status(w, full)).toBe('deleted');
    expect(await objectKeys(w)).toEqual([]);
    // Running it again is harmless.
    expect((await cleanup(w, full)).deletedObjects).toBe(0);
  });
});

describe('referenceParent', () => {
  it('refuses a parent that is not completed (being deleted, running, deleted): the caller writes a full backup', async () => {
    const w = await world();
    const full = await fullBackup(w);
    expect(await markDeleting(w, full)).toBe(true);
    const child = await startBackup(w, full);
    const err = await referenceParent(w.records, { backupId: child, parentId: full }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CairnError);
    expect(err).toMatchObject({ code: 'conflict', message: expect.stringContaining('deleting, not completed') });
    const running = await startBackup(w);
    await expect(referenceParent(w.records, { backupId: child, parentId: running })).rejects.toMatchObject({ code: 'conflict' });
    expect(await w.records.backups.referencedOwners(child)).toEqual([]);
    // The cleanup then removes the parent's archive: nothing reads from it.
    await cleanup(w, full);
    expect(await w.store.head(archiveOf(w, full))).toBeNull();
  });

  it('refuses a backup that no longer runs, itself as parent and a parent of another instance; is idempotent', async () => {
    const w = await world();
    const other = await gcWorld(w.records, w.store);
    const full = await fullBackup(w);
    const foreign = await fullBackup(other);
    const child = await startBackup(w, full);
    await expect(referenceParent(w.records, { backupId: child, parentId: child })).rejects.toMatchObject({ code: 'validation' });
    await expect(referenceParent(w.records, { backupId: child, parentId: foreign })).rejects.toMatchObject({ code: 'validation' });
    expect(await referenceParent(w.records, { backupId: child, parentId: full })).toEqual([full]);
    expect(await referenceParent(w.records, { backupId: child, parentId: full })).toEqual([full]);
    expect(await w.records.backups.referencedOwners(child)).toEqual([full]);
    await w.records.backups.transition(child, ['running'], 'cancelled');
    const second = await fullBackup(w);
    await expect(referenceParent(w.records, { backupId: child, parentId: second })).rejects.toMatchObject({ code: 'conflict' });
    expect(await w.records.backups.referencedOwners(child)).toEqual([full]);
  });
});

describe('exclusiveBytes', () => {
  it('counts a backup’s own archive unless a live backup reads from it, plus dead owners it alone keeps', async () => {
    const w = await world();
    const full = await fullBackup(w, 1000);
    expect(await exclusiveBytes(w.records, full)).toBe(1000n);
    const inc = await incrementalBackup(w, full, 100);
    expect(await exclusiveBytes(w.records, full)).toBe(0n);
    expect(await exclusiveBytes(w.records, inc.id)).toBe(100n);
    // The parent deleted: the incremental alone keeps its archive, so deleting it frees both.
    await deleteBackup(w, full);
    expect(await exclusiveBytes(w.records, inc.id)).toBe(1100n);
    // A second reader shares the dead parent's archive: neither frees it alone.
    const inc2 = await startBackup(w, inc.id);
    expect(await referenceParent(w.records, { backupId: inc2, parentId: inc.id })).toEqual([inc.id, full]);
    await uploadArchive(w, inc2, 10);
    await uploadIndex(w, inc2);
    await complete(w, inc2, 10);
    expect(await exclusiveBytes(w.records, inc.id)).toBe(0n);
    expect(await exclusiveBytes(w.records, inc2)).toBe(10n);
    await expect(exclusiveBytes(w.records, 'nope')).rejects.toMatchObject({ code: 'not-found' });
  });
});

describe('orphan sweep and shared archive objects', () => {
  // The sweep's step 5 skips the objects of a dead backup with live referrers (without that it
  // deleted an archive a live incremental still reads from).
  it('keeps the archive of a deleted backup that a live incremental reads from', async () => {
    const w = await world();
    const full = await fullBackup(w);
    const inc = await incrementalBackup(w, full);
    await deleteBackup(w, full);
    const queues = { queue: () => ({ getJob: async () => undefined }), cancel: async () => 'gone' as const, enqueueControl: async () => {} };
    await runOrphanSweep(
      {
        records: w.records,
        store: w.store,
        queues: queues as unknown as JobQueues,
        logger: createLogger({ level: 'silent', name: 'gc-test' }),
        clock: () => new Date(Date.now() + 3600_000),
      },
      { orphanGraceMs: 0 },
    );
    expect(await objectKeys(w)).toEqual([archiveOf(w, full), archiveOf(w, inc.id), indexOf(w, inc.id)].sort());
  });
});
