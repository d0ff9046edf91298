import { UnrecoverableError, Worker, type Job } from 'bullmq';
import {
  CONTROL_QUEUE,
  CairnError,
  JobQueues,
  SchedulerSync,
  controlJobPayload,
  createRedis,
  transitionJob,
  type Compression,
  type Config,
  type Logger,
  type PrismaClient,
} from '@cairn/core';
import type { ObjectStore } from '@cairn/core/storage/object-store.ts';
import { runCleanup } from './cleanup.handler.ts';
import type { ControlContext, ControlHandler } from './control-context.ts';
import type { SweepOptions } from './orphan-sweep.service.ts';
import { runRetention } from './retention.handler.ts';
import { runScheduleFire } from './schedule-fire.handler.ts';
import { runSweep } from './sweep.handler.ts';

export interface ControlWorkerOptions {
  config: Config;
  prisma: PrismaClient;
  store: ObjectStore;
  logger: Logger;
  /** Grace periods and timeouts of the orphan sweep (defaults: DEFAULT_SWEEP_OPTIONS). */
  sweep?: Partial<SweepOptions>;
  /** Period of the orphan sweep; null: this worker does not schedule it. Default 15 min. */
  sweepEveryMs?: number | null;
  /** Period of retention over every schedule; null: not scheduled by this worker. Default 1 h. */
  retentionEveryMs?: number | null;
  /** How often this worker checks that Redis still holds its schedulers (a flushed Redis). Default 5 min. */
  maintenanceCheckMs?: number;
  concurrency?: number;
  /** Injectable clock for retention and sweeps (tests). */
  clock?: () => Date;
}

const HANDLERS: Record<string, ControlHandler> = {
  cleanup: runCleanup,
  'schedule-fire': runScheduleFire,
  retention: runRetention,
  sweep: runSweep,
};

/** Job scheduler ids of the periodic control jobs (schedules use `schedule-<id>`). */
export const SWEEP_SCHEDULER_ID = 'cairn-sweep';
export const RETENTION_SCHEDULER_ID = 'cairn-retention';
const PERIODIC_JOB_OPTIONS = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 10_000 },
  removeOnComplete: { age: 7 * 24 * 3600, count: 1000 },
  removeOnFail: { age: 30 * 24 * 3600 },
} as const;

/** The control worker (SPEC §2): fleet-wide jobs; any number of replicas. */
export async function startControlWorker(opts: ControlWorkerOptions): Promise<{ close(): Promise<void> }> {
  const logger = opts.logger.child({ role: 'control' });
  const connection = createRedis(opts.config.REDIS_URL);
  // Producer side (enqueue, schedulers) on its own connection, apart from the worker's.
  const producer = createRedis(opts.config.REDIS_URL);
  const queues = new JobQueues(producer, opts.config.QUEUE_PREFIX);
  const schedulers = new SchedulerSync(opts.prisma, queues, { logger });
  const ctx: ControlContext = {
    prisma: opts.prisma,
    store: opts.store,
    logger,
    queues,
    schedulers,
    compression: opts.config.COMPRESSION as Compression,
    sweep: opts.sweep ?? {},
    clock: opts.clock,
  };

  const worker = new Worker(
    CONTROL_QUEUE,
    async (job: Job) => {
      const handler = HANDLERS[job.name];
      if (!handler) throw new UnrecoverableError(`no handler for control job ${job.name}`);
      const payload = controlJobPayload.safeParse(job.data);
      if (!payload.success) throw new UnrecoverableError(`invalid ${job.name} payload: ${payload.error.message}`);
      try {
        return await handler(ctx, payload.data, job);
      } catch (err) {
        const permanent = err instanceof CairnError && err.permanent;
        const last = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
        if (payload.data.jobId && (permanent || last)) {
          const message = err instanceof Error ? err.message : String(err);
          await transitionJob(opts.prisma, payload.data.jobId, ['queued', 'running'], 'failed', { error: message }).catch(() => {});
        }
        if (permanent) throw new UnrecoverableError(`${(err as CairnError).code}: ${(err as Error).message}`);
        throw err;
      }
    },
    { connection, prefix: opts.config.QUEUE_PREFIX, concurrency: opts.concurrency ?? 4 },
  );
  worker.on('error', (err) => logger.warn({ err: err.message }, 'control worker error'));
  worker.on('failed', (job, err) => logger.warn({ jobId: job?.id, name: job?.name, err: err.message }, 'control job failed'));
  // After the worker: firings are idempotent, and a large table should not delay the other jobs.
  const maintenance = new Maintenance(ctx, opts);
  await maintenance.setUp();
  logger.info('control worker started');
  return {
    async close() {
      maintenance.stop();
      await worker.close();
      await queues.close();
      connection.disconnect();
      producer.disconnect();
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
      if (sweepMissing || retentionMissing) {
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
  }
}
