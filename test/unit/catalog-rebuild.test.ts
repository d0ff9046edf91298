/**
 * Catalog rebuild (issue 14, restore from the bucket alone) over MemoryRecords and the in-memory
 * store: what it recreates from manifests, the `deleted` row of an archive object kept for its
 * readers, what it refuses and why, idempotence and the dry run. The e2e test
 * (test/e2e/catalog-rebuild.e2e.test.ts) covers Postgres, S3, the index fallback and a restore.
 */
import { describe, expect, it } from 'vitest';
import { archiveKey, createLogger, indexKey, manifestKey, MemoryObjectStore, MemoryRecords, type ObjectStore, type Records } from '@cairn/core';
import { readBackupManifest, refreshManifests, writeBackupManifest } from '@cairn/core/domain/catalog-manifest.ts';
import { rebuildCatalog } from '@cairn/core/domain/catalog-rebuild.ts';
import { runOrphanSweep } from '@cairn/worker/control/orphan-sweep.service.ts';

const INSTANCE = '01JINSTANCE0000000000000001';
const A = '01JBACKUP00000000000000000A';
const B = '01JBACKUP00000000000000000B';
const C = '01JBACKUP00000000000000000C';

async function world(): Promise<{ records: Records; store: ObjectStore }> {
  const records = new MemoryRecords();
  const store = new MemoryObjectStore();
  await records.tenants.ensure('acme', 'T1');
  await records.nodes.heartbeat('host-a', { volumeRoots: ['/srv'], version: '1', lastHeartbeatAt: new Date(), capacity: {} });
  await records.instances.create({
    id: INSTANCE,
    tenantId: 'T1',
    name: 'shop',
    nodeId: 'host-a',
    volumes: [{ id: 'V1', name: 'data', hostPath: '/srv/shop/data', excludes: ['*.tmp'] }],
  });
  return { records, store };
}

/** A completed backup with its objects (archive of `size` bytes, an index) and its manifest. */
async function completed(w: { records: Records; store: ObjectStore }, id: string, opts: { parent?: string; owners?: string[]; size?: number } = {}) {
  const size = opts.size ?? 100;
  await w.records.backups.create({
    id,
    instanceId: INSTANCE,
    status: 'running',
    trigger: 'schedule',
    kind: opts.parent ? 'incremental' : 'full',
    parentId: opts.parent ?? null,
    volumes: ['data'],
    storageKey: archiveKey(INSTANCE, id, 'zstd'),
    indexKey: indexKey(INSTANCE, id),
    compression: 'zstd',
    requestedBy: 'system',
    name: `b-${id.slice(-1)}`,
    createdAt: new Date(`2026-01-0${'ABC'.indexOf(id.slice(-1)) + 1}T03:00:00Z`),
    encryption: { mode: 'aes-256-gcm', keyId: 'k1', wrappedKey: 'd3JhcHBlZA' },
  });
  if (opts.owners?.length) await w.records.backups.addReferences(id, opts.owners);
  await w.records.backups.transition(id, ['running'], 'completed', {
    completedAt: new Date(),
    startedAt: new Date(),
    format: 2,
    sizeBytes: BigInt(size),
    logicalBytes: 1000n,
    reusedBytes: 0n,
    fileCount: 3,
    sha256: 'ab'.repeat(32),
    warnings: [{ path: '', code: 'changed', message: 'x' }],
  });
  await w.store.put(archiveKey(INSTANCE, id, 'zstd'), Buffer.alloc(size, 1));
  await w.store.put(indexKey(INSTANCE, id), Buffer.from('index'));
  await writeBackupManifest(w.records, w.store, id);
}

/** A full A, an incremental B reading A, then A deleted (its archive kept for B), and a full C. */
async function bucket(): Promise<{ records: Records; store: ObjectStore }> {
  const w = await world();
  await completed(w, A);
  await completed(w, B, { parent: A, owners: [A] });
  await completed(w, C);
  // A's deletion as the cleanup does it: everything under its prefix but the archive B reads from.
  await w.records.backups.transition(A, ['completed'], 'deleted', { deletedAt: new Date() });
  await w.store.deleteMany([indexKey(INSTANCE, A), manifestKey(INSTANCE, A)]);
  return w;
}

describe('catalog rebuild', () => {
  it('the manifest carries the row, the instance and the owners, the encryption field as it is', async () => {
    const w = await bucket();
    const m = await readBackupManifest(w.store, manifestKey(INSTANCE, B));
    expect(m.instance).toEqual({
      id: INSTANCE,
      name: 'shop',
      tenant: 'acme',
      nodeId: 'host-a',
      volumes: [{ name: 'data', hostPath: '/srv/shop/data', excludes: ['*.tmp'] }],
    });
    expect(m.backup).toMatchObject({
      id: B,
      kind: 'incremental',
      parentId: A,
      trigger: 'schedule',
      sizeBytes: '100',
      encryption: { mode: 'aes-256-gcm', keyId: 'k1' },
    });
    expect(m.owners.map((o) => o.id)).toEqual([A]);
  });

  it('recreates tenant, unseen node, instance, backups and references in an empty database; again: nothing', async () => {
    const { store } = await bucket();
    const records = new MemoryRecords();
    const report = await rebuildCatalog(records, store);
    expect(report.tenants.created).toEqual(['acme']);
    expect(report.nodes.created).toEqual(['host-a']);
    expect(report.instances).toMatchObject({ created: 1, skipped: 0 });
    expect(report.backups.items.map((i) => [i.id, i.outcome, i.source])).toEqual([
      [A, 'created', 'kept-archive'],
      [B, 'created', 'manifest'],
      [C, 'created', 'manifest'],
    ]);
    expect(report.references.created).toBe(1);

    const node = await records.nodes.get('host-a');
    expect(node?.lastHeartbeatAt?.getTime()).toBe(0);
    expect(node?.volumeRoots).toEqual([]);
    const instance = await records.instances.get(INSTANCE);
    expect(instance?.name).toBe('shop');
    expect(instance?.volumes.map((v) => [v.name, v.hostPath, v.excludes])).toEqual([['data', '/srv/shop/data', ['*.tmp']]]);
    const a = await records.backups.get(A);
    expect(a).toMatchObject({ status: 'deleted', storageKey: archiveKey(INSTANCE, A, 'zstd') });
    const b = await records.backups.get(B);
    expect(b).toMatchObject({ status: 'completed', kind: 'incremental', parentId: A, trigger: 'schedule', name: 'b-B', sizeBytes: 100n, format: 2 });
    expect(b?.createdAt.toISOString()).toBe('2026-01-02T03:00:00.000Z');
    expect(b?.encryption).toEqual({ mode: 'aes-256-gcm', keyId: 'k1', wrappedKey: 'd3JhcHBlZA' });
    expect(await records.backups.referencedOwners(B)).toEqual([A]);
    expect(await records.backups.liveReferrers(A)).toEqual([B]);

    const again = await rebuildCatalog(records, store);
    expect(again.tenants.created).toEqual([]);
    expect(again.nodes.created).toEqual([]);
    expect(again.instances).toMatchObject({ created: 0, existing: 1 });
    expect(again.backups).toMatchObject({ created: 0, existing: 3, skipped: 0 });
    expect(again.references.created).toBe(0);
  });

  it('never changes rows that exist', async () => {
    const w = await bucket();
    await w.records.backups.updateWhere({ id: C }, { note: 'edited since' });
    const report = await rebuildCatalog(w.records, w.store);
    expect(report.backups).toMatchObject({ created: 0, existing: 3 });
    expect((await w.records.backups.get(C))?.note).toBe('edited since');
  });

  it('a dry run writes nothing', async () => {
    const { store } = await bucket();
    const records = new MemoryRecords();
    const report = await rebuildCatalog(records, store, { dryRun: true });
    expect(report).toMatchObject({ dryRun: true, instances: { created: 1 }, backups: { created: 3 }, references: { created: 1 } });
    expect(await records.tenants.getByName('acme')).toBeNull();
    expect(await records.nodes.list()).toEqual([]);
    expect(await records.instances.get(INSTANCE)).toBeNull();
  });

  it('reports what it cannot rebuild, with the reason, and rebuilds the rest', async () => {
    const { store } = await bucket();
    await store.put(archiveKey(INSTANCE, C, 'zstd'), Buffer.alloc(99)); // not the size recorded
    await store.delete(archiveKey(INSTANCE, A, 'zstd')); // B's owner gone
    await store.put(archiveKey('01JOTHER', '01JX', 'zstd'), Buffer.alloc(5)); // an instance nothing describes
    await store.put(indexKey('01JOTHER', '01JX'), Buffer.from('index'));
    const records = new MemoryRecords();
    const report = await rebuildCatalog(records, store);
    const skipped = Object.fromEntries(report.backups.items.filter((i) => i.outcome === 'skipped').map((i) => [i.id, i.reason]));
    expect(skipped[A]).toBeUndefined(); // nothing of it left in the bucket
    expect(skipped[B]).toMatch(new RegExp(`backup ${A}, which is neither recorded nor in the bucket`));
    expect(skipped[C]).toMatch(/99 bytes, the manifest records 100/);
    expect(skipped['01JX']).toMatch(/instance 01JOTHER could not be rebuilt/);
    expect(report.instances.items).toContainEqual(expect.objectContaining({ id: '01JOTHER', outcome: 'skipped' }));
    expect(await records.backups.count({})).toBe(0);
  });

  it('an instance whose name its tenant already gives another instance is reported, not merged', async () => {
    const { store } = await bucket();
    const records = new MemoryRecords();
    await records.tenants.ensure('acme', 'T9');
    await records.nodes.heartbeat('host-a', { volumeRoots: ['/srv'], version: '1', lastHeartbeatAt: new Date(), capacity: {} });
    await records.instances.create({ id: 'OTHER', tenantId: 'T9', name: 'shop', nodeId: 'host-a', volumes: [] });
    const report = await rebuildCatalog(records, store);
    expect(report.instances.items).toEqual([
      expect.objectContaining({ id: INSTANCE, outcome: 'skipped', reason: expect.stringContaining('already has another instance named shop (OTHER)') }),
    ]);
    expect(report.backups).toMatchObject({ created: 0, skipped: 3 });
  });
});

describe('the orphan sweep after a lost database', () => {
  it('keeps the objects of an instance whose backups have manifests and no rows, and says so', async () => {
    const { store } = await bucket();
    await store.put(archiveKey('01JGONE', '01JY', 'zstd'), Buffer.alloc(5)); // a real orphan: no row, no manifest
    const records = new MemoryRecords();
    const logger = createLogger({ level: 'silent', name: 'catalog-test' });
    const later = new Date(Date.now() + 48 * 3600_000);
    const report = await runOrphanSweep({ records, store, queues: {} as never, logger, clock: () => later });
    expect(report.unrecordedBackups.sort()).toEqual([B, C]);
    expect(report.deletedObjects.keys).toEqual([archiveKey('01JGONE', '01JY', 'zstd')]);
    // A's archive (read by B) stays too: the rebuild recreates all three.
    expect(await store.head(archiveKey(INSTANCE, A, 'zstd'))).not.toBeNull();
    expect((await rebuildCatalog(records, store)).backups).toMatchObject({ created: 3, skipped: 0 });
  });
});

describe('manifests after a key rotation', () => {
  it('refreshManifests rewrites the re-wrapped backups’ manifests and their readers’; a rebuilt kept archive has its wrap', async () => {
    const w = await bucket();
    const rewrap = { mode: 'aes-256-gcm', keyId: 'k2', wrappedKey: 'bmV3' };
    await w.records.backups.updateWhere({ ids: [A, B, C] }, { encryption: rewrap });
    const out = await refreshManifests(w.records, w.store, [A, B, C]);
    expect(out).toEqual({ written: 2, failed: [] }); // B (itself and A's reader) and C; A is deleted
    const b = await readBackupManifest(w.store, manifestKey(INSTANCE, B));
    expect(b.backup.encryption).toEqual(rewrap);
    expect(b.owners[0]?.encryption).toEqual(rewrap);
    expect((await readBackupManifest(w.store, manifestKey(INSTANCE, C))).backup.encryption).toEqual(rewrap);

    const records = new MemoryRecords();
    await rebuildCatalog(records, w.store);
    expect((await records.backups.get(A))?.encryption).toEqual(rewrap);
    expect((await records.backups.get(B))?.encryption).toEqual(rewrap);
  });
});
