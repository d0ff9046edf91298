import {
  CairnError,
  activeInstanceJob,
  archiveKey,
  containingRoot,
  indexKey,
  newId,
  nodeQueueName,
  softDeleteBackup,
  softDeleteBackups,
  type Backup,
  type Compression,
  type Config,
  type Job,
  type Logger,
  type Records,
  type SoftDeleteOptions,
  type SoftDeleted,
  failUnqueued,
  DEFAULT_FULL_BACKUP_EVERY,
  NAMED_BACKUP_STATUSES,
  UniqueViolation,
  type BackupChanges,
  type RecordSet,
} from '@cairn/core';
import { decideBackupKind } from '@cairn/core/domain/backup-kind.ts';
import { exclusiveBytes } from '@cairn/core/domain/object-references.ts';
import type {
  BackupList,
  BackupStarted,
  BackupView,
  BatchDeleteResult,
  DeleteBackupResult,
  ListBackupsQuery,
  StartBackupBody,
  UpdateBackupBody,
} from '@cairn/core/api/index.ts';
import { validationError } from '../http/validation.ts';
import { toCairnError } from '../middleware/error-handler.ts';
import { writeBackupManifest } from '@cairn/core/domain/catalog-manifest.ts';
import type { ObjectStore } from '@cairn/core/storage/object-store.ts';
import type { QueuePort } from '../queue/queue-client.ts';
import { tenantScope, type Actor } from './actor.ts';
import type { InstanceService } from './instance.service.ts';
import { countedManualBackups, manualBackupLimitOf } from './instance-policy.service.ts';
import { backupView, jobView } from './presenters.ts';

export interface BackupServiceOptions {
  records: Records;
  queues: QueuePort;
  instances: InstanceService;
  /** FULL_BACKUP_EVERY defaults to the configuration's default. */
  config: Pick<Config, 'COMPRESSION' | 'MANUAL_BACKUP_LIMIT'> & Partial<Pick<Config, 'FULL_BACKUP_EVERY'>>;
  logger: Logger;
  now?: () => Date;
  /** Where a completed backup's manifest is rewritten when its name, note or pin changes (issue 14: what a catalog rebuild reads). */
  store?: ObjectStore;
}

/** Starting, listing and deleting backups (SPEC §4, §9, §10, §11). */
export class BackupService {
  private readonly records: Records;
  private readonly queues: QueuePort;
  private readonly instances: InstanceService;
  private readonly config: BackupServiceOptions['config'];
  private readonly logger: Logger;
  private readonly now: () => Date;

  constructor(private readonly options: BackupServiceOptions) {
    this.records = options.records;
    this.queues = options.queues;
    this.instances = options.instances;
    this.config = options.config;
    this.logger = options.logger;
    this.now = options.now ?? (() => new Date());
  }

  async findVisible(actor: Actor, id: string): Promise<Backup> {
    const row = await this.records.backups.findFirst({ id, tenantId: tenantScope(actor) });
    if (!row) throw new CairnError('not-found', `backup ${id} not found`);
    return row;
  }

  /**
   * A manual backup: Backup `pending` + Job `queued` written in one transaction (under the
   * instance's lock, so two requests cannot both pass the one-at-a-time rule), then enqueued on
   * the instance's node queue. If enqueueing fails the rows are marked failed and the caller
   * gets 503; nothing is left looking queued that no worker will ever see.
   *
   * Its kind (`body.kind`, default auto) is decided under the same lock, from the instance's
   * completed backups (domain/backup-kind.ts); the row records it with its parent. The node worker
   * falls back to a full backup when the parent turns out unusable by the time the job runs.
   *
   * Under the same lock too (issue 13): the name must be free among the instance's backups that are
   * not deleting or deleted (409 naming it), and the manual limit (the instance's own, or
   * MANUAL_BACKUP_LIMIT) counts the unpinned manual backups; a pinned one is never refused by it.
   */
  async start(actor: Actor, instanceId: string, body: StartBackupBody): Promise<BackupStarted> {
    const instance = await this.instances.findVisible(actor, instanceId);
    const names = instance.volumes.map((v) => v.name).sort();
    if (names.length === 0) throw new CairnError('no-data', `nothing to back up: instance ${instance.name} has no volumes`);
    if (body.volumes) {
      const unknown = body.volumes.flatMap((v, i) =>
        names.includes(v) ? [] : [{ path: `volumes.${i}`, message: `instance ${instance.name} has no volume ${v} (it has ${names.join(', ')})` }],
      );
      if (unknown.length) throw validationError('request', unknown);
    }
    const selected = body.volumes ? [...body.volumes].sort() : names;
    await this.refuseUncoverable(
      instance.nodeId,
      instance.volumes.filter((v) => selected.includes(v.name)),
    );
    await this.queues.ready();

    const compression = this.config.COMPRESSION as Compression;
    const backupId = newId();
    const jobId = newId();
    const { backup, job, choice } = await this.records.transaction(async (tx) => {
      await tx.lock('instance', instance.id);
      const active = await activeInstanceJob(tx, instance.id);
      if (active) throw busy(instance.name, active);
      if (body.name !== undefined) await refuseTakenName(tx, instance, body.name);
      if (!body.pinned) {
        const manual = await tx.backups.count(countedManualBackups(instance.id));
        const { limit, source } = await manualBackupLimitOf(tx, instance.id, this.config.MANUAL_BACKUP_LIMIT);
        if (manual >= limit) {
          throw new CairnError(
            'limit',
            `instance ${instance.name} already has ${manual} unpinned manual backups (limit ${limit}, from the ${source}); ` +
              'delete or pin some before taking another',
            { details: { limit, count: manual, source } },
          );
        }
      }
      const choice = await decideBackupKind(tx.backups, instance.id, {
        requested: body.kind ?? 'auto',
        volumes: selected,
        instanceVolumes: names,
        compression,
        fullEvery: this.config.FULL_BACKUP_EVERY ?? DEFAULT_FULL_BACKUP_EVERY,
      });
      const created = tx.backups.create({
        id: backupId,
        instanceId: instance.id,
        status: 'pending',
        trigger: 'manual',
        kind: choice.kind,
        parentId: choice.parentId,
        volumes: selected,
        storageKey: archiveKey(instance.id, backupId, compression),
        indexKey: indexKey(instance.id, backupId),
        compression,
        requestedBy: actor.tokenId,
        name: body.name ?? null,
        note: body.note ?? null,
        pinned: body.pinned ?? false,
      });
      // The check above holds under the lock; the database's unique index is the last word.
      const backup = await created.catch((err: unknown) => {
        throw err instanceof UniqueViolation && body.name !== undefined ? nameTaken(instance.name, body.name) : err;
      });
      const job = await tx.jobs.create({
        id: jobId,
        type: 'backup',
        status: 'queued',
        instanceId: instance.id,
        backupId,
        nodeId: instance.nodeId,
        queue: nodeQueueName(instance.nodeId),
        params: { volumes: selected },
        requestedBy: actor.tokenId,
      });
      return { backup, job, choice };
    });

    try {
      await this.queues.enqueueNode(instance.nodeId, 'backup', { jobId });
    } catch (err) {
      const reason = `could not enqueue the backup: ${toCairnError(err).message}`;
      await failUnqueued(this.records, this.logger, { jobId, backupId }, reason);
      throw new CairnError('unavailable', reason, { cause: err, details: { backupId, jobId } });
    }
    this.logger.info(
      {
        backupId,
        jobId,
        instanceId: instance.id,
        nodeId: instance.nodeId,
        volumes: selected,
        kind: choice.kind,
        parentId: choice.parentId,
        why: choice.reason,
        by: actor.tokenId,
      },
      'backup requested',
    );
    return { backup: backupView(backup), job: jobView(job) };
  }

  async list(actor: Actor, instanceId: string, query: ListBackupsQuery): Promise<BackupList> {
    // Scoped to the actor's tenant like the instance itself: rows found prove the instance visible,
    // so only an empty page costs the separate check (404 for an instance of another tenant).
    const rows = await this.records.backups.find(
      {
        instanceId,
        tenantId: tenantScope(actor),
        ...(query.status ? { status: query.status } : { statusNot: 'deleted' }),
        trigger: query.trigger,
        name: query.name,
        namePrefix: query.namePrefix,
        pinned: query.pinned,
        volume: query.volume,
      },
      { order: 'desc', before: query.cursor, take: query.limit + 1 },
    );
    if (rows.length === 0) await this.instances.assertVisible(actor, instanceId);
    const page = rows.slice(0, query.limit);
    return { items: page.map(backupView), nextCursor: rows.length > query.limit ? page[page.length - 1]!.id : null };
  }

  /** One backup; a completed one with the bytes only it holds (what deleting it frees). */
  async get(actor: Actor, id: string): Promise<BackupView> {
    const row = await this.findVisible(actor, id);
    const view = backupView(row);
    if (row.status !== 'completed') return view;
    return { ...view, exclusiveBytes: Number(await exclusiveBytes(this.records, row)) };
  }

  /**
   * Names, notes and pins (issue 13), under the backup's lock (as a delete takes it, so a pin and a
   * delete cannot cross) and the instance's (as a new backup's name is checked under it). A backup
   * being deleted cannot be changed; only a live one (pending, running, completed) can be pinned.
   * Pinning clears expiresAt: retention never expires a pinned backup.
   */
  async update(actor: Actor, id: string, body: UpdateBackupBody): Promise<BackupView> {
    const seen = await this.findVisible(actor, id);
    const updated = await this.records.transaction(async (tx) => {
      await tx.lock('backup', id);
      await tx.lock('instance', seen.instanceId);
      const found = await tx.backups.findFirst({ id, tenantId: tenantScope(actor) });
      if (!found) throw new CairnError('not-found', `backup ${id} not found`);
      if (found.status === 'deleting' || found.status === 'deleted') {
        throw new CairnError('conflict', `backup ${id} is ${found.status}; it can no longer be changed`, { details: { status: found.status } });
      }
      if (body.pinned === true && !['pending', 'running', 'completed'].includes(found.status)) {
        throw new CairnError('conflict', `backup ${id} is ${found.status}; only a pending, running or completed backup can be pinned`, {
          details: { status: found.status },
        });
      }
      const newName = typeof body.name === 'string' && body.name !== found.name ? body.name : null;
      const instance = newName !== null ? await this.instances.findVisible(actor, found.instanceId, tx) : null;
      if (instance && newName !== null) await refuseTakenName(tx, instance, newName, id);
      const changes: BackupChanges = {
        ...(body.name !== undefined ? { name: body.name } : {}),
        ...(body.note !== undefined ? { note: body.note } : {}),
        ...(body.pinned !== undefined ? { pinned: body.pinned } : {}),
        ...(body.pinned === true ? { expiresAt: null } : {}),
      };
      try {
        await tx.backups.updateWhere({ id, statusNot: ['deleting', 'deleted'] }, changes);
      } catch (err) {
        throw err instanceof UniqueViolation && instance && newName !== null ? nameTaken(instance.name, newName) : err;
      }
      return (await tx.backups.get(id))!;
    });
    this.logger.info({ backupId: id, changed: Object.keys(body), pinned: updated.pinned, by: actor.tokenId }, 'backup updated');
    if (updated.status === 'completed' && this.options.store) {
      await writeBackupManifest(this.records, this.options.store, id).catch((err: Error) =>
        this.logger.warn(
          { backupId: id, err: err.message },
          'could not rewrite the backup manifest; a catalog rebuild would bring back the old name, note or pin',
        ),
      );
    }
    return backupView(updated);
  }

  /**
   * Soft delete (SPEC §10) through core's one implementation: the backup turns `deleting` at once,
   * a cleanup job removes its objects later; a backup still being produced has its job cancelled,
   * one being read by a restore is refused (409), Redis down is a 503 before anything changes.
   * Repeating the call is safe: it reuses the active cleanup job, or starts a new one if the last
   * one failed.
   */
  async remove(actor: Actor, id: string): Promise<DeleteBackupResult> {
    const deleted = await softDeleteBackup(this.records, this.queues, id, actor.tokenId, this.deleteOptions(actor));
    this.logDeleted(actor, deleted);
    return { backup: backupView(deleted.backup), job: deleted.cleanupJob ? jobView(deleted.cleanupJob) : null };
  }

  /** Batch delete: each id on its own, one result per id in request order. */
  async removeMany(actor: Actor, ids: string[]): Promise<BatchDeleteResult> {
    const results = await softDeleteBackups(this.records, this.queues, ids, actor.tokenId, {
      ...this.deleteOptions(actor),
      // The HTTP mapping (database down → unavailable...); anything unexpected is logged here, once.
      classifyError: (err, backupId) => {
        const e = toCairnError(err);
        if (e.code === 'internal') this.logger.error({ err, backupId }, 'batch delete failed');
        return e;
      },
    });
    return {
      results: results.map((r) => {
        if (r.ok) {
          this.logDeleted(actor, r);
          return { id: r.id, ok: true, status: r.backup.status, jobId: r.cleanupJob?.id ?? null };
        }
        const e = r.error;
        return {
          id: r.id,
          ok: false,
          error: { code: e.code, message: e.code === 'internal' ? 'internal error' : e.message, ...(e.details !== undefined ? { details: e.details } : {}) },
        };
      }),
    };
  }

  private deleteOptions(actor: Actor): SoftDeleteOptions {
    return { tenantId: tenantScope(actor), reason: 'user', now: this.now };
  }

  private logDeleted(actor: Actor, deleted: SoftDeleted): void {
    if (!deleted.cleanupJob) return;
    this.logger.info({ backupId: deleted.id, jobId: deleted.cleanupJob.id, cancelled: deleted.cancelledJobs, by: actor.tokenId }, 'backup deleting');
  }

  /** 422 when none of the chosen volumes can be backed up on the instance's node (SPEC §11). */
  private async refuseUncoverable(nodeId: string, volumes: { name: string; hostPath: string }[]): Promise<void> {
    const node = await this.records.nodes.get(nodeId);
    if (!node) throw new CairnError('no-data', `nothing to back up: node ${nodeId} is not registered`);
    const reasons = volumes
      .filter((v) => !containingRoot(v.hostPath, node.volumeRoots))
      .map((v) => `${v.name}: ${v.hostPath} is outside the volume roots of node ${node.id}`);
    if (reasons.length === volumes.length) throw new CairnError('no-data', `nothing to back up: ${reasons.join('; ')}`, { details: { skipped: reasons } });
  }
}

/** 409 when another backup of the instance that is not deleting or deleted has the name (`except`: the backup being renamed). */
async function refuseTakenName(tx: RecordSet, instance: { id: string; name: string }, name: string, except?: string): Promise<void> {
  const holder = await tx.backups.findFirst({ instanceId: instance.id, name, status: NAMED_BACKUP_STATUSES });
  if (holder && holder.id !== except) throw nameTaken(instance.name, name, holder);
}

function nameTaken(instanceName: string, name: string, holder?: Backup): CairnError {
  const which = holder ? ` (${holder.id}, ${holder.status})` : '';
  return new CairnError(
    'conflict',
    `instance ${instanceName} already has a backup named ${JSON.stringify(name)}${which}; choose another name, or rename or delete that backup`,
    { details: { name, ...(holder ? { backupId: holder.id } : {}) } },
  );
}

function busy(instanceName: string, active: Job): CairnError {
  return new CairnError('conflict', `instance ${instanceName} already has a ${active.type} job ${active.status} (${active.id}); wait for it or cancel it`, {
    details: { jobId: active.id },
  });
}

export { busy as busyInstanceError };
