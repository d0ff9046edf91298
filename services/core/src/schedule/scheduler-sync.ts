import type { Queue } from 'bullmq';
import { CairnError } from '../errors.ts';
import type { Logger } from '../logging/logger.ts';
import { CONTROL_QUEUE } from '../queue/contracts.ts';
import type { Records, Schedule } from '../records/records.ts';
import { assertCron, nextRunAt } from './cron.ts';
import { scheduleIdOfScheduler, schedulerIdOf } from './firing-ids.ts';

/**
 * Keeps one BullMQ job scheduler per enabled schedule on the `control` queue (SPEC §9): job name
 * `schedule-fire`, data `{scheduleId}`. Disabled or deleted schedules have none (BullMQ has no
 * per-scheduler pause). The table is the truth; `reconcile` rebuilds Redis from it at start, so a
 * lost Redis does not lose schedules.
 *
 * Every change to one schedule runs under that schedule's advisory lock, inside the transaction
 * that writes its row: the scheduler operation and the row commit or fail together, and a
 * reconcile or firing running at the same time sees either the old or the new state, never half.
 */

export const SCHEDULE_FIRE_JOB = 'schedule-fire';

/** Template options of firing jobs: retried on transient errors, kept a while for Bull Board. */
const FIRE_JOB_OPTIONS = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 2000 },
  removeOnComplete: { age: 24 * 3600, count: 5000 },
  removeOnFail: { age: 7 * 24 * 3600 },
} as const;

export interface SchedulerQueues {
  queue(name: string): Queue;
}

export interface SchedulerSyncOptions {
  /** A Redis call slower than this fails with CairnError('unavailable') (→ 503), default 5 s. */
  redisTimeoutMs?: number;
  logger?: Logger;
  now?: () => Date;
}

export type SyncOutcome = 'upserted' | 'removed';

export interface ReconcileReport {
  upserted: number;
  removed: number;
  failed: { scheduleId: string; error: string }[];
}

export class SchedulerSync {
  private readonly redisTimeoutMs: number;
  private readonly now: () => Date;

  constructor(
    private readonly records: Records,
    private readonly queues: SchedulerQueues,
    private readonly options: SchedulerSyncOptions = {},
  ) {
    this.redisTimeoutMs = options.redisTimeoutMs ?? 5000;
    this.now = options.now ?? (() => new Date());
  }

  private get control(): Queue {
    return this.queues.queue(CONTROL_QUEUE);
  }

  /**
   * Makes Redis match `schedule` (upsert when enabled, remove otherwise) and returns the next run
   * time BullMQ holds (null when disabled). Call inside the transaction that wrote the row.
   */
  async apply(schedule: Pick<Schedule, 'id' | 'cron' | 'timezone' | 'enabled'>): Promise<Date | null> {
    if (!schedule.enabled) {
      await this.removeScheduler(schedule.id);
      return null;
    }
    // Stored expressions were validated on write; seconds fields are written only by tests.
    const { pattern } = assertCron(schedule.cron, { allowSeconds: true });
    const id = schedulerIdOf(schedule.id);
    await this.redis(`upsert scheduler of schedule ${schedule.id}`, () =>
      this.control.upsertJobScheduler(
        id,
        { pattern, tz: schedule.timezone },
        { name: SCHEDULE_FIRE_JOB, data: { scheduleId: schedule.id }, opts: FIRE_JOB_OPTIONS },
      ),
    );
    const scheduler = await this.redis(`read scheduler of schedule ${schedule.id}`, () => this.control.getJobScheduler(id));
    return typeof scheduler?.next === 'number' ? new Date(scheduler.next) : nextRunAt(pattern, schedule.timezone, this.now());
  }

  async removeScheduler(scheduleId: string): Promise<void> {
    await this.redis(`remove scheduler of schedule ${scheduleId}`, () => this.control.removeJobScheduler(schedulerIdOf(scheduleId)));
  }

  /** Whether Redis holds a scheduler for the schedule (tests, diagnostics). */
  async exists(scheduleId: string): Promise<boolean> {
    return Boolean(await this.redis('read scheduler', () => this.control.getJobScheduler(schedulerIdOf(scheduleId))));
  }

  /** Ids of the schedules that have a scheduler in Redis. */
  async scheduledIds(): Promise<string[]> {
    const schedulers = await this.redis('list schedulers', () => this.control.getJobSchedulers(0, -1, true));
    return schedulers.map((s) => scheduleIdOfScheduler(s.key)).filter((id): id is string => id !== null);
  }

  /**
   * Brings one schedule's scheduler in line with its row, under the schedule's lock: upserted when
   * the row exists and is enabled, removed otherwise; `nextRunAt` updated.
   */
  async syncOne(scheduleId: string): Promise<SyncOutcome> {
    return this.records.transaction(
      async (tx) => {
        await tx.lock('schedule', scheduleId);
        const row = await tx.schedules.get(scheduleId);
        if (!row?.enabled) {
          await this.removeScheduler(scheduleId);
          if (row?.nextRunAt) await tx.schedules.update(scheduleId, { nextRunAt: null });
          return 'removed';
        }
        const next = await this.apply(row);
        if (next?.getTime() !== row.nextRunAt?.getTime()) await tx.schedules.update(scheduleId, { nextRunAt: next });
        return 'upserted';
      },
      { timeoutMs: this.redisTimeoutMs * 3 },
    );
  }

  /**
   * Rebuilds every scheduler from the table (gateway and control worker start): each enabled
   * schedule is upserted, each scheduler without an enabled schedule removed. Safe to run in
   * several processes at once and while schedules change.
   */
  async reconcile(): Promise<ReconcileReport> {
    const ids = new Set<string>();
    let cursor: string | undefined;
    for (;;) {
      const page = await this.records.schedules.find({ enabled: true }, { after: cursor, take: 500 });
      for (const s of page) ids.add(s.id);
      if (page.length < 500) break;
      cursor = page[page.length - 1]!.id;
    }
    for (const id of await this.scheduledIds()) ids.add(id);
    const report: ReconcileReport = { upserted: 0, removed: 0, failed: [] };
    for (const id of ids) {
      try {
        if ((await this.syncOne(id)) === 'upserted') report.upserted++;
        else report.removed++;
      } catch (err) {
        report.failed.push({ scheduleId: id, error: (err as Error).message });
      }
    }
    this.options.logger?.info({ ...report, failed: report.failed.length }, 'schedulers reconciled with the schedule table');
    return report;
  }

  /** Redis commands queue while Redis is down (BullMQ needs that); bound them so callers get a 503. */
  private async redis<T>(what: string, op: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        op(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new CairnError('unavailable', `redis unavailable: ${what} got no answer within ${this.redisTimeoutMs} ms`)),
            this.redisTimeoutMs,
          );
        }),
      ]);
    } catch (err) {
      if (err instanceof CairnError) throw err;
      throw new CairnError('unavailable', `redis unavailable: ${what} failed: ${(err as Error).message}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Convenience for composition roots: reconcile all schedulers with the table. */
export async function reconcileSchedulers(records: Records, queues: SchedulerQueues, options: SchedulerSyncOptions = {}): Promise<ReconcileReport> {
  return new SchedulerSync(records, queues, options).reconcile();
}
