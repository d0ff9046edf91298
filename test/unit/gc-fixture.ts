/**
 * Shared by the garbage-collection tests (test/unit/gc-*.test.ts over MemoryRecords, and
 * test/e2e/gc.e2e.test.ts over Postgres): a world of one instance, backups written the way the
 * incremental pipeline will (row, referenceParent, objects, completion), the cleanup job run
 * through the job lifecycle, and a race of backups and deletions with its invariants.
 */
import type { Job as BullJob } from 'bullmq';
import { expect } from 'vitest';
import {
  archiveKey,
  createLogger,
  indexKey,
  isCairnError,
  type JobQueues,
  LIVE_BACKUP_STATUSES,
  newId,
  type ObjectStore,
  type RecordSet,
  type Records,
} from '@cairn/core';
import { referenceParent, releaseArchiveObjects } from '@cairn/core/domain/object-references.ts';
import { runCleanup } from '@cairn/worker/control/cleanup.handler.ts';
import type { ControlContext } from '@cairn/worker/control/control-context.ts';
import { JobLifecycle, type WorkOutcome } from '@cairn/worker/job-lifecycle.ts';

const logger = createLogger({ level: 'silent', name: 'gc-test' });

export interface GcWorld {
  records: Records;
  store: ObjectStore;
  instanceId: string;
}

/** What the cleanup job records about the objects it looked at. */
export interface CleanupResult {
  deletedObjects: number;
  objects: {
    deleted: { backupId: string; key: string }[];
    kept: { backupId: string; key: string; status: string; reason: string; referencedBy?: string[] }[];
  };
}

/** A tenant, a node and an instance of this world's own (fresh ids: the Postgres run is shared). */
export async function gcWorld(records: Records, store: ObjectStore): Promise<GcWorld> {
  const tag = newId();
  const tenant = await records.tenants.ensure(`gc-${tag}`, newId());
  const nodeId = `gc-node-${tag}`;
  await records.nodes.heartbeat(nodeId, { volumeRoots: ['/srv'], version: 'test', lastHeartbeatAt: new Date(), capacity: {} });
  const instanceId = newId();
  await records.instances.create({ id: instanceId, tenantId: tenant.id, name: `gc-${tag}`, nodeId, volumes: [] });
  return { records, store, instanceId };
}

/** A backup row, running (its job claimed it), of the given kind. */
export async function startBackup(w: GcWorld, parentId: string | null = null): Promise<string> {
  const id = newId();
  await w.records.backups.create({
    id,
    instanceId: w.instanceId,
    status: 'running',
    trigger: 'manual',
    kind: parentId ? 'incremental' : 'full',
    parentId,
    volumes: ['data'],
    storageKey: archiveKey(w.instanceId, id, 'zstd'),
    indexKey: indexKey(w.instanceId, id),
    compression: 'zstd',
    requestedBy: 'gc-test',
  });
  return id;
}

export async function uploadArchive(w: GcWorld, id: string, size: number): Promise<void> {
  await w.store.put(archiveKey(w.instanceId, id, 'zstd'), Buffer.alloc(size, 7));
}

export async function uploadIndex(w: GcWorld, id: string): Promise<void> {
  await w.store.put(indexKey(w.instanceId, id), Buffer.from(`index of ${id}`));
}

export async function complete(w: GcWorld, id: string, size: number, reusedBytes = 0): Promise<void> {
  const done = await w.records.backups.transition(id, ['running'], 'completed', {
    completedAt: new Date(),
    sizeBytes: BigInt(size),
    reusedBytes: BigInt(reusedBytes),
  });
  expect(done).toBe(true);
}

/** A completed full backup whose archive object holds `size` bytes. */
export async function fullBackup(w: GcWorld, size = 1000): Promise<string> {
  const id = await startBackup(w);
  await uploadArchive(w, id, size);
  await uploadIndex(w, id);
  await complete(w, id, size);
  return id;
}

/** A completed incremental backup of `parentId`; returns it and the owners it reads from. */
export async function incrementalBackup(w: GcWorld, parentId: string, size = 100): Promise<{ id: string; owners: string[] }> {
  const id = await startBackup(w, parentId);
  const owners = await referenceParent(w.records, { backupId: id, parentId });
  await uploadArchive(w, id, size);
  await uploadIndex(w, id);
  await complete(w, id, size, 1000);
  return { id, owners };
}

/** The soft delete's state change (what DELETE /backups/:id does before it enqueues the cleanup). */
export async function markDeleting(w: GcWorld, id: string): Promise<boolean> {
  return w.records.backups.transition(id, ['pending', 'running', 'completed', 'failed', 'cancelled'], 'deleting', { deletedAt: new Date() });
}

/** Runs the cleanup job of `backupId` through the job lifecycle (no Job row) and returns its result. */
export async function cleanup(w: GcWorld, backupId: string): Promise<CleanupResult> {
  const ctx: ControlContext = {
    records: w.records,
    store: w.store,
    logger,
    queues: {} as JobQueues,
    schedulers: {} as ControlContext['schedulers'],
    compression: 'zstd',
    sweep: {},
  };
  const { record, work } = runCleanup(ctx, { backupId }, {} as BullJob);
  const outcome = (await new JobLifecycle({ jobs: w.records.jobs, logger }).execute(
    { name: 'cleanup', record, attempt: 1, attempts: 1, signal: new AbortController().signal },
    work,
  )) as WorkOutcome<CleanupResult>;
  if (outcome.status !== 'succeeded') throw new Error(`cleanup of ${backupId} ended ${outcome.status}`);
  return outcome.result;
}

/** Deletes a backup: soft delete, then its cleanup job. */
export async function deleteBackup(w: GcWorld, id: string): Promise<CleanupResult> {
  expect(await markDeleting(w, id)).toBe(true);
  return cleanup(w, id);
}

/** Every object key of the world's instance, sorted. */
export async function objectKeys(w: GcWorld): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of w.store.listAll(`instances/${w.instanceId}/`)) keys.push(o.key);
  return keys.sort();
}

export const archiveOf = (w: GcWorld, id: string) => archiveKey(w.instanceId, id, 'zstd');
export const indexOf = (w: GcWorld, id: string) => indexKey(w.instanceId, id);

/**
 * Records whose backup calls inside transactions take a random pause first (up to `maxMs`; up to
 * `referenceMs` before `addReferences`, the write that ends referenceParent's check-then-write),
 * so that the steps of concurrent transactions (referenceParent, the cleanup's decisions) and the
 * writes outside them (soft deletes, completions) interleave in many orders. Nothing else changes.
 */
export function jittered(records: Records, maxMs = 3, referenceMs = maxMs): Records {
  const slow = (set: RecordSet['backups']): RecordSet['backups'] =>
    Object.fromEntries(
      Object.entries(set).map(([name, fn]) => [
        name,
        async (...args: unknown[]) => {
          await pause(name === 'addReferences' ? referenceMs : maxMs);
          return (fn as (...a: unknown[]) => Promise<unknown>)(...args);
        },
      ]),
    ) as unknown as RecordSet['backups'];
  return {
    jobs: records.jobs,
    backups: records.backups,
    instances: records.instances,
    nodes: records.nodes,
    schedules: records.schedules,
    tokens: records.tokens,
    tenants: records.tenants,
    policies: records.policies,
    hooks: records.hooks,
    transaction: (work, options) => records.transaction((tx) => work({ ...tx, backups: slow(tx.backups) }), options),
    ping: () => records.ping(),
    close: () => records.close(),
  };
}

const pause = (maxMs: number) => new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * (maxMs + 1))));

export interface RaceStats {
  incrementals: number;
  /** referenceParent refused because the parent was being deleted: the backup went full. */
  fallbacks: number;
  failedBackups: number;
  deletes: number;
  /** Objects a cleanup kept because a live backup still read from them. */
  keptReferenced: number;
  /** Objects deleted by the cleanup of another backup than their owner (the last reader). */
  deletedByReader: number;
}

/**
 * `workers` concurrent loops, each `rounds` times either writing a backup (incremental of the
 * latest completed one when referenceParent allows it, else full; sometimes failing) or deleting a
 * completed backup (soft delete then cleanup, the latest one more often than not: the parent the
 * next backup picks). Asserted throughout: while a backup runs, every object it reads from exists.
 * Asserted once everything settled: every live backup has its objects and those it reads from,
 * and no object remains that nothing live needs. Then every backup is deleted: nothing remains.
 */
export async function gcRace(w: GcWorld, options: { workers: number; rounds: number; failRate?: number }): Promise<RaceStats> {
  const { records, store } = w;
  const stats: RaceStats = { incrementals: 0, fallbacks: 0, failedBackups: 0, deletes: 0, keptReferenced: 0, deletedByReader: 0 };
  const lost: string[] = [];
  const completedNewestFirst = () => records.backups.find({ instanceId: w.instanceId, status: 'completed' }, { order: 'desc', take: 5 });

  async function checkReads(id: string, owners: string[]) {
    for (const ownerId of owners) if (!(await store.head(archiveOf(w, ownerId)))) lost.push(`${id} reads from ${ownerId}, whose object is gone`);
  }

  async function backupOnce() {
    const [parent] = await completedNewestFirst();
    const id = await startBackup(w, parent?.id ?? null);
    let owners: string[] = [];
    if (parent) {
      try {
        owners = await referenceParent(records, { backupId: id, parentId: parent.id });
        stats.incrementals++;
      } catch (err) {
        if (!isCairnError(err, 'conflict')) throw err;
        stats.fallbacks++;
      }
    }
    await pause(5);
    await checkReads(id, owners);
    await uploadArchive(w, id, 64);
    await pause(5);
    await checkReads(id, owners);
    if (Math.random() < (options.failRate ?? 0.15)) {
      // The pipeline's failure path: its row failed, then what it held released.
      expect(await records.backups.transition(id, ['running'], 'failed', { error: 'injected' })).toBe(true);
      await releaseArchiveObjects(records, store, id);
      stats.failedBackups++;
      return;
    }
    await uploadIndex(w, id);
    await complete(w, id, 64);
  }

  async function deleteOnce() {
    const victims = await completedNewestFirst();
    if (victims.length === 0) return;
    const victim = Math.random() < 0.6 ? victims[0]! : victims[Math.floor(Math.random() * victims.length)]!;
    if (!(await markDeleting(w, victim.id))) return;
    const result = await cleanup(w, victim.id);
    stats.deletes++;
    stats.keptReferenced += result.objects.kept.filter((k) => k.reason === 'referenced by live backups').length;
    stats.deletedByReader += result.objects.deleted.filter((d) => d.backupId !== victim.id).length;
  }

  await fullBackup(w, 64);
  await Promise.all(
    Array.from({ length: options.workers }, async () => {
      for (let i = 0; i < options.rounds; i++) await (Math.random() < 0.55 ? backupOnce() : deleteOnce());
    }),
  );
  expect(lost).toEqual([]);
  await expectSettled(w);

  // Everything goes: whatever the order of the cleanups, nothing remains.
  const rest = await records.backups.find({ instanceId: w.instanceId, statusNot: ['deleted'] });
  for (const b of rest) expect(await markDeleting(w, b.id)).toBe(true);
  await Promise.all(rest.map((b) => cleanup(w, b.id)));
  expect(await objectKeys(w)).toEqual([]);
  expect(await records.backups.count({ instanceId: w.instanceId, statusNot: 'deleted' })).toBe(0);
  return stats;
}

/**
 * Once nothing runs: every completed backup has its archive and index, every live backup the
 * archive objects it reads from; no other object remains (computed from the rows and references,
 * not from liveReferrers, so that a wrong liveness rule shows here).
 */
export async function expectSettled(w: GcWorld): Promise<void> {
  const { records } = w;
  const keys = new Set(await objectKeys(w));
  const rows = new Map((await records.backups.find({ instanceId: w.instanceId })).map((b) => [b.id, b]));
  const needed = new Map<string, string>();
  for (const b of rows.values()) {
    if (!LIVE_BACKUP_STATUSES.includes(b.status)) continue;
    if (b.status === 'completed') {
      needed.set(b.storageKey, `archive of ${b.status} ${b.id}`);
      needed.set(b.indexKey, `index of ${b.status} ${b.id}`);
    }
    for (const ownerId of await records.backups.referencedOwners(b.id)) needed.set(rows.get(ownerId)!.storageKey, `archive of ${ownerId} read by ${b.id}`);
  }
  const missing = [...needed].filter(([key]) => !keys.has(key)).map(([, what]) => `${what} is gone`);
  const leftover = [...keys].filter((key) => !needed.has(key)).map((key) => `${key} is left behind`);
  expect([...missing, ...leftover]).toEqual([]);
}
