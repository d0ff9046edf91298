import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { CONTROL_JOB_NAMES, CONTROL_QUEUE, SchedulerSync, controlJobPayload, keyringOf, publishJobChange, type Compression } from '@cairn/core';
import type { Runtime } from '@cairn/core/runtime.ts';
import { rangeReadsOf } from '@cairn/core/archive/index.ts';
import { checkHandlers } from '../job-handlers.ts';
import { JobLifecycle } from '../job-lifecycle.ts';
import type { WorkerMetrics } from '../metrics/worker-metrics.ts';
import { runCleanup } from './cleanup.handler.ts';
import { runMigrate } from './migrate.handler.ts';
import type { ControlContext, ControlHandler } from './control-context.ts';
import type { SweepOptions } from './orphan-sweep.service.ts';
import { runRetention } from './retention.handler.ts';
import { runScheduleFire } from './schedule-fire.handler.ts';
import { runSweep } from './sweep.handler.ts';
import { runVerify } from './verify.handler.ts';
import { watchLostJobs } from '../reconcile/lost-job-watch.ts';

export interface ControlWorkerOptions extends Runtime {
  /** Grace periods and timeouts of the orphan sweep (defaults: DEFAULT_SWEEP_OPTIONS). */
  sweep?: Partial<SweepOptions>;
  /** Period of the orphan sweep; null: this worker does not schedule it. Default 15 min. */
  sweepEveryMs?: number | null;
  /** Period of retention over every schedule; null: not scheduled by this worker. Default 1 h. */
  retentionEveryMs?: number | null;
  /** Period of the fleet-wide verify run; null: not scheduled. Default VERIFY_EVERY (empty: null). */
  verifyEveryMs?: number | null;
  /**
   * Period of the check for jobs nobody runs (lost from the queue, or on a dead node), also run
   * after each Redis reconnect; null: neither. Default RECONCILE_EVERY.
   */
  reconcileEveryMs?: number | null;
  /** How often this worker checks that Redis still holds its schedulers (a flushed Redis). Default 5 min. */
  maintenanceCheckMs?: number;
  concurrency?: number;
  /** Injectable clock for retention and sweeps (tests). */
  clock?: () => Date;
  /** Where job durations are counted (the process's worker metrics); none: not counted. */
  metrics?: WorkerMetrics;
}

const HANDLERS: Record<string, ControlHandler> = checkHandlers('control', CONTROL_JOB_NAMES, {
  cleanup: runCleanup,
  'schedule-fire': runScheduleFire,
  retention: runRetention,
  sweep: runSweep,
  migrate: runMigrate,
  verify: runVerify,
});

/** Job scheduler ids of the periodic control jobs (schedules use `schedule-<id>`). */
export const SWEEP_SCHEDULER_ID = 'cairn-sweep';
export const RETENTION_SCHEDULER_ID = 'cairn-retention';
export const VERIFY_SCHEDULER_ID = 'cairn-verify';
const PERIODIC_JOB_OPTIONS = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 10_000 },
  removeOnComplete: { age: 7 * 24 * 3600, count: 1000 },
  removeOnFail: { age: 30 * 24 * 3600 },
} as const;

/** The control worker (SPEC §2): fleet-wide jobs, each through the job lifecycle; any number of replicas. */
export async function startControlWorker(opts: ControlWorkerOptions): Promise<{ close(): Promise<void> }> {
  const logger = opts.logger.child({ role: 'control' });
  const schedulers = new SchedulerSync(opts.records, opts.queues, { logger });
  const ctx: ControlContext = {
    records: opts.records,
    store: opts.store,
    logger,
    queues: opts.queues,
    schedulers,
    compression: opts.config.COMPRESSION as Compression,
    fullBackupEvery: opts.config.FULL_BACKUP_EVERY,
    sweep: opts.sweep ?? {},
    clock: opts.clock,
    verify: { level: opts.config.VERIFY_LEVEL, bytesBudget: opts.config.VERIFY_BYTES_BUDGET },
    keyring: () => keyringOf(opts.config),
    reads: { storeThread: opts.config.STORE_THREAD ?? true, rangeReads: rangeReadsOf(opts.config) },
  };
  const lifecycle = new JobLifecycle({
    jobs: opts.records.jobs,
    logger,
    observer: opts.metrics,
    outageToleranceMs: opts.config.DB_OUTAGE_TOLERANCE,
    onChange: (notice) => void publishJobChange(opts.redis, opts.config.QUEUE_PREFIX, notice),
  });

  const worker = new Worker(
    CONTROL_QUEUE,
    async (job: Job, _token?: string, signal?: AbortSignal) => {
      const handler = HANDLERS[job.name];
      if (!handler) throw new UnrecoverableError(`no handler for control job ${job.name}`);
      const payload = controlJobPayload.safeParse(job.data);
      if (!payload.success) throw new UnrecoverableError(`invalid ${job.name} payload: ${payload.error.message}`);
      const { record, work } = handler(ctx, payload.data, job);
      const outcome = await lifecycle.execute(
        { name: job.name, record, attempt: job.attemptsMade + 1, attempts: job.opts.attempts ?? 1, signal: signal ?? new AbortController().signal },
        work,
      );
      return outcome.status === 'succeeded' ? (outcome.returnValue ?? outcome.result) : outcome;
    },
    { connection: opts.connection('control-worker'), prefix: opts.config.QUEUE_PREFIX, concurrency: opts.concurrency ?? 4 },
  );
  worker.on('error', (err) => logger.warn({ err: err.message }, 'control worker error'));
  worker.on('failed', (job, err) => logger.warn({ jobId: job?.id, name: job?.name, err: err.message }, 'control job failed'));
  // After the worker: firings are idempotent, and a large table should not delay the other jobs.
  const maintenance = new Maintenance(ctx, opts);
  await maintenance.setUp();
  const reconcileEvery = opts.reconcileEveryMs === undefined ? opts.config.RECONCILE_EVERY : opts.reconcileEveryMs;
  const lostJobs =
    reconcileEvery === null
      ? null
      : watchLostJobs(
          { records: opts.records, store: opts.store, queues: opts.queues, logger },
          {
            everyMs: reconcileEvery,
            redis: opts.redis,
            lostJobGraceMs: opts.config.LOST_JOB_GRACE,
            nodeDeadMs: opts.config.NODE_DEAD_AFTER,
          },
        );
  logger.info('control worker started');
  return {
    async close() {
      lostJobs?.stop();
      maintenance.stop();
      await worker.close();
    },
  };
}

/**
 * At start (and again whenever Redis turns out to have lost them): reconcile every schedule's
 * job scheduler with the table and (re)create the periodic sweep and retention schedulers. A
 * failure (Redis or Postgres down) is retried in the background; it never stops the worker.
 */
class Maintenance {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly ctx: ControlContext,
    private readonly opts: ControlWorkerOptions,
  ) {}

  async setUp(): Promise<void> {
    try {
      await this.ctx.schedulers.reconcile();
      await this.upsertPeriodic();
      this.schedule(this.opts.maintenanceCheckMs ?? 5 * 60_000, () => this.check());
    } catch (err) {
      this.ctx.logger.warn({ err: (err as Error).message }, 'could not set up schedulers; retrying in 30 s');
      this.schedule(30_000, () => this.setUp());
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(ms: number, fn: () => Promise<void>): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void fn(), ms);
    this.timer.unref();
  }

  /** The periodic schedulers vanish with a flushed Redis; so did every schedule's: rebuild all. */
  private async check(): Promise<void> {
    try {
      const control = this.ctx.queues.queue(CONTROL_QUEUE);
      const sweepMissing = this.opts.sweepEveryMs !== null && !(await control.getJobScheduler(SWEEP_SCHEDULER_ID));
      const retentionMissing = this.opts.retentionEveryMs !== null && !(await control.getJobScheduler(RETENTION_SCHEDULER_ID));
      const verifyMissing = this.verifyEvery() !== null && !(await control.getJobScheduler(VERIFY_SCHEDULER_ID));
      if (sweepMissing || retentionMissing || verifyMissing) {
        this.ctx.logger.warn('periodic schedulers missing from Redis; reconciling every schedule');
        return await this.setUp();
      }
    } catch (err) {
      this.ctx.logger.warn({ err: (err as Error).message }, 'scheduler check failed');
    }
    this.schedule(this.opts.maintenanceCheckMs ?? 5 * 60_000, () => this.check());
  }

  private async upsertPeriodic(): Promise<void> {
    const control = this.ctx.queues.queue(CONTROL_QUEUE);
    const sweepEvery = this.opts.sweepEveryMs === undefined ? 15 * 60_000 : this.opts.sweepEveryMs;
    const retentionEvery = this.opts.retentionEveryMs === undefined ? 3600_000 : this.opts.retentionEveryMs;
    if (sweepEvery !== null)
      await control.upsertJobScheduler(SWEEP_SCHEDULER_ID, { every: sweepEvery }, { name: 'sweep', data: {}, opts: PERIODIC_JOB_OPTIONS });
    if (retentionEvery !== null)
      await control.upsertJobScheduler(RETENTION_SCHEDULER_ID, { every: retentionEvery }, { name: 'retention', data: {}, opts: PERIODIC_JOB_OPTIONS });
    // The fleet-wide verify run (issue 14): off (and its scheduler removed) when VERIFY_EVERY is empty.
    const verifyEvery = this.verifyEvery();
    if (verifyEvery !== null)
      await control.upsertJobScheduler(VERIFY_SCHEDULER_ID, { every: verifyEvery }, { name: 'verify', data: {}, opts: PERIODIC_JOB_OPTIONS });
    else if (this.opts.verifyEveryMs === undefined) await control.removeJobScheduler(VERIFY_SCHEDULER_ID);
  }

  private verifyEvery(): number | null {
    return this.opts.verifyEveryMs === undefined ? (this.opts.config.VERIFY_EVERY ?? null) : this.opts.verifyEveryMs;
  }
}
