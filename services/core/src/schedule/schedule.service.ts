import type { CreateScheduleBody, DeletedSchedule, RetentionPreview, ScheduleList, ScheduleView, UpdateScheduleBody } from '../api/schedules.schemas.ts';
import type { Config } from '../config/config.ts';
import type { Compression } from '../domain/object-layout.ts';
import { CairnError } from '../errors.ts';
import { newId } from '../ids.ts';
import type { Logger } from '../logging/logger.ts';
import type { JobQueues } from '../queue/job-queues.ts';
import type { Backup, Job, RecordSet, Records, Schedule } from '../records/records.ts';
import { assertCron, assertTimeZone } from './cron.ts';
import { failUnqueued } from '../domain/retry-write.ts';
import { enqueueRetention, policyOf, previewRetention } from './retention.service.ts';
import { retentionPolicyProblems, type RetentionPolicy } from './retention.ts';
import { firingIds } from './firing-ids.ts';
import { fireSchedule, isEnqueueFailure } from './schedule-firing.ts';
import { SchedulerSync } from './scheduler-sync.ts';

/**
 * Schedules of an instance (SPEC §9, §11): create, list, show, change, delete, run now, and a
 * retention dry run. The HTTP routes call this; every change keeps the BullMQ job scheduler in
 * sync inside the same transaction (see SchedulerSync).
 */

/** The queues: JobQueues, or the gateway's QueuePort (which bounds calls with a timeout). */
export type ScheduleQueues = Pick<JobQueues, 'queue' | 'enqueueNode' | 'enqueueControl'>;

export interface ScheduleServiceOptions {
  records: Records;
  queues: ScheduleQueues;
  config: Pick<Config, 'COMPRESSION'>;
  logger: Logger;
  now?: () => Date;
  /** Accept 6-field (seconds) expressions: internal use and tests only; the API allows 5 fields. */
  allowSeconds?: boolean;
  /** Bound on each Redis call (→ 503), default 5 s. */
  redisTimeoutMs?: number;
}

/** Tenant confinement: members pass their tenant id, admins and the system nothing. */
export interface ScheduleScope {
  tenantId?: string;
}

/** Input of create: the API body (timezone may be left out by internal callers: UTC). */
export type CreateScheduleInput = Omit<CreateScheduleBody, 'timezone'> & { timezone?: string };
export type UpdateScheduleInput = UpdateScheduleBody;

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

export function scheduleView(s: Schedule): ScheduleView {
  return {
    id: s.id,
    instanceId: s.instanceId,
    cron: s.cron,
    timezone: s.timezone,
    volumes: s.volumes.length ? s.volumes : null,
    retention: policyOf(s),
    enabled: s.enabled,
    lastFiredAt: iso(s.lastFiredAt),
    lastBackupId: s.lastBackupId,
    lastSkippedAt: iso(s.lastSkippedAt),
    lastSkipReason: s.lastSkipReason,
    nextRunAt: iso(s.nextRunAt),
    createdAt: s.createdAt.toISOString(),
    updatedAt: s.updatedAt.toISOString(),
  };
}

function validation(details: { path: string; message: string }[]): CairnError {
  const shown = details.map((d) => (d.path ? `${d.path}: ${d.message}` : d.message)).join('; ');
  return new CairnError('validation', `invalid schedule: ${shown}`, { details });
}

export class ScheduleService {
  private readonly records: Records;
  private readonly queues: ScheduleQueues;
  private readonly compression: Compression;
  private readonly logger: Logger;
  private readonly now: () => Date;
  private readonly allowSeconds: boolean;
  private readonly redisTimeoutMs: number;
  readonly schedulers: SchedulerSync;

  constructor(options: ScheduleServiceOptions) {
    this.records = options.records;
    this.queues = options.queues;
    this.compression = options.config.COMPRESSION as Compression;
    this.logger = options.logger;
    this.now = options.now ?? (() => new Date());
    this.allowSeconds = options.allowSeconds ?? false;
    this.redisTimeoutMs = options.redisTimeoutMs ?? 5000;
    this.schedulers = new SchedulerSync(this.records, this.queues, { redisTimeoutMs: this.redisTimeoutMs, logger: this.logger, now: this.now });
  }

  private async findInstance(instanceId: string, scope: ScheduleScope) {
    const instance = await this.records.instances.findFirst({ id: instanceId, tenantId: scope.tenantId });
    if (!instance) throw new CairnError('not-found', `instance ${instanceId} not found`);
    return instance;
  }

  private async findSchedule(id: string, scope: ScheduleScope, records: RecordSet = this.records): Promise<Schedule> {
    const row = await records.schedules.findFirst({ id, tenantId: scope.tenantId });
    if (!row) throw new CairnError('not-found', `schedule ${id} not found`);
    return row;
  }

  /** Checks cron, timezone, retention and volumes; returns the values to store. */
  private checkFields(
    input: { cron?: string; timezone?: string; retention?: RetentionPolicy; volumes?: string[] | null },
    instanceVolumes: string[],
  ): { cron?: string; timezone?: string; retention?: RetentionPolicy; volumes?: string[] } {
    const problems: { path: string; message: string }[] = [];
    const out: { cron?: string; timezone?: string; retention?: RetentionPolicy; volumes?: string[] } = {};
    if (input.cron !== undefined) {
      try {
        out.cron = assertCron(input.cron, { allowSeconds: this.allowSeconds }).source;
      } catch (err) {
        problems.push(...((err as CairnError).details as { path: string; message: string }[]).map(({ path, message }) => ({ path, message })));
      }
    }
    if (input.timezone !== undefined) {
      try {
        out.timezone = assertTimeZone(input.timezone);
      } catch (err) {
        problems.push(...((err as CairnError).details as { path: string; message: string }[]));
      }
    }
    if (input.retention !== undefined) {
      for (const p of retentionPolicyProblems(input.retention)) problems.push({ path: p.path ? `retention.${p.path}` : 'retention', message: p.message });
      out.retention = Object.fromEntries(Object.entries(input.retention).filter(([, v]) => v !== undefined)) as RetentionPolicy;
    }
    if (input.volumes !== undefined) {
      const names = input.volumes ?? [];
      names.forEach((n, i) => {
        if (!instanceVolumes.includes(n))
          problems.push({ path: `volumes.${i}`, message: `the instance has no volume ${n} (it has ${instanceVolumes.join(', ') || 'none'})` });
        else if (names.indexOf(n) !== i) problems.push({ path: `volumes.${i}`, message: `duplicate volume ${n}` });
      });
      out.volumes = [...names].sort();
    }
    if (problems.length) throw validation(problems);
    return out;
  }

  async create(instanceId: string, input: CreateScheduleInput, scope: ScheduleScope = {}): Promise<ScheduleView> {
    const instance = await this.findInstance(instanceId, scope);
    const fields = this.checkFields(
      { cron: input.cron, timezone: input.timezone ?? 'UTC', retention: input.retention, volumes: input.volumes },
      instance.volumes.map((v) => v.name),
    );
    const id = newId();
    const row = await this.records.transaction(
      async (tx) => {
        await tx.lock('schedule', id);
        const created = await tx.schedules.create({
          id,
          instanceId: instance.id,
          cron: fields.cron!,
          timezone: fields.timezone!,
          volumes: fields.volumes ?? [],
          retention: fields.retention!,
          enabled: input.enabled ?? true,
        });
        const nextRunAt = await this.schedulers.apply(created);
        return tx.schedules.update(id, { nextRunAt });
      },
      { timeoutMs: this.redisTimeoutMs * 3 },
    );
    this.logger.info({ scheduleId: id, instanceId: instance.id, cron: row.cron, timezone: row.timezone, enabled: row.enabled }, 'schedule created');
    return scheduleView(row);
  }

  async list(instanceId: string, query: { cursor?: string; limit?: number } = {}, scope: ScheduleScope = {}): Promise<ScheduleList> {
    await this.findInstance(instanceId, scope);
    const limit = query.limit ?? 50;
    const rows = await this.records.schedules.find({ instanceId }, { after: query.cursor, take: limit + 1 });
    const page = rows.slice(0, limit);
    return { items: page.map(scheduleView), nextCursor: rows.length > limit ? page[page.length - 1]!.id : null };
  }

  /** Every schedule in the scope (an admin's fleet view, a member's tenant), oldest first, optionally of one instance or node. */
  async listAll(
    query: { instance?: string; node?: string; enabled?: boolean; cursor?: string; limit?: number } = {},
    scope: ScheduleScope = {},
  ): Promise<ScheduleList> {
    const limit = query.limit ?? 50;
    const rows = await this.records.schedules.find(
      { tenantId: scope.tenantId, instanceId: query.instance, nodeId: query.node, enabled: query.enabled },
      { after: query.cursor, take: limit + 1 },
    );
    const page = rows.slice(0, limit);
    return { items: page.map(scheduleView), nextCursor: rows.length > limit ? page[page.length - 1]!.id : null };
  }

  async get(id: string, scope: ScheduleScope = {}): Promise<ScheduleView> {
    return scheduleView(await this.findSchedule(id, scope));
  }

  /**
   * Changes a schedule; its scheduler follows (re-created for a new cron/timezone, removed while
   * disabled). A new retention policy is applied right away by a retention job.
   */
  async update(id: string, input: UpdateScheduleInput, scope: ScheduleScope = {}): Promise<ScheduleView> {
    const existing = await this.findSchedule(id, scope);
    const instance = await this.findInstance(existing.instanceId, {});
    const fields = this.checkFields(
      input,
      instance.volumes.map((v) => v.name),
    );
    const row = await this.records.transaction(
      async (tx) => {
        await tx.lock('schedule', id);
        await this.findSchedule(id, scope, tx);
        const updated = await tx.schedules.update(id, {
          cron: fields.cron,
          timezone: fields.timezone,
          retention: fields.retention,
          volumes: fields.volumes,
          enabled: input.enabled,
        });
        const nextRunAt = await this.schedulers.apply(updated);
        return tx.schedules.update(id, { nextRunAt });
      },
      { timeoutMs: this.redisTimeoutMs * 3 },
    );
    if (fields.retention !== undefined) await enqueueRetention(this.queues, id);
    this.logger.info({ scheduleId: id, changed: Object.keys(input) }, 'schedule updated');
    return scheduleView(row);
  }

  /** Deletes the schedule and its scheduler; its backups stay (no longer expired by anything). */
  async remove(id: string, scope: ScheduleScope = {}): Promise<DeletedSchedule> {
    await this.findSchedule(id, scope);
    const keptBackups = await this.records.transaction(
      async (tx) => {
        await tx.lock('schedule', id);
        await this.findSchedule(id, scope, tx);
        // Nothing applies this schedule's retention any more: expiresAt would be a false promise.
        await tx.backups.updateWhere({ scheduleId: id, expires: true }, { expiresAt: null });
        const kept = await tx.backups.count({ scheduleId: id, statusNot: 'deleted' });
        await tx.schedules.delete(id); // backups keep their rows (scheduleId set null)
        await this.schedulers.removeScheduler(id);
        return kept;
      },
      { timeoutMs: this.redisTimeoutMs * 3 },
    );
    this.logger.info({ scheduleId: id, keptBackups }, 'schedule deleted');
    return { id, keptBackups };
  }

  /**
   * Runs the schedule now (`POST /schedules/:id/run`): a scheduled backup like a firing, but a
   * busy instance answers 409 instead of recording a skip. If it cannot be enqueued the records
   * are marked failed and the caller gets 503, as for a manual backup.
   */
  async runNow(id: string, requestedBy: string, scope: ScheduleScope = {}): Promise<{ backup: Backup; job: Job }> {
    await this.findSchedule(id, scope);
    const fireTime = this.now().getTime();
    let outcome: Awaited<ReturnType<typeof fireSchedule>>;
    try {
      outcome = await fireSchedule(
        { records: this.records, queues: this.queues, compression: this.compression, logger: this.logger, now: this.now },
        id,
        fireTime,
        { manual: true, requestedBy },
      );
    } catch (err) {
      if (!isEnqueueFailure(err)) throw err;
      // The rows were committed but nothing will ever run them: fail them, the caller gets 503.
      await this.failUnqueuedFiring(id, fireTime, err);
      throw err;
    }
    if (outcome.status === 'created' || outcome.status === 'duplicate') {
      const job = outcome.job ?? (await this.records.jobs.findFirst({ backupId: outcome.backup.id, type: 'backup' }));
      if (!job) throw new CairnError('internal', `backup ${outcome.backup.id} has no job`);
      return { backup: outcome.backup, job };
    }
    // A manual run never records a skip (fireSchedule throws instead); this is a schedule that vanished.
    throw new CairnError('not-found', `schedule ${id} not found`);
  }

  /**
   * Marks the rows of a firing whose enqueue failed `failed` (a queued job nobody enqueued would
   * keep the instance busy until the sweep). Each write is tried a few times; one that still fails
   * is logged with the job id, its own error and the enqueue error, and the caller still gets the
   * enqueue error (the sweep closes the job later).
   */
  private async failUnqueuedFiring(scheduleId: string, fireTime: number, cause: CairnError): Promise<void> {
    const { backupId, jobId } = firingIds(scheduleId, fireTime);
    await failUnqueued(this.records, this.logger, { jobId, backupId, context: { scheduleId } }, cause.message);
  }

  /** Dry run of retention: what `policy` (default: the schedule's own) would keep and drop now. */
  async previewRetention(id: string, policy?: RetentionPolicy, scope: ScheduleScope = {}): Promise<RetentionPreview> {
    const schedule = await this.findSchedule(id, scope);
    if (policy) {
      const problems = retentionPolicyProblems(policy);
      if (problems.length) throw validation(problems.map((p) => ({ path: p.path ? `retention.${p.path}` : 'retention', message: p.message })));
    }
    const r = await previewRetention(this.records, schedule, policy, this.now);
    return {
      scheduleId: r.scheduleId,
      timezone: r.timezone,
      at: r.at.toISOString(),
      keep: r.plan.keep.map((k) => ({ backupId: k.id, createdAt: k.createdAt.toISOString(), reasons: k.reasons, expiresAt: iso(k.expiresAt) })),
      drop: r.plan.drop.map((d) => ({ backupId: d.id, createdAt: d.createdAt.toISOString(), reason: d.reason })),
      untouched: r.untouched,
      pinned: r.pinned,
    };
  }
}
