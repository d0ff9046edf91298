import { archiveKey, type Compression, indexKey } from '../domain/object-layout.ts';
import { CairnError } from '../errors.ts';
import type { Logger } from '../logging/logger.ts';
import { nodeQueueName } from '../queue/contracts.ts';
import type { JobQueues } from '../queue/job-queues.ts';
import { ACTIVE_JOB_STATUSES, type Backup, type Job, type RecordSet, type Records } from '../records/records.ts';
import { nextRunAt } from './cron.ts';
import { firingIds } from './firing-ids.ts';

/**
 * One firing of a schedule (SPEC §9): a scheduled backup of the instance (trigger `schedule`,
 * requested by `system`), created idempotently: the Backup and Job ids are derived from the
 * schedule and the fire time, so a firing delivered twice (two control replicas, a retry, a
 * stalled job run again) creates one backup. When the instance already has a backup (or a restore
 * into it) queued or running, the firing is skipped and the skip recorded on the schedule and as
 * a `schedule_skip` Job, not queued behind it.
 */

export const SYSTEM_ACTOR = 'system';

export interface FiringDeps {
  records: Records;
  queues: Pick<JobQueues, 'enqueueNode'>;
  compression: Compression;
  logger?: Logger;
  now?: () => Date;
  /** Removes the BullMQ scheduler of a schedule found deleted or disabled (a stray), under its lock. */
  removeScheduler?: (scheduleId: string) => Promise<void>;
}

export interface FireOptions {
  /** Default `system`. */
  requestedBy?: string;
  /**
   * A run requested by a user (`POST /schedules/:id/run`): fires a disabled schedule too, and a
   * busy instance is a 409 for the caller instead of a recorded skip.
   */
  manual?: boolean;
}

export type FiringOutcome =
  | { status: 'created'; backup: Backup; job: Job }
  /** This firing had already created its backup (a duplicate delivery); nothing new was written. */
  | { status: 'duplicate'; backup: Backup; job: Job | null }
  | { status: 'skipped'; reason: string; activeJobId: string | null; skipJob: Job; duplicate: boolean }
  | { status: 'ignored'; reason: 'schedule-missing' | 'schedule-disabled' };

/** True for the error fireSchedule throws when its rows were committed but the enqueue failed. */
export function isEnqueueFailure(err: unknown): err is CairnError {
  return err instanceof CairnError && (err.details as { stage?: string } | undefined)?.stage === 'enqueue';
}

/** True for a restore job that only reports what it would change (`POST /v1/backups/:id/restore {dryRun: true}`). */
export function isDryRun(job: Pick<Job, 'type' | 'params'>): boolean {
  return job.type === 'restore' && (job.params as { dryRun?: unknown } | null)?.dryRun === true;
}

/**
 * The queued or running backup of an instance, or restore into it (at most one: SPEC §4); the
 * oldest when there are several. Pass the transaction's records to read under its locks.
 */
export async function activeInstanceJob(records: RecordSet, instanceId: string): Promise<Job | null> {
  // One after the other: inside a transaction they all run on its one connection anyway.
  const found = [
    await records.jobs.findFirst({ type: 'backup', instanceId, status: ACTIVE_JOB_STATUSES }),
    // A restore's dry run only reads: it holds nothing (issue 15).
    ...(await records.jobs.find({ type: 'restore', targetInstanceId: instanceId, status: ACTIVE_JOB_STATUSES })).filter((j) => !isDryRun(j)),
    // A migrate holds its source and its target from its request to its end (its own child jobs
    // are made by the migrate handler, which does not ask).
    await records.jobs.findFirst({ type: 'migrate', instanceId, status: ACTIVE_JOB_STATUSES }),
    await records.jobs.findFirst({ type: 'migrate', targetInstanceId: instanceId, status: ACTIVE_JOB_STATUSES }),
  ].filter((j): j is Job => j !== null);
  return found.reduce<Job | null>((oldest, j) => (oldest === null || j.id < oldest.id ? j : oldest), null);
}

export async function fireSchedule(deps: FiringDeps, scheduleId: string, fireTimeMs: number, options: FireOptions = {}): Promise<FiringOutcome> {
  const now = deps.now ?? (() => new Date());
  const requestedBy = options.requestedBy ?? SYSTEM_ACTOR;
  const ids = firingIds(scheduleId, fireTimeMs);
  const fireTime = new Date(fireTimeMs);

  const outcome = await deps.records.transaction(
    async (tx): Promise<FiringOutcome> => {
      // Lock order everywhere: schedule, then instance (the gateway takes the instance lock alone).
      await tx.lock('schedule', scheduleId);
      const schedule = await tx.schedules.getWithInstance(scheduleId);
      if (!schedule || (!schedule.enabled && !options.manual)) {
        if (options.manual && !schedule) throw new CairnError('not-found', `schedule ${scheduleId} not found`);
        // A scheduler left behind (crash between the row change and Redis): remove it under the lock.
        if (!options.manual) await deps.removeScheduler?.(scheduleId);
        return { status: 'ignored', reason: schedule ? 'schedule-disabled' : 'schedule-missing' };
      }
      await tx.lock('instance', schedule.instanceId);

      const existing = await tx.backups.get(ids.backupId);
      if (existing) return { status: 'duplicate', backup: existing, job: await tx.jobs.get(ids.jobId) };
      const earlierSkip = await tx.jobs.get(ids.skipJobId);
      if (earlierSkip) {
        const result = (earlierSkip.result ?? {}) as { reason?: string; activeJobId?: string | null };
        return { status: 'skipped', reason: result.reason ?? 'skipped', activeJobId: result.activeJobId ?? null, skipJob: earlierSkip, duplicate: true };
      }

      const at = now();
      const next = schedule.enabled ? nextRunAt(schedule.cron, schedule.timezone, new Date(Math.max(fireTimeMs, at.getTime()))) : null;
      const names = schedule.instance.volumes.map((v) => v.name).sort();
      const wanted = schedule.volumes.length ? schedule.volumes : names;
      const selected = wanted.filter((n) => names.includes(n)).sort();

      let skip: { reason: string; activeJobId: string | null; code: 'conflict' | 'no-data' } | null = null;
      if (selected.length === 0) {
        const reason = names.length ? `none of the schedule's volumes (${wanted.join(', ')}) exist on the instance` : 'the instance has no volumes';
        skip = { reason, activeJobId: null, code: 'no-data' };
      } else {
        const active = await activeInstanceJob(tx, schedule.instanceId);
        if (active) skip = { reason: `instance busy: ${active.type} job ${active.id} is ${active.status}`, activeJobId: active.id, code: 'conflict' };
      }
      if (skip) {
        if (options.manual) {
          throw new CairnError(skip.code, `cannot run schedule ${scheduleId} now: ${skip.reason}`, {
            details: skip.activeJobId ? { jobId: skip.activeJobId } : undefined,
          });
        }
        const skipJob = await tx.jobs.create({
          id: ids.skipJobId,
          type: 'schedule_skip',
          status: 'succeeded',
          instanceId: schedule.instanceId,
          params: { scheduleId, fireTime: fireTime.toISOString() },
          result: { reason: skip.reason, activeJobId: skip.activeJobId, scheduleId, fireTime: fireTime.toISOString() },
          requestedBy,
          startedAt: at,
          finishedAt: at,
        });
        await tx.schedules.update(scheduleId, { lastSkippedAt: at, lastSkipReason: skip.reason, nextRunAt: next });
        return { status: 'skipped', reason: skip.reason, activeJobId: skip.activeJobId, skipJob, duplicate: false };
      }

      const instance = schedule.instance;
      const compression = deps.compression;
      const backup = await tx.backups.create({
        id: ids.backupId,
        instanceId: instance.id,
        status: 'pending',
        trigger: 'schedule',
        scheduleId,
        kind: 'full',
        volumes: selected,
        storageKey: archiveKey(instance.id, ids.backupId, compression),
        indexKey: indexKey(instance.id, ids.backupId),
        compression,
        requestedBy,
      });
      const job = await tx.jobs.create({
        id: ids.jobId,
        type: 'backup',
        status: 'queued',
        instanceId: instance.id,
        backupId: backup.id,
        nodeId: instance.nodeId,
        queue: nodeQueueName(instance.nodeId),
        params: { volumes: selected, scheduleId, fireTime: fireTime.toISOString() },
        requestedBy,
      });
      // A late duplicate of an older firing must not move lastFiredAt back.
      await tx.schedules.updateIf(scheduleId, { lastFiredNotAfter: fireTime }, { lastFiredAt: fireTime, lastBackupId: backup.id, nextRunAt: next });
      return { status: 'created', backup, job };
    },
    { timeoutMs: 15_000 },
  );

  if ((outcome.status === 'created' || outcome.status === 'duplicate') && outcome.job?.status === 'queued' && outcome.job.nodeId) {
    // Idempotent (BullMQ job id = Cairn job id): a duplicate firing re-enqueues what a crash may have lost.
    try {
      await deps.queues.enqueueNode(outcome.job.nodeId, 'backup', { jobId: outcome.job.id });
    } catch (err) {
      throw new CairnError('unavailable', `could not enqueue the backup: ${(err as Error).message}`, {
        cause: err,
        permanent: false,
        details: { stage: 'enqueue', backupId: outcome.backup.id, jobId: outcome.job.id },
      });
    }
  }
  const log = deps.logger?.child({ scheduleId, fireTime: fireTime.toISOString() });
  if (outcome.status === 'created') log?.info({ backupId: outcome.backup.id, jobId: outcome.job.id }, 'scheduled backup requested');
  else if (outcome.status === 'skipped' && !outcome.duplicate) log?.info({ reason: outcome.reason }, 'schedule firing skipped');
  else log?.debug({ status: outcome.status }, 'schedule firing had nothing to do');
  return outcome;
}
