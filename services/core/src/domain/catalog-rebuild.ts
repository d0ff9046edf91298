import { readIndexHead } from '../archive/index.ts';
import type { ArchiveIndexHead } from '../archive/archive-types.ts';
import { CairnError } from '../errors.ts';
import { newId } from '../ids.ts';
import type { Logger } from '../logging/logger.ts';
import { type BackupTrigger, type InstanceWithVolumes, type JsonInput, type Records, UniqueViolation } from '../records/records.ts';
import type { ObjectInfo, ObjectStore } from '../storage/object-store.ts';
import { type BackupManifest, type ManifestInstance, type ManifestOwner, readBackupManifest } from './catalog-manifest.ts';
import { archiveKey, indexKey, manifestKey, parseBackupKey } from './object-layout.ts';

/**
 * `cairn catalog rebuild` (issue 14, restore from the bucket alone): recreates the rows of a lost
 * or emptied database from what the bucket holds. One pass over the bucket listing (keys come in
 * order, so every object of one instance comes together: only one instance's keys are held at a
 * time), then for each instance:
 *
 * - its Tenant (by name), Node (when missing: created unseen, no heartbeat and no volume roots, so
 *   the node worker's first heartbeat fills it in) and Instance with its volumes, from the newest
 *   backup manifest (domain/catalog-manifest.ts) of the instance;
 * - each backup, oldest first (ULIDs: a parent before its children): from its manifest, as the row
 *   was when it completed, status `completed`, with its BackupObjectRef rows; without a manifest,
 *   from its index head alone (trigger recorded as `manual`, parent unknown, a `catalog-rebuilt`
 *   warning on the row saying so); an archive object another backup reads from whose own backup
 *   is gone (deleted, its archive kept for its readers) becomes a `deleted` row, as it was.
 *
 * A backup is rebuilt only when its archive and index are in the bucket and the archive has the
 * recorded size; anything else is reported with the reason, never guessed. Rows that exist are
 * never changed (an existing backup or instance is counted as such), so running it again creates
 * nothing. `dryRun` reads the bucket and the rows and writes nothing.
 */

export interface CatalogRebuildOptions {
  dryRun?: boolean;
  logger?: Logger;
  now?: () => Date;
  /** Report items listed at most (counts are always complete). */
  maxItems?: number;
}

export type RebuildOutcome = 'created' | 'existing' | 'skipped';

export interface RebuiltInstance {
  id: string;
  name?: string;
  tenant?: string;
  outcome: RebuildOutcome;
  reason?: string;
}

export interface RebuiltBackup {
  id: string;
  instanceId: string;
  outcome: RebuildOutcome;
  /** Where the row came from: the manifest, the index head alone, or an archive kept for its readers (a `deleted` row). */
  source?: 'manifest' | 'index' | 'kept-archive';
  reason?: string;
}

interface Tally<T> {
  created: number;
  existing: number;
  skipped: number;
  /** The created and skipped ones (existing ones are only counted), at most `maxItems`. */
  items: T[];
  truncated: boolean;
}

export interface CatalogRebuildReport {
  dryRun: boolean;
  objectsScanned: number;
  tenants: { created: string[]; existing: number };
  nodes: { created: string[]; existing: number };
  instances: Tally<RebuiltInstance>;
  backups: Tally<RebuiltBackup>;
  references: { created: number };
}

const REBUILT_BY = 'catalog-rebuild';

/** One instance's objects: backup id -> key -> object. */
interface InstanceGroup {
  instanceId: string;
  backups: Map<string, Map<string, ObjectInfo>>;
}

export async function rebuildCatalog(records: Records, store: ObjectStore, options: CatalogRebuildOptions = {}): Promise<CatalogRebuildReport> {
  const run = new Rebuild(records, store, options);
  let group = null as InstanceGroup | null;
  for await (const obj of store.listAll('instances/')) {
    run.report.objectsScanned++;
    const owner = parseBackupKey(obj.key);
    if (!owner) continue;
    if (group?.instanceId !== owner.instanceId) {
      if (group) await run.instance(group);
      group = { instanceId: owner.instanceId, backups: new Map() };
    }
    let files = group.backups.get(owner.backupId);
    if (!files) group.backups.set(owner.backupId, (files = new Map()));
    files.set(obj.key, obj);
  }
  if (group) await run.instance(group);
  return run.report;
}

class Rebuild {
  readonly report: CatalogRebuildReport;
  private readonly dryRun: boolean;
  private readonly maxItems: number;
  private readonly tenantIds = new Map<string, string>();
  private readonly nodesSeen = new Set<string>();

  constructor(
    private readonly records: Records,
    private readonly store: ObjectStore,
    private readonly options: CatalogRebuildOptions,
  ) {
    this.dryRun = options.dryRun === true;
    this.maxItems = options.maxItems ?? 1000;
    const tally = () => ({ created: 0, existing: 0, skipped: 0, items: [], truncated: false });
    this.report = {
      dryRun: this.dryRun,
      objectsScanned: 0,
      tenants: { created: [], existing: 0 },
      nodes: { created: [], existing: 0 },
      instances: tally(),
      backups: tally(),
      references: { created: 0 },
    };
  }

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  private note<T extends { outcome: RebuildOutcome }>(tally: Tally<T>, item: T): void {
    tally[item.outcome]++;
    if (item.outcome === 'existing') return;
    if (tally.items.length < this.maxItems) tally.items.push(item);
    else tally.truncated = true;
  }

  private skipBackup(id: string, instanceId: string, reason: string): false {
    this.note(this.report.backups, { id, instanceId, outcome: 'skipped', reason });
    this.options.logger?.warn({ backupId: id, instanceId, reason }, 'catalog rebuild: backup not rebuilt');
    return false;
  }

  /** Rebuilds one instance and its backups from its objects. */
  async instance(group: InstanceGroup): Promise<void> {
    const { instanceId } = group;
    const ids = [...group.backups.keys()].sort();
    const manifests = new Map<string, BackupManifest>();
    const problems = new Map<string, string>();
    for (const id of ids) {
      const key = manifestKey(instanceId, id);
      if (!group.backups.get(id)!.has(key)) continue;
      try {
        const m = await readBackupManifest(this.store, key);
        if (m.backup.id !== id || m.instance.id !== instanceId)
          problems.set(id, `manifest ${key} describes backup ${m.backup.id} of instance ${m.instance.id}`);
        else manifests.set(id, m);
      } catch (err) {
        if (err instanceof CairnError && err.code === 'validation') problems.set(id, err.message);
        else throw err;
      }
    }
    // The instance as its newest backup saw it.
    const newest = [...manifests.values()].at(-1)?.instance;
    const instance = await this.ensureInstance(instanceId, newest);
    if (!instance) {
      for (const id of ids) this.skipBackup(id, instanceId, `instance ${instanceId} could not be rebuilt`);
      return;
    }
    // Archive objects kept for their readers: the owners the manifests name.
    const wanted = new Map<string, ManifestOwner>();
    for (const m of manifests.values()) for (const o of m.owners) wanted.set(o.id, o);
    const known = new Set<string>();
    for (const id of ids) {
      const files = group.backups.get(id)!;
      if (await this.records.backups.get(id)) {
        known.add(id);
        this.note(this.report.backups, { id, instanceId, outcome: 'existing' });
        continue;
      }
      const problem = problems.get(id);
      if (problem) {
        this.skipBackup(id, instanceId, problem);
        continue;
      }
      const manifest = manifests.get(id);
      const owner = wanted.get(id);
      // No index: a deleted backup whose archive object stays for the backups reading from it
      // (its cleanup removed the rest), else nothing a restore could use.
      const done = !files.has(indexKey(instanceId, id))
        ? owner
          ? await this.keptArchive(instanceId, owner, files)
          : this.skipBackup(id, instanceId, `no index object${manifest ? '' : ' and no manifest'}: a deleted backup, or one that never completed`)
        : manifest
          ? await this.fromManifest(manifest, files, known)
          : await this.fromIndex(instanceId, id, files, known);
      if (done) known.add(id);
    }
  }

  /** The instance's row: existing, created from the manifest's snapshot, or null (reported) when it cannot be. */
  private async ensureInstance(id: string, snap: ManifestInstance | undefined): Promise<InstanceWithVolumes | { id: string } | null> {
    const row = await this.records.instances.get(id);
    if (row) {
      this.note(this.report.instances, { id, name: row.name, outcome: 'existing' });
      return row;
    }
    if (!snap) {
      this.note(this.report.instances, { id, outcome: 'skipped', reason: 'no backup manifest in the bucket names its tenant, name and volumes' });
      return null;
    }
    const item = { id, name: snap.name, tenant: snap.tenant };
    const tenantId = await this.ensureTenant(snap.tenant);
    await this.ensureNode(snap.nodeId);
    if (this.dryRun) {
      const clash = tenantId ? await this.records.instances.findFirst({ tenantId, name: snap.name }) : null;
      if (clash) return this.instanceClash(item, clash.id);
      this.note(this.report.instances, { ...item, outcome: 'created' });
      return { id };
    }
    try {
      const created = await this.records.instances.create({
        id,
        tenantId: tenantId!,
        name: snap.name,
        nodeId: snap.nodeId,
        volumes: snap.volumes.map((v) => ({ id: newId(), name: v.name, hostPath: v.hostPath, excludes: v.excludes })),
      });
      this.note(this.report.instances, { ...item, outcome: 'created' });
      return created;
    } catch (err) {
      if (!(err instanceof UniqueViolation)) throw err;
      const now = await this.records.instances.get(id);
      if (now) {
        this.note(this.report.instances, { id, name: now.name, outcome: 'existing' });
        return now;
      }
      const clash = await this.records.instances.findFirst({ tenantId: tenantId!, name: snap.name });
      return this.instanceClash(item, clash?.id ?? '(unknown)');
    }
  }

  private instanceClash(item: Omit<RebuiltInstance, 'outcome'>, otherId: string): null {
    const reason = `tenant ${item.tenant} already has another instance named ${item.name} (${otherId})`;
    this.note(this.report.instances, { ...item, outcome: 'skipped', reason });
    return null;
  }

  /** The tenant's id (undefined in a dry run when it would be created). */
  private async ensureTenant(name: string): Promise<string | undefined> {
    const cached = this.tenantIds.get(name);
    if (cached !== undefined) return cached || undefined;
    const row = await this.records.tenants.getByName(name);
    let id = row?.id;
    if (row) this.report.tenants.existing++;
    else {
      this.report.tenants.created.push(name);
      if (!this.dryRun) id = (await this.records.tenants.ensure(name, newId())).id;
    }
    this.tenantIds.set(name, id ?? '');
    return id;
  }

  /** A node named by an instance but unknown here: a row marked unseen (never heartbeated, no volume roots). */
  private async ensureNode(id: string): Promise<void> {
    if (this.nodesSeen.has(id)) return;
    this.nodesSeen.add(id);
    if (await this.records.nodes.get(id)) {
      this.report.nodes.existing++;
      return;
    }
    this.report.nodes.created.push(id);
    // The epoch as its last heartbeat: offline, and the node worker's first real heartbeat replaces every field.
    if (!this.dryRun) await this.records.nodes.heartbeat(id, { volumeRoots: [], version: 'unseen', lastHeartbeatAt: new Date(0), capacity: {} });
  }

  /** Owners the backup reads from that have no row: a reason, or null when every one exists (or is created in this run). */
  private async missingOwners(ownerIds: readonly string[], known: Set<string>): Promise<string | null> {
    for (const ownerId of ownerIds) {
      if (known.has(ownerId) || (await this.records.backups.get(ownerId))) continue;
      return `reads from the archive object of backup ${ownerId}, which is neither recorded nor in the bucket`;
    }
    return null;
  }

  private async fromManifest(m: BackupManifest, files: Map<string, ObjectInfo>, known: Set<string>): Promise<boolean> {
    const b = m.backup;
    const instanceId = m.instance.id;
    const archive = files.get(b.storageKey);
    const reason = !archive
      ? `archive object ${b.storageKey} is missing`
      : !files.has(b.indexKey)
        ? `index object ${b.indexKey} is missing`
        : b.sizeBytes !== null && BigInt(archive.size) !== BigInt(b.sizeBytes)
          ? `archive object is ${archive.size} bytes, the manifest records ${b.sizeBytes}`
          : await this.missingOwners(
              m.owners.map((o) => o.id),
              known,
            );
    if (reason) {
      this.skipBackup(b.id, instanceId, reason);
      return false;
    }
    const date = (s: string | null) => (s === null ? null : new Date(s));
    const big = (s: string | null) => (s === null ? null : BigInt(s));
    return this.create(
      {
        id: b.id,
        instanceId,
        status: 'completed',
        trigger: b.trigger,
        kind: b.kind,
        parentId: b.parentId && (known.has(b.parentId) || m.owners.some((o) => o.id === b.parentId)) ? b.parentId : null,
        volumes: b.volumes,
        storageKey: b.storageKey,
        indexKey: b.indexKey,
        compression: b.compression,
        requestedBy: b.requestedBy,
        name: b.name,
        note: b.note,
        pinned: b.pinned,
        createdAt: new Date(b.createdAt),
        ...(b.encryption !== undefined && b.encryption !== null ? { encryption: b.encryption as JsonInput } : {}),
      },
      {
        format: b.format,
        sizeBytes: big(b.sizeBytes),
        logicalBytes: big(b.logicalBytes),
        reusedBytes: big(b.reusedBytes),
        fileCount: b.fileCount,
        sha256: b.sha256,
        warnings: (b.warnings ?? []) as JsonInput,
        expiresAt: date(b.expiresAt),
        startedAt: date(b.startedAt),
        completedAt: date(b.completedAt),
      },
      m.owners.map((o) => o.id),
      'manifest',
    );
  }

  /** No manifest (a backup completed before manifests were written, or whose manifest was not written): its index head alone. */
  private async fromIndex(instanceId: string, id: string, files: Map<string, ObjectInfo>, known: Set<string>): Promise<boolean> {
    const key = indexKey(instanceId, id);
    let head: ArchiveIndexHead;
    try {
      head = await readIndexHead(await this.store.get(key));
    } catch (err) {
      if (err instanceof CairnError && err.permanent) {
        this.skipBackup(id, instanceId, `no manifest, and the index does not read: ${err.message}`);
        return false;
      }
      throw err;
    }
    const meta = head.meta as { backupId?: unknown; instanceId?: unknown };
    const storageKey = head.codec in { zstd: 1, gzip: 1, none: 1 } ? archiveKey(instanceId, id, head.codec) : null;
    const archive = storageKey ? files.get(storageKey) : undefined;
    const owners = head.objects ?? [];
    const reason =
      meta.backupId !== id || meta.instanceId !== instanceId
        ? `no manifest, and the index names backup ${String(meta.backupId)} of instance ${String(meta.instanceId)}`
        : !archive
          ? `no manifest, and no ${head.codec} archive object next to the index`
          : archive.size !== head.totals.storedBytes
            ? `archive object is ${archive.size} bytes, the index records ${head.totals.storedBytes}`
            : await this.missingOwners(owners, known);
    if (reason) {
      this.skipBackup(id, instanceId, reason);
      return false;
    }
    const completedAt = files.get(key)!.lastModified;
    return this.create(
      {
        id,
        instanceId,
        status: 'completed',
        trigger: 'manual',
        kind: owners.length ? 'incremental' : 'full',
        parentId: null,
        volumes: head.volumes.map((v) => v.name),
        storageKey: storageKey!,
        indexKey: key,
        compression: head.codec,
        requestedBy: REBUILT_BY,
        createdAt: new Date(head.createdAt),
      },
      {
        format: head.version,
        sizeBytes: BigInt(head.totals.storedBytes),
        logicalBytes: BigInt(head.totals.logicalBytes),
        reusedBytes: BigInt(head.totals.reusedBytes ?? 0),
        fileCount: head.totals.files,
        sha256: head.sha256,
        warnings: [
          {
            path: '',
            code: 'catalog-rebuilt',
            message: 'rebuilt from its index alone (no manifest in the bucket): trigger recorded as manual, parent, name and note unknown',
          },
        ],
        startedAt: new Date(head.createdAt),
        completedAt,
      },
      owners,
      'index',
    );
  }

  /** The archive object of a deleted backup that others still read from: a `deleted` row, as the lost database had. */
  private async keptArchive(instanceId: string, owner: ManifestOwner, files: Map<string, ObjectInfo>): Promise<boolean> {
    if (!files.has(owner.storageKey)) {
      this.skipBackup(owner.id, instanceId, `archive object ${owner.storageKey} is missing`);
      return false;
    }
    return this.create(
      {
        id: owner.id,
        instanceId,
        status: 'deleted',
        trigger: owner.trigger,
        kind: owner.kind,
        parentId: null,
        volumes: [],
        storageKey: owner.storageKey,
        indexKey: indexKey(instanceId, owner.id),
        compression: owner.compression,
        requestedBy: REBUILT_BY,
        createdAt: new Date(owner.createdAt),
        ...(owner.encryption !== undefined && owner.encryption !== null ? { encryption: owner.encryption as JsonInput } : {}),
      },
      { deletedAt: this.now(), sizeBytes: BigInt(files.get(owner.storageKey)!.size) },
      [],
      'kept-archive',
    );
  }

  private async create(
    row: Parameters<Records['backups']['create']>[0] & { trigger: BackupTrigger },
    changes: Parameters<Records['backups']['updateWhere']>[1],
    owners: readonly string[],
    source: NonNullable<RebuiltBackup['source']>,
  ): Promise<boolean> {
    const item = { id: row.id, instanceId: row.instanceId, source };
    if (this.dryRun) {
      this.note(this.report.backups, { ...item, outcome: 'created' });
      this.report.references.created += owners.length;
      return true;
    }
    try {
      const refs = await this.records.transaction(async (tx) => {
        await tx.backups.create(row);
        await tx.backups.updateWhere({ id: row.id }, changes);
        return owners.length ? tx.backups.addReferences(row.id, owners) : 0;
      });
      this.report.references.created += refs;
      this.note(this.report.backups, { ...item, outcome: 'created' });
      return true;
    } catch (err) {
      if (!(err instanceof UniqueViolation)) throw err;
      if (await this.records.backups.get(row.id)) {
        this.note(this.report.backups, { id: row.id, instanceId: row.instanceId, outcome: 'existing' });
        return true;
      }
      this.skipBackup(
        row.id,
        row.instanceId,
        `refused by a unique constraint (${err.fields.join(', ') || 'name'}): another backup of the instance holds its name`,
      );
      return false;
    }
  }
}
