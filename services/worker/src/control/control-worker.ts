import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { CONTROL_QUEUE, CairnError, controlJobPayload, createRedis, transitionJob, type Config, type Logger, type PrismaClient } from '@cairn/core';
import type { ObjectStore } from '@cairn/core/storage/object-store.ts';
import { runCleanup, type CleanupContext } from './cleanup.handler.ts';

export interface ControlWorkerOptions {
  config: Config;
  prisma: PrismaClient;
  store: ObjectStore;
  logger: Logger;
}

type ControlHandler = (ctx: CleanupContext, payload: { backupId?: string; jobId?: string }) => Promise<unknown>;
const HANDLERS: Record<string, ControlHandler> = { cleanup: runCleanup };

/** The control worker (SPEC §2): fleet-wide jobs; any number of replicas. */
export async function startControlWorker(opts: ControlWorkerOptions): Promise<{ close(): Promise<void> }> {
  const logger = opts.logger.child({ role: 'control' });
  const ctx: CleanupContext = { prisma: opts.prisma, store: opts.store, logger };
  const connection = createRedis(opts.config.REDIS_URL);
  const worker = new Worker(
    CONTROL_QUEUE,
    async (job: Job) => {
      const handler = HANDLERS[job.name];
      if (!handler) throw new UnrecoverableError(`no handler for control job ${job.name}`);
      const payload = controlJobPayload.safeParse(job.data);
      if (!payload.success) throw new UnrecoverableError(`invalid ${job.name} payload: ${payload.error.message}`);
      try {
        return await handler(ctx, payload.data);
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
    { connection, prefix: opts.config.QUEUE_PREFIX, concurrency: 4 },
  );
  worker.on('error', (err) => logger.warn({ err: err.message }, 'control worker error'));
  worker.on('failed', (job, err) => logger.warn({ jobId: job?.id, name: job?.name, err: err.message }, 'control job failed'));
  logger.info('control worker started');
  return {
    async close() {
      await worker.close();
      connection.disconnect();
    },
  };
}
