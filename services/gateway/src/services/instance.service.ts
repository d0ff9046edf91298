import {
  CairnError,
  activeInstanceJob,
  backupPrefix,
  cancelJobs,
  containingRoot,
  isInside,
  newId,
  UniqueViolation,
  volumeStateOf,
  volumeStateProblem,
  type Logger,
  type Node,
  type NewVolume,
  type RecordSet,
  type Records,
  type SchedulerSync,
  type TxRecords,
} from '@cairn/core';
import type {
  Coverage,
  CreateInstanceBody,
  DeletedInstance,
  InstanceList,
  InstanceView,
  ListInstancesQuery,
  UpdateInstanceBody,
  VolumeCoverage,
  VolumeSpec,
} from '@cairn/core/api/index.ts';
import type { QueuePort } from '../queue/queue-client.ts';
import { fieldError, validationError } from '../http/validation.ts';
import { tenantScope, type Actor } from './actor.ts';
import { heartbeatAgeSeconds, instanceView, isOnline, type InstanceRow } from './presenters.ts';
import type { BackupObjects } from './backup-objects.ts';
import { applyHookChanges, checkHookCommands, hookRows, saveNewInstanceHooks, withSecret, type SavedHooks } from './instance-hooks.ts';

/** The tenant of instances an admin without a tenant of its own registers without naming one. */
export const DEFAULT_TENANT = 'default';

export interface InstanceServiceOptions {
  records: Records;
  queues: QueuePort;
  objects: BackupObjects;
  /** Removes the BullMQ job schedulers of the schedules that a force delete takes with it. */
  schedulers: Pick<SchedulerSync, 'removeScheduler'>;
  logger: Logger;
  now?: () => Date;
}

/** Instances and their volumes (SPEC §3, §11): registration rules, tenancy, coverage. */
export class InstanceService {
  private readonly records: Records;
  private readonly queues: QueuePort;
  private readonly objects: BackupObjects;
  private readonly schedulers: Pick<SchedulerSync, 'removeScheduler'>;
  private readonly logger: Logger;
  private readonly now: () => Date;

  constructor(options: InstanceServiceOptions) {
    this.records = options.records;
    this.queues = options.queues;
    this.objects = options.objects;
    this.schedulers = options.schedulers;
    this.logger = options.logger;
    this.now = options.now ?? (() => new Date());
  }

  /** 404 unless the actor may see the instance: one indexed look-up of its id, nothing loaded (list paths). */
  async assertVisible(actor: Actor, id: string): Promise<void> {
    const [found] = await this.records.instances.ids({ id, tenantId: tenantScope(actor) });
    if (!found) throw new CairnError('not-found', `instance ${id} not found`);
  }

  /** The instance if the actor may see it; another tenant's instance is "not found". */
  async findVisible(actor: Actor, id: string, db: RecordSet = this.records): Promise<InstanceRow> {
    const row = await db.instances.findFirst({ id, tenantId: tenantScope(actor) });
    if (!row) throw new CairnError('not-found', `instance ${id} not found`);
    return row;
  }

  async register(actor: Actor, body: CreateInstanceBody): Promise<InstanceView> {
    const node = await this.requireNode(body.nodeId);
    checkVolumesOnNode(body.volumes, node);
    checkHookCommands(body.hooks, node);
    const id = newId();
    let hooks = null as SavedHooks | null;
    try {
      // Before the transaction: a new tenant is created (or found) race-free on its own, so
      // concurrent first registrations in a tenant do not trip over each other's insert of it.
      const tenantId = await this.resolveTenant(actor, body.tenant);
      const row = await this.records.transaction(async (tx) => {
        await checkNoOverlapOnNode(tx, node.id, body.volumes, null, tenantId);
        const existing = await tx.instances.findFirst({ tenantId, name: body.name });
        if (existing) throw duplicateName(body.name, existing.id);
        const created = await tx.instances.create({ id, tenantId, name: body.name, nodeId: node.id, volumes: newVolumes(body.volumes) });
        hooks = await saveNewInstanceHooks(tx, id, body.hooks);
        return created;
      });
      this.logger.info({ instanceId: row.id, nodeId: row.nodeId, tenant: row.tenant.name, by: actor.tokenId }, 'instance registered');
      return withSecret(instanceView(row, hooks?.row ?? null), hooks);
    } catch (err) {
      throw uniqueToConflict(err, body.name);
    }
  }

  async list(actor: Actor, query: ListInstancesQuery): Promise<InstanceList> {
    const tenantId = tenantScope(actor);
    const rows = await this.records.instances.find(
      { tenantId, tenantName: query.tenant, nodeId: query.node },
      { order: 'desc', before: query.cursor, take: query.limit + 1 },
    );
    const page = rows.slice(0, query.limit);
    const hooks = await hookRows(
      this.records,
      page.map((i) => i.id),
    );
    return { items: page.map((i) => instanceView(i, hooks.get(i.id) ?? null)), nextCursor: rows.length > query.limit ? page[page.length - 1]!.id : null };
  }

  async get(actor: Actor, id: string): Promise<InstanceView> {
    const row = await this.findVisible(actor, id);
    return instanceView(row, await this.records.hooks.getConfig(row.id));
  }

  /**
   * Renames, moves to another node, or replaces the volume set. Moving or changing volumes is
   * refused while a backup or restore of the instance is queued or running (it would run
   * against the old layout).
   */
  async update(actor: Actor, id: string, body: UpdateInstanceBody): Promise<InstanceView> {
    await this.findVisible(actor, id);
    const layoutChange = body.nodeId !== undefined || body.volumes !== undefined;
    let hooks = null as SavedHooks | null;
    try {
      const row = await this.records.transaction(async (tx) => {
        await tx.lock('instance', id);
        const current = await this.findVisible(actor, id, tx);
        if (layoutChange) {
          const active = await activeInstanceJob(tx, id);
          if (active)
            throw new CairnError('conflict', `instance ${current.name} has a ${active.type} job ${active.status}; change its node or volumes when it ends`, {
              details: { jobId: active.id },
            });
          const node =
            body.nodeId !== undefined && body.nodeId !== current.nodeId ? await this.requireNode(body.nodeId, tx) : await tx.nodes.get(current.nodeId);
          const volumes: VolumeSpec[] = body.volumes ?? current.volumes.map((v) => ({ name: v.name, hostPath: v.hostPath, excludes: v.excludes }));
          if (!node) throw fieldError('nodeId', `node ${current.nodeId} no longer exists; give a nodeId`);
          checkVolumesOnNode(volumes, node);
          await checkNoOverlapOnNode(tx, node.id, volumes, id, current.tenantId);
        }
        if (body.name !== undefined && body.name !== current.name) {
          const clash = await tx.instances.findFirst({ tenantId: current.tenantId, name: body.name });
          if (clash) throw duplicateName(body.name, clash.id);
        }
        // Command hooks given, or kept while the instance moves, must name commands of its node.
        const hookNode = body.hooks !== undefined || body.nodeId !== undefined ? await tx.nodes.get(body.nodeId ?? current.nodeId) : null;
        hooks = await applyHookChanges(tx, id, hookNode, body);
        return tx.instances.update(id, {
          name: body.name,
          nodeId: body.nodeId,
          ...(body.volumes ? { volumes: newVolumes(body.volumes) } : {}),
        });
      });
      this.logger.info({ instanceId: id, by: actor.tokenId, changed: Object.keys(body) }, 'instance updated');
      return withSecret(instanceView(row, hooks?.row ?? null), hooks);
    } catch (err) {
      throw uniqueToConflict(err, body.name ?? '');
    }
  }

  /**
   * Removes an instance. Refused while it has backups that are not deleted (or jobs in flight)
   * unless `force`: then its jobs are cancelled, its backup records removed with it and their
   * objects deleted (the orphan sweep catches whatever that misses). Its schedules go with it
   * (cascade), their BullMQ job schedulers first, in the same transaction.
   */
  async remove(actor: Actor, id: string, force: boolean): Promise<DeletedInstance> {
    const instance = await this.findVisible(actor, id);
    const live = await this.records.backups.count({ instanceId: id, statusNot: 'deleted' });
    const active = await this.records.jobs.find({ status: ['queued', 'running'], touchesInstance: id }, { order: 'asc' });
    if (!force && live > 0) {
      throw new CairnError('conflict', `instance ${instance.name} has ${live} backup(s); delete them first or use ?force=true`, { details: { backups: live } });
    }
    if (!force && active.length > 0) {
      throw new CairnError('conflict', `instance ${instance.name} has a ${active[0]!.type} job ${active[0]!.status}; cancel it or use ?force=true`, {
        details: { jobId: active[0]!.id },
      });
    }
    // Pinned backups refuse deletion, even a forced one (issue 13): checked before any job is cancelled, again under the lock.
    await refusePinned(this.records, instance);
    // Stop the work first: if Redis is down this fails (503) before anything is deleted.
    const cancelled = await cancelJobs(this.records, this.queues, active, `instance ${id} deleted`);
    const { prefixes, schedules } = await this.records.transaction(
      async (tx) => {
        // Lock order schedule → instance (as a firing takes them), so a firing or a schedule change
        // in flight finishes first and cannot put a scheduler back for a row about to vanish.
        const schedules = (await tx.schedules.find({ instanceId: id }, { order: 'asc' })).map((s) => s.id);
        for (const scheduleId of schedules) await tx.lock('schedule', scheduleId);
        await tx.lock('instance', id);
        await refusePinned(tx, instance);
        // Redis first: if it fails (503) the transaction rolls back and nothing is deleted.
        for (const scheduleId of schedules) await this.schedulers.removeScheduler(scheduleId);
        const backups = await tx.backups.find({ instanceId: id });
        await tx.backups.deleteWhere({ instanceId: id });
        await tx.instances.delete(id); // schedules cascade
        return { prefixes: backups.map((b) => backupPrefix(id, b.id)), schedules };
      },
      { timeoutMs: 30_000 },
    );
    this.logger.info({ instanceId: id, backups: prefixes.length, schedules: schedules.length, force, by: actor.tokenId }, 'instance deleted');
    // Objects of deleted (or never completed) backups may linger; removing them is best effort.
    for (const prefix of prefixes) {
      await this.objects
        .deletePrefix(prefix)
        .catch((err: Error) => this.logger.warn({ instanceId: id, prefix, err: err.message }, 'could not delete backup objects; the orphan sweep will'));
    }
    return { id, deletedBackups: prefixes.length, cancelledJobs: cancelled };
  }

  /** Which volumes a backup would include now, and why the others would be skipped. */
  async coverage(actor: Actor, id: string): Promise<Coverage> {
    const instance = await this.findVisible(actor, id);
    const [node, lastBackup] = await Promise.all([
      this.records.nodes.get(instance.nodeId),
      this.records.backups.findFirst({ instanceId: id, statusNot: 'deleted' }, { order: 'desc' }),
    ]);
    const now = this.now();
    const roots = capacityRoots(node?.capacity);
    const volumes: VolumeCoverage[] = [...instance.volumes]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((v) => {
        const root = node ? (containingRoot(v.hostPath, node.volumeRoots) ?? null) : null;
        const cap = root ? roots.get(root) : undefined;
        // What the node itself saw at the path (issue 15): the gateway never looks at volume data.
        const seen = node ? volumeStateOf(node.volumeStates, v.hostPath) : null;
        let reason: string | null = null;
        if (!node) reason = `node ${instance.nodeId} is not registered`;
        else if (node.volumeRoots.length === 0) reason = `node ${node.id} has no volume roots`;
        else if (!root) reason = `${v.hostPath} is outside the volume roots of node ${node.id} (${node.volumeRoots.join(', ')})`;
        else if (cap?.error) reason = `volume root ${root} is not usable on the node: ${cap.error}`;
        else if (seen) reason = volumeStateProblem(node.id, v.hostPath, seen);
        return {
          name: v.name,
          hostPath: v.hostPath,
          covered: reason === null,
          root,
          freeBytes: cap?.freeBytes ?? null,
          totalBytes: cap?.totalBytes ?? null,
          reason,
          state: seen?.state ?? null,
          stateCheckedAt: seen?.checkedAt ?? null,
        };
      });
    const online = node ? isOnline(node, now) : false;
    const warnings: string[] = [];
    if (node && !online) {
      const age = heartbeatAgeSeconds(node, now);
      warnings.push(
        age === null
          ? `node ${node.id} has never sent a heartbeat: backups wait in its queue until its worker starts`
          : `node ${node.id} is offline (last heartbeat ${Math.round(age)} s ago): backups wait in its queue`,
      );
    }
    if (instance.volumes.length === 0) warnings.push('the instance has no volumes');
    const lastWarnings = lastBackup && Array.isArray(lastBackup.warnings) ? (lastBackup.warnings as unknown[]) : [];
    return {
      instanceId: instance.id,
      nodeId: instance.nodeId,
      node: {
        known: node !== null,
        online,
        lastHeartbeatAt: node?.lastHeartbeatAt?.toISOString() ?? null,
        heartbeatAgeSeconds: node ? heartbeatAgeSeconds(node, now) : null,
      },
      covered: volumes.filter((v) => v.covered).map((v) => v.name),
      skipped: volumes.filter((v) => !v.covered).map((v) => ({ name: v.name, reason: v.reason! })),
      volumes,
      warnings,
      lastBackup: lastBackup
        ? {
            id: lastBackup.id,
            status: lastBackup.status,
            createdAt: lastBackup.createdAt.toISOString(),
            completedAt: lastBackup.completedAt?.toISOString() ?? null,
            warnings: lastWarnings,
          }
        : null,
    };
  }

  private async requireNode(nodeId: string, db: RecordSet = this.records): Promise<Node> {
    const node = await db.nodes.get(nodeId);
    if (!node) throw fieldError('nodeId', `unknown node ${nodeId}: register the node (or start its worker) first`);
    return node;
  }

  private async resolveTenant(actor: Actor, tenantName: string | undefined): Promise<string> {
    if (actor.role === 'member') {
      const own = tenantScope(actor)!;
      if (tenantName !== undefined) {
        const tenant = await this.records.tenants.get(own);
        if (tenant?.name !== tenantName) throw new CairnError('forbidden', 'members create instances in their own tenant only; omit tenant');
      }
      return own;
    }
    if (tenantName !== undefined) {
      const tenant = await this.records.tenants.ensure(tenantName, newId());
      return tenant.id;
    }
    if (actor.tenantId) return actor.tenantId;
    // An admin token without a tenant of its own registers into `default` (issue 15), created on first use.
    return (await this.records.tenants.ensure(DEFAULT_TENANT, newId())).id;
  }
}

/** Every hostPath must lie inside one of the node's volume roots (on a component boundary). */
function checkVolumesOnNode(volumes: VolumeSpec[], node: Node): void {
  const details = volumes.flatMap((v, i) =>
    containingRoot(v.hostPath, node.volumeRoots)
      ? []
      : [
          {
            path: `volumes.${i}.hostPath`,
            message: node.volumeRoots.length
              ? `${v.hostPath} is not inside a volume root of node ${node.id} (${node.volumeRoots.join(', ')})`
              : `node ${node.id} has no volume roots`,
          },
        ],
  );
  if (details.length) throw validationError('request', details);
}

/**
 * No two instances on a node may share or nest volume directories: a backup of the outer one
 * would carry the inner one's data (perhaps another tenant's) and a restore would replace it.
 * Checked under the node's lock so two registrations cannot race past each other. Another
 * tenant's instance is not named.
 */
async function checkNoOverlapOnNode(tx: TxRecords, nodeId: string, volumes: VolumeSpec[], self: string | null, tenantId: string): Promise<void> {
  await tx.lock('node', nodeId);
  const others = await tx.instances.volumes({ nodeId, ...(self ? { notId: self } : {}) });
  const details = volumes.flatMap((v, i) => {
    const clash = others.find((o) => isInside(v.hostPath, o.hostPath) || isInside(o.hostPath, v.hostPath));
    if (!clash) return [];
    const owner =
      clash.instance.tenantId === tenantId
        ? `volume ${clash.name} of instance ${clash.instance.name} (${clash.hostPath})`
        : 'a volume of another instance on this node';
    return [{ path: `volumes.${i}.hostPath`, message: `${v.hostPath} overlaps ${owner}` }];
  });
  if (details.length) throw new CairnError('conflict', `volume paths overlap another instance: ${details.map((d) => d.message).join('; ')}`, { details });
}

function capacityRoots(capacity: unknown): Map<string, { freeBytes: number | null; totalBytes: number | null; error?: string }> {
  const out = new Map<string, { freeBytes: number | null; totalBytes: number | null; error?: string }>();
  const roots = (capacity as { roots?: unknown } | null)?.roots;
  if (!roots || typeof roots !== 'object') return out;
  for (const [root, value] of Object.entries(roots as Record<string, unknown>)) {
    const v = (value ?? {}) as { freeBytes?: unknown; totalBytes?: unknown; error?: unknown };
    out.set(root, {
      freeBytes: typeof v.freeBytes === 'number' ? v.freeBytes : null,
      totalBytes: typeof v.totalBytes === 'number' ? v.totalBytes : null,
      ...(typeof v.error === 'string' ? { error: v.error } : {}),
    });
  }
  return out;
}

function duplicateName(name: string, existingId: string): CairnError {
  return new CairnError('conflict', `an instance named ${name} already exists in this tenant`, { details: { instanceId: existingId } });
}

function uniqueToConflict(err: unknown, name: string): unknown {
  if (err instanceof UniqueViolation) return new CairnError('conflict', `an instance named ${name} already exists in this tenant`, { cause: err });
  return err;
}

function newVolumes(volumes: VolumeSpec[]): NewVolume[] {
  return volumes.map((v) => ({ id: newId(), name: v.name, hostPath: v.hostPath, excludes: v.excludes ?? [] }));
}

/** 409 while the instance has pinned backups (not deleting or deleted): they must be unpinned before the instance can go. */
async function refusePinned(records: RecordSet, instance: { id: string; name: string }): Promise<void> {
  const pinned = await records.backups.find({ instanceId: instance.id, pinned: true, statusNot: ['deleting', 'deleted'] }, { take: 20 });
  if (!pinned.length) return;
  throw new CairnError(
    'conflict',
    `instance ${instance.name} has pinned backups (${pinned.map((b) => b.id).join(', ')}); unpin them before removing the instance, even with force`,
    { details: { pinned: pinned.map((b) => b.id) } },
  );
}
