/**
 * Garbage collection of shared archive objects against the run's Postgres and S3 server (issue 11):
 * backups referencing their parents (referenceParent) race deletions and their cleanup jobs, many
 * times; the GC lock (a Postgres advisory lock) orders the decisions. Nothing a live backup reads
 * from may ever be deleted, and nothing unreferenced may be left behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type ObjectStore, PrismaRecords } from '@cairn/core';
import { createObjectStore } from '@cairn/core/runtime.ts';
import { referenceParent } from '@cairn/core/domain/object-references.ts';
import {
  archiveOf,
  deleteBackup,
  fullBackup,
  gcRace,
  gcWorld,
  incrementalBackup,
  indexOf,
  jittered,
  markDeleting,
  objectKeys,
  startBackup,
} from '../unit/gc-fixture.ts';

describe('garbage collection on Postgres and S3', () => {
  let records: PrismaRecords;
  let store: ObjectStore;

  beforeAll(async () => {
    const config = loadConfig(process.env);
    records = PrismaRecords.open(config.DATABASE_URL, { max: 12 });
    await records.ping();
    store = createObjectStore(config);
  });
  afterAll(async () => {
    await records?.close();
    await (store as { close?: () => Promise<void> } | undefined)?.close?.();
  });

  it('an incremental outlives its deleted parent; the last reader takes both archives', async () => {
    const w = await gcWorld(records, store);
    const full = await fullBackup(w);
    const inc = await incrementalBackup(w, full);
    const first = await deleteBackup(w, full);
    expect(first.objects.kept).toEqual([
      { backupId: full, key: archiveOf(w, full), status: 'deleting', reason: 'referenced by live backups', referencedBy: [inc.id] },
    ]);
    expect(await objectKeys(w)).toEqual([archiveOf(w, full), archiveOf(w, inc.id), indexOf(w, inc.id)].sort());
    // A new backup may not start from the deleted parent, but from the incremental (and so its parent's archive).
    const next = await startBackup(w, full);
    await expect(referenceParent(records, { backupId: next, parentId: full })).rejects.toMatchObject({ code: 'conflict' });
    expect(await referenceParent(records, { backupId: next, parentId: inc.id })).toEqual([inc.id, full]);
    expect(await markDeleting(w, next)).toBe(true);
    await deleteBackup(w, inc.id).then((r) => expect(r.objects.kept.map((k) => k.backupId)).toEqual([]));
    expect(await objectKeys(w)).toEqual([]);
  });

  it('races cleanups against referenceParent: nothing referenced is lost, nothing unreferenced remains', { timeout: 150_000 }, async () => {
    const totals = { incrementals: 0, fallbacks: 0, deletes: 0, keptReferenced: 0, deletedByReader: 0, failedBackups: 0 };
    // referenceParent waits up to 150 ms between its check of the parent and its write: long enough
    // for a soft delete and a whole cleanup to fit in between. Without the GC lock this test fails
    // (a backup ends up reading from a deleted archive) in every run tried; with it, it never may.
    // Which interleavings happen is up to the scheduler: at least 3 runs, and more (up to 10) until
    // each one the assertions below ask for has been seen (a CI run once saw no kept archive in 3).
    const seenAll = () => totals.incrementals > 0 && totals.fallbacks > 0 && totals.keptReferenced > 0 && totals.deletedByReader > 0;
    for (let run = 0; run < 10 && (run < 3 || !seenAll()); run++) {
      const stats = await gcRace(await gcWorld(jittered(records, 3, 150), store), { workers: 8, rounds: 12 });
      for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += stats[k];
    }
    // The interleavings the test is about happened: parents deleted under their readers (refused
    // references, archives kept for live readers and later removed by the last one's cleanup).
    expect(totals.incrementals).toBeGreaterThan(0);
    expect(totals.fallbacks).toBeGreaterThan(0);
    expect(totals.keptReferenced).toBeGreaterThan(0);
    expect(totals.deletedByReader).toBeGreaterThan(0);
  });
});
