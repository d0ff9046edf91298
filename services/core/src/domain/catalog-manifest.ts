import { buffer } from 'node:stream/consumers';
import { z } from 'zod';
import { CairnError } from '../errors.ts';
import type { Backup, Records } from '../records/records.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { manifestKey } from './object-layout.ts';

/**
 * Restore from the bucket alone (issue 14): every completed backup carries, next to its archive
 * and index, a small JSON **manifest** (`instances/<id>/backups/<id>/manifest.json`) holding its
 * row as it was when it completed and a snapshot of its instance (name, tenant name, node, volumes
 * with host paths and excludes), plus the archive objects of other backups it reads from (its
 * `BackupObjectRef` rows). With it `cairn catalog rebuild` (domain/catalog-rebuild.ts) recreates
 * the Tenant, Instance, Volume, Backup and BackupObjectRef rows of a lost database.
 *
 * The row's `encryption` field is copied as it is (mode, key id, wrapped data key: never a raw
 * key). No per-instance object: the instance is described by its newest backup's manifest, so
 * nothing outlives the backups and an instance's removal needs no extra step.
 */
export const MANIFEST_FORMAT = 'cairn-backup-manifest';
export const MANIFEST_VERSION = 1;

const NullableTime = z.string().datetime().nullable();
const Big = z.string().regex(/^\d+$/).nullable().describe('a byte count as a decimal string (BigInt columns)');

export const ManifestInstance = z.object({
  id: z.string().min(1),
  name: z.string().min(1),
  tenant: z.string().min(1).describe('the tenant name'),
  nodeId: z.string().min(1),
  volumes: z.array(z.object({ name: z.string().min(1), hostPath: z.string().min(1), excludes: z.array(z.string()) })),
});
export type ManifestInstance = z.infer<typeof ManifestInstance>;

/** An archive object the backup reads from (an incremental's older backups), described enough to recreate a row for it. */
export const ManifestOwner = z.object({
  id: z.string().min(1),
  storageKey: z.string().min(1),
  compression: z.string().min(1),
  trigger: z.enum(['manual', 'schedule', 'migrate']),
  kind: z.enum(['full', 'incremental']),
  createdAt: z.string().datetime(),
  /** The owner's `encryption` field (its frames are sealed under its own data key). */
  encryption: z.unknown().optional(),
});
export type ManifestOwner = z.infer<typeof ManifestOwner>;

export const BackupManifest = z.object({
  format: z.literal(MANIFEST_FORMAT),
  version: z.literal(MANIFEST_VERSION),
  writtenAt: z.string().datetime(),
  instance: ManifestInstance,
  backup: z.object({
    id: z.string().min(1),
    trigger: z.enum(['manual', 'schedule', 'migrate']),
    kind: z.enum(['full', 'incremental']),
    parentId: z.string().nullable(),
    volumes: z.array(z.string()),
    storageKey: z.string().min(1),
    indexKey: z.string().min(1),
    format: z.number().int(),
    compression: z.string().min(1),
    encryption: z.unknown(),
    sizeBytes: Big,
    logicalBytes: Big,
    reusedBytes: Big,
    fileCount: z.number().int().nullable(),
    sha256: z.string().nullable(),
    warnings: z.unknown(),
    expiresAt: NullableTime,
    createdAt: z.string().datetime(),
    startedAt: NullableTime,
    completedAt: NullableTime,
    requestedBy: z.string(),
    name: z.string().nullable(),
    note: z.string().nullable(),
    pinned: z.boolean(),
  }),
  owners: z.array(ManifestOwner),
});
export type BackupManifest = z.infer<typeof BackupManifest>;

const iso = (d: Date | null) => (d ? d.toISOString() : null);
const big = (n: bigint | null) => (n === null ? null : n.toString());

/** The manifest of completed backup `backupId`, from its rows. */
export async function describeBackup(records: Records, backupId: string, now: () => Date = () => new Date()): Promise<BackupManifest> {
  const b = await records.backups.get(backupId);
  if (!b) throw new CairnError('not-found', `backup ${backupId} not found`);
  if (b.status !== 'completed') throw new CairnError('conflict', `backup ${backupId} is ${b.status}: only a completed backup has a manifest`);
  const instance = await records.instances.get(b.instanceId);
  if (!instance) throw new CairnError('not-found', `instance ${b.instanceId} of backup ${backupId} not found`);
  const tenant = await records.tenants.get(instance.tenantId);
  if (!tenant) throw new CairnError('not-found', `tenant ${instance.tenantId} of instance ${instance.id} not found`);
  const owners: ManifestOwner[] = [];
  for (const ownerId of await records.backups.referencedOwners(backupId)) {
    const o = await records.backups.get(ownerId);
    if (o)
      owners.push({
        id: o.id,
        storageKey: o.storageKey,
        compression: o.compression,
        trigger: o.trigger,
        kind: o.kind,
        createdAt: o.createdAt.toISOString(),
        encryption: o.encryption,
      });
  }
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    writtenAt: now().toISOString(),
    instance: {
      id: instance.id,
      name: instance.name,
      tenant: tenant.name,
      nodeId: instance.nodeId,
      volumes: instance.volumes.map((v) => ({ name: v.name, hostPath: v.hostPath, excludes: v.excludes })),
    },
    backup: backupFields(b),
    owners,
  };
}

function backupFields(b: Backup): BackupManifest['backup'] {
  return {
    id: b.id,
    trigger: b.trigger,
    kind: b.kind,
    parentId: b.parentId,
    volumes: b.volumes,
    storageKey: b.storageKey,
    indexKey: b.indexKey,
    format: b.format,
    compression: b.compression,
    encryption: b.encryption,
    sizeBytes: big(b.sizeBytes),
    logicalBytes: big(b.logicalBytes),
    reusedBytes: big(b.reusedBytes),
    fileCount: b.fileCount,
    sha256: b.sha256,
    warnings: b.warnings,
    expiresAt: iso(b.expiresAt),
    createdAt: b.createdAt.toISOString(),
    startedAt: iso(b.startedAt),
    completedAt: iso(b.completedAt),
    requestedBy: b.requestedBy,
    name: b.name,
    note: b.note,
    pinned: b.pinned,
  };
}

/** Writes the manifest of completed backup `backupId` next to its index; returns its key. */
export async function writeBackupManifest(records: Records, store: ObjectStore, backupId: string, opts: { signal?: AbortSignal } = {}): Promise<string> {
  const manifest = await describeBackup(records, backupId);
  const key = manifestKey(manifest.instance.id, manifest.backup.id);
  await store.put(key, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`), {
    contentType: 'application/json',
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return key;
}

/** Reads and checks a manifest object; CairnError('validation') naming the problem when it is not one. */
export async function readBackupManifest(store: ObjectStore, key: string): Promise<BackupManifest> {
  const bytes = await buffer(await store.get(key));
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new CairnError('validation', `manifest ${key} is not JSON: ${(err as Error).message}`);
  }
  const result = BackupManifest.safeParse(parsed);
  if (!result.success) throw new CairnError('validation', `manifest ${key} is not a Cairn backup manifest: ${result.error.issues[0]?.message ?? 'invalid'}`);
  return result.data;
}

/**
 * Rewrites the manifests that describe backups whose row changed after they completed (a key
 * rotation re-wrapped their data keys): each completed one's own, and those of the completed
 * backups reading from its archive object (they carry their owners' wraps). Best effort: the
 * failures are returned, the rest is written.
 */
export async function refreshManifests(
  records: Records,
  store: ObjectStore,
  changed: Iterable<string>,
): Promise<{ written: number; failed: { backupId: string; error: string }[] }> {
  const targets = new Set<string>();
  for (const id of changed) {
    const b = await records.backups.get(id);
    if (b?.status === 'completed') targets.add(id);
    for (const reader of await records.backups.liveReferrers(id)) targets.add(reader);
  }
  const out = { written: 0, failed: [] as { backupId: string; error: string }[] };
  for (const id of [...targets].sort()) {
    if ((await records.backups.get(id))?.status !== 'completed') continue;
    try {
      await writeBackupManifest(records, store, id);
      out.written++;
    } catch (err) {
      out.failed.push({ backupId: id, error: (err as Error).message });
    }
  }
  return out;
}
