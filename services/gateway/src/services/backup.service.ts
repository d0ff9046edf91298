import {
  CONTROL_QUEUE,
  CairnError,
  archiveKey,
  containingRoot,
  indexKey,
  newId,
  nodeQueueName,
  transitionBackup,
  transitionJob,
  type Backup,
  type Compression,
  type Config,
  type Job,
  type Logger,
  type Prisma,
  type PrismaClient,
} from '@cairn/core';
import type { BackupList, BackupStarted, BatchDeleteResult, DeleteBackupResult, ListBackupsQuery, StartBackupBody } from '@cairn/core/api/index.ts';
import { validationError } from '../http/validation.ts';
import { toCairnError } from '../middleware/error-handler.ts';
import type { QueuePort } from '../queue/queue-client.ts';
import { tenantScope, type Actor } from './actor.ts';
import type { InstanceService } from './instance.service.ts';
import { activeJobOf, cancelJob } from './job-rules.ts';
import { lockFor } from './locks.ts';
import { backupView, jobView } from './presenters.ts';

export interface BackupServiceOptions {
  prisma: PrismaClient;
  queues: QueuePort;
  instances: InstanceService;
  config: Pick<Config, 'COMPRESSION' | 'MANUAL_BACKUP_LIMIT'>;
  logger: Logger;
  now?: () => Date;
}

/** Job types that read a backup's objects: the backup cannot be deleted under them. */
const READERS = ['restore', 'verify', 'migrate'] as const;

/** Starting, listing and deleting backups (SPEC §4, §9, §10, §11). */
export class BackupService {
  private readonly prisma: PrismaClient;
  private readonly queues: QueuePort;
  private readonly instances: InstanceService;
  private readonly config: BackupServiceOptions['config'];
  private readonly logger: Logger;
  private readonly now: () => Date;

  constructor(options: BackupServiceOptions) {
    this.prisma = options.prisma;
    this.queues = options.queues;
    this.instances = options.instances;
    this.config = options.config;
    this.logger = options.logger;
    this.now = options.now ?? (() => new Date());
  }

  async findVisible(actor: Actor, id: string, db: Prisma.TransactionClient | PrismaClient = this.prisma): Promise<Backup> {
    const tenantId = tenantScope(actor);
    const row = await db.backup.findFirst({ where: { id, ...(tenantId ? { instance: { tenantId } } : {}) } });
    if (!row) throw new CairnError('not-found', `backup ${id} not found`);
    return row;
  }

  /**
   * A manual backup: Backup `pending` + Job `queued` written in one transaction (under the
   * instance's lock, so two requests cannot both pass the one-at-a-time rule), then enqueued on
   * the instance's node queue. If enqueueing fails the rows are marked failed and the caller
   * gets 503; nothing is left looking queued that no worker will ever see.
   */
  async start(actor: Actor, instanceId: string, body: StartBackupBody): Promise<BackupStarted> {
    const instance = await this.instances.findVisible(actor, instanceId);
    const names = instance.volumes.map((v) => v.name).sort();
    if (names.length === 0) throw new CairnError('no-data', `nothing to back up: instance ${instance.name} has no volumes`);
    if (body.volumes) {
      const unknown = body.volumes.flatMap((v, i) => (names.includes(v) ? [] : [{ path: `volumes.${i}`, message: `instance ${instance.name} has no volume ${v} (it has ${names.join(', ')})` }]));
      if (unknown.length) throw validationError('request', unknown);
    }
    const selected = body.volumes ? [...body.volumes].sort() : names;
    await this.refuseUncoverable(instance.nodeId, instance.volumes.filter((v) => selected.includes(v.name)));
    await this.queues.ready();

    const compression = this.config.COMPRESSION as Compression;
    const backupId = newId();
    const jobId = newId();
    const { backup, job } = await this.prisma.$transaction(async (tx) => {
      await lockFor(tx, 'instance', instance.id);
      const active = await activeJobOf(tx, instance.id);
      if (active) throw busy(instance.name, active);
      const manual = await tx.backup.count({ where: { instanceId: instance.id, trigger: 'manual', status: { notIn: ['deleting', 'deleted'] } } });
      if (manual >= this.config.MANUAL_BACKUP_LIMIT) {
        throw new CairnError('limit', `instance ${instance.name} already has ${manual} manual backups (limit ${this.config.MANUAL_BACKUP_LIMIT}); delete some before taking another`, {
          details: { limit: this.config.MANUAL_BACKUP_LIMIT, count: manual },
        });
      }
      const backup = await tx.backup.create({
        data: {
          id: backupId,
          instanceId: instance.id,
          status: 'pending',
          trigger: 'manual',
          kind: 'full',
          volumes: selected,
          storageKey: archiveKey(instance.id, backupId, compression),
          indexKey: indexKey(instance.id, backupId),
          compression,
          requestedBy: actor.tokenId,
        },
      });
      const job = await tx.job.create({
        data: {
          id: jobId,
          type: 'backup',
          status: 'queued',
          instanceId: instance.id,
          backupId,
          nodeId: instance.nodeId,
          queue: nodeQueueName(instance.nodeId),
          params: { volumes: selected },
          requestedBy: actor.tokenId,
        },
      });
      return { backup, job };
    });

    try {
      await this.queues.enqueueNode(instance.nodeId, 'backup', { jobId });
    } catch (err) {
      const reason = `could not enqueue the backup: ${toCairnError(err).message}`;
      await transitionJob(this.prisma, jobId, ['queued'], 'failed', { error: reason, errorCode: 'unavailable' });
      await transitionBackup(this.prisma, backupId, ['pending'], 'failed', { error: reason });
      throw new CairnError('unavailable', reason, { cause: err, details: { backupId, jobId } });
    }
    this.logger.info({ backupId, jobId, instanceId: instance.id, nodeId: instance.nodeId, volumes: selected, by: actor.tokenId }, 'backup requested');
    return { backup: backupView(backup), job: jobView(job) };
  }

  async list(actor: Actor, instanceId: string, query: ListBackupsQuery): Promise<BackupList> {
    await this.instances.findVisible(actor, instanceId);
    const rows = await this.prisma.backup.findMany({
      where: {
        instanceId,
        status: query.status ? { in: query.status } : { not: 'deleted' },
        ...(query.trigger ? { trigger: { in: query.trigger } } : {}),
        ...(query.cursor ? { id: { lt: query.cursor } } : {}),
      },
      orderBy: { id: 'desc' },
      take: query.limit + 1,
    });
    const page = rows.slice(0, query.limit);
    return { items: page.map(backupView), nextCursor: rows.length > query.limit ? page[page.length - 1]!.id : null };
  }

  async get(actor: Actor, id: string) {
    return backupView(await this.findVisible(actor, id));
  }

  /**
   * Soft delete (SPEC §10): the backup turns `deleting` at once (conditionally, from any live
   * state), a cleanup job removes its objects later. A backup still being produced has its job
   * cancelled; a backup being read by a restore is refused (409). Repeating the call is safe:
   * it reuses the active cleanup job, or starts a new one if the last one failed.
   */
  async remove(actor: Actor, id: string): Promise<DeleteBackupResult> {
    const visible = await this.findVisible(actor, id);
    if (visible.status === 'deleted') return { backup: backupView(visible), job: null };
    await this.queues.ready();
    const { backup, cleanup } = await this.prisma.$transaction(async (tx) => {
      await lockFor(tx, 'backup', id);
      const reader = await tx.job.findFirst({ where: { backupId: id, type: { in: [...READERS] }, status: { in: ['queued', 'running'] } } });
      if (reader) throw new CairnError('conflict', `backup ${id} is being read by ${reader.type} job ${reader.id}; cancel it or wait`, { details: { jobId: reader.id } });
      await tx.backup.updateMany({ where: { id, status: { notIn: ['deleting', 'deleted'] } }, data: { status: 'deleting', deletedAt: this.now() } });
      const backup = (await tx.backup.findUnique({ where: { id } }))!;
      if (backup.status === 'deleted') return { backup, cleanup: null };
      const active = await tx.job.findFirst({ where: { backupId: id, type: 'cleanup', status: { in: ['queued', 'running'] } } });
      const cleanup =
        active ??
        (await tx.job.create({
          data: { id: newId(), type: 'cleanup', status: 'queued', instanceId: backup.instanceId, backupId: id, queue: CONTROL_QUEUE, params: {}, requestedBy: actor.tokenId },
        }));
      return { backup, cleanup };
    });
    if (!cleanup) return { backup: backupView(backup), job: null };

    // The backup being produced right now: stop it (its worker cleans up what it uploaded).
    const producers = await this.prisma.job.findMany({ where: { backupId: id, type: 'backup', status: { in: ['queued', 'running'] } } });
    for (const job of producers) await cancelJob(this.prisma, this.queues, job, `backup ${id} deleted`);

    if (cleanup.status === 'queued') {
      try {
        // Idempotent: BullMQ job id = Cairn job id, so re-enqueueing an existing cleanup is a no-op.
        await this.queues.enqueueControl('cleanup', { backupId: id, jobId: cleanup.id }, cleanup.id);
      } catch (err) {
        const reason = `could not enqueue the cleanup: ${toCairnError(err).message}`;
        await transitionJob(this.prisma, cleanup.id, ['queued'], 'failed', { error: reason, errorCode: 'unavailable' });
        throw new CairnError('unavailable', `${reason}; the backup stays deleting, repeat the delete to retry`, { cause: err, details: { backupId: id, jobId: cleanup.id } });
      }
    }
    this.logger.info({ backupId: id, jobId: cleanup.id, cancelled: producers.map((j) => j.id), by: actor.tokenId }, 'backup deleting');
    return { backup: backupView(backup), job: jobView((await this.prisma.job.findUnique({ where: { id: cleanup.id } })) ?? cleanup) };
  }

  /** Batch delete: each id on its own, one result per id in request order. */
  async removeMany(actor: Actor, ids: string[]): Promise<BatchDeleteResult> {
    const results: BatchDeleteResult['results'] = [];
    for (const id of ids) {
      try {
        const { backup, job } = await this.remove(actor, id);
        results.push({ id, ok: true, status: backup.status, jobId: job?.id ?? null });
      } catch (err) {
        const e = toCairnError(err);
        if (e.code === 'internal') this.logger.error({ err, backupId: id }, 'batch delete failed');
        results.push({ id, ok: false, error: { code: e.code, message: e.code === 'internal' ? 'internal error' : e.message, ...(e.details !== undefined ? { details: e.details } : {}) } });
      }
    }
    return { results };
  }

  /** 422 when none of the chosen volumes can be backed up on the instance's node (SPEC §11). */
  private async refuseUncoverable(nodeId: string, volumes: { name: string; hostPath: string }[]): Promise<void> {
    const node = await this.prisma.node.findUnique({ where: { id: nodeId } });
    if (!node) throw new CairnError('no-data', `nothing to back up: node ${nodeId} is not registered`);
    const reasons = volumes.filter((v) => !containingRoot(v.hostPath, node.volumeRoots)).map((v) => `${v.name}: ${v.hostPath} is outside the volume roots of node ${node.id}`);
    if (reasons.length === volumes.length) throw new CairnError('no-data', `nothing to back up: ${reasons.join('; ')}`, { details: { skipped: reasons } });
  }
}

function busy(instanceName: string, active: Job): CairnError {
  return new CairnError('conflict', `instance ${instanceName} already has a ${active.type} job ${active.status} (${active.id}); wait for it or cancel it`, { details: { jobId: active.id } });
}

export { busy as busyInstanceError };
