import { UnrecoverableError, Worker, type Job } from 'bullmq';
import {
  CairnError,
  JobQueues,
  backupPrefix,
  ProgressThrottle,
  createRedis,
  nodeJobPayload,
  nodeQueueName,
  transitionBackup,
  transitionJob,
  type Config,
  type Logger,
  type PrismaClient,
} from '@cairn/core';
import type { ObjectStore } from '@cairn/core/storage/object-store.ts';
import { listenForCancels, type CancelListener } from '../cancel-listener.ts';
import { recordSweep } from '../control/orphan-sweep.service.ts';
import { LockLostError } from './job-outcome.ts';
import { runBackup } from './backup.pipeline.ts';
import { startHeartbeat } from './heartbeat.ts';
import type { JobRun, NodeContext } from './node-context.ts';
import { runRestore } from './restore.pipeline.ts';
import { recoverLeftovers } from './staging.ts';

export const WORKER_VERSION = '0.1.0';

/** A queued Job row is judged lost from the queue only once it is older than this. */
const LOST_JOB_GRACE_MS = 60_000;

export interface NodeWorkerOptions {
  config: Config;
  prisma: PrismaClient;
  store: ObjectStore;
  logger: Logger;
  nodeId?: string;
  volumeRoots?: string[];
  /** BullMQ lock/stall timings; shorter in tests so a killed worker's job is picked up fast. */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
}

export interface RunningWorker {
  nodeId: string;
  close(): Promise<void>;
}

const HANDLERS = { backup: runBackup, restore: runRestore } as const;

/**
 * A node worker (SPEC §2): consumes only `node.<id>`, heartbeats, cleans its own leftovers at
 * start and marks its jobs that BullMQ no longer knows `interrupted`.
 */
export async function startNodeWorker(opts: NodeWorkerOptions): Promise<RunningWorker> {
  const { config, prisma, store } = opts;
  const nodeId = opts.nodeId ?? config.NODE_ID;
  const volumeRoots = opts.volumeRoots ?? config.VOLUME_ROOTS;
  const logger = opts.logger.child({ nodeId });
  const queueName = nodeQueueName(nodeId);
  const stopHeartbeat = await startHeartbeat({ prisma, nodeId, volumeRoots, version: WORKER_VERSION, concurrency: config.WORKER_CONCURRENCY, logger });
  const connection = createRedis(config.REDIS_URL);
  const producer = createRedis(config.REDIS_URL);
  const queues = new JobQueues(producer, config.QUEUE_PREFIX);
  const ctx: NodeContext = { nodeId, volumeRoots, prisma, store, logger, config, queues };
  let worker: Worker | undefined;
  let cancels: CancelListener | undefined;
  const release = async () => {
    stopHeartbeat();
    // The worker first: jobs still running while it drains can still be cancelled.
    await worker?.close();
    await cancels?.close();
    await queues.close();
    connection.disconnect();
    producer.disconnect();
  };
  try {
    await reconcileAtStart(ctx, connection, config.QUEUE_PREFIX, queueName);
    const w = new Worker(
      queueName,
      (job: Job, _token: string | undefined, signal?: AbortSignal) => {
        const aborted = signal ?? new AbortController().signal;
        // A cancel that came before this processor was registered is applied now.
        const early = cancels?.takeEarly(job.id ?? '');
        if (early !== undefined && !aborted.aborted) w.cancelJob(job.id!, early);
        return processJob(ctx, job, aborted);
      },
      {
        connection,
        prefix: config.QUEUE_PREFIX,
        concurrency: config.WORKER_CONCURRENCY,
        lockDuration: opts.lockDurationMs ?? 30_000,
        stalledInterval: opts.stalledIntervalMs ?? 30_000,
        maxStalledCount: 3,
        autorun: false,
      },
    );
    worker = w;
    w.on('error', (err) => logger.warn({ err: err.message }, 'worker error'));
    w.on('failed', (job, err) => logger.warn({ jobId: job?.id, err: err.message }, 'job failed'));
    // Another worker may be handed a job whose lock we lost: stop our run of it.
    w.on('lockRenewalFailed', (jobIds: string[]) => {
      for (const id of jobIds)
        if (w.cancelJob(id, new LockLostError(id) as unknown as string)) logger.warn({ jobId: id }, 'lost the job lock; stopping this run');
    });
    cancels = await listenForCancels(config.REDIS_URL, config.QUEUE_PREFIX, [w], logger);
    void w.run();
  } catch (err) {
    await release().catch(() => {});
    throw err;
  }
  logger.info({ queue: queueName, volumeRoots }, 'node worker started');

  return {
    nodeId,
    close: release,
  };
}

/** The BullMQ processor: validates the payload, runs one pipeline, maps errors (thin by design). */
async function processJob(ctx: NodeContext, job: Job, signal: AbortSignal): Promise<unknown> {
  const handler = HANDLERS[job.name as keyof typeof HANDLERS];
  if (!handler) throw new UnrecoverableError(`no handler for job ${job.name}`);
  const payload = nodeJobPayload.safeParse(job.data);
  if (!payload.success) throw new UnrecoverableError(`invalid ${job.name} payload: ${payload.error.message}`);
  const jobId = payload.data.jobId;
  const log = ctx.logger.child({ jobId, job: job.name });
  const throttle = new ProgressThrottle(async (p) => {
    await job.updateProgress(p as unknown as object);
    await ctx.prisma.job.update({ where: { id: jobId }, data: { progress: p as unknown as object } });
  });
  const attempts = job.opts.attempts ?? 1;
  const run: JobRun = {
    jobId,
    signal,
    attempt: job.attemptsMade + 1,
    lastAttempt: job.attemptsMade + 1 >= attempts,
    log,
    progress: (stage, counters) => (counters ? throttle.update(stage, counters) : throttle.stage(stage)),
  };
  log.info({ attempt: run.attempt }, 'job started');
  try {
    const result = await handler(ctx, run);
    log.info({ result }, 'job finished');
    return result;
  } catch (err) {
    log.warn({ err: err instanceof Error ? err.message : String(err) }, 'job ended with an error');
    if (err instanceof CairnError && err.permanent) throw new UnrecoverableError(`${err.code}: ${err.message}`);
    throw err;
  } finally {
    throttle.flush();
  }
}

/**
 * At start: restores or removes what interrupted restores left beside this node's volumes, and
 * marks this node's running/queued Jobs whose BullMQ job is gone `interrupted` (their Backups
 * `failed`), so nothing stays "running" forever.
 */
async function reconcileAtStart(ctx: NodeContext, connection: ReturnType<typeof createRedis>, prefix: string, queueName: string): Promise<void> {
  const { prisma, nodeId, logger } = ctx;
  // Recorded as a sweep Job so operators see what a worker start cleaned up (SPEC §10).
  const { value } = await recordSweep(prisma, () => startUpSweep(ctx, connection, prefix, queueName), { nodeId, kind: 'node-start' });
  if (value.interrupted.length || value.leftovers.removed.length || value.leftovers.restored.length || value.leftovers.kept.length) {
    logger.info(value, 'start-up sweep');
  }
}

async function startUpSweep(ctx: NodeContext, connection: ReturnType<typeof createRedis>, prefix: string, queueName: string) {
  const { prisma, nodeId, logger, store } = ctx;
  const volumes = await prisma.volume.findMany({ where: { instance: { nodeId } }, select: { hostPath: true } });
  const leftovers = await recoverLeftovers(
    volumes.map((v) => v.hostPath),
    async (jobId) => (await prisma.job.findUnique({ where: { id: jobId }, select: { status: true } }))?.status === 'succeeded',
  );

  const interrupted: string[] = [];
  const abortedUploads: string[] = [];
  const { Queue } = await import('bullmq');
  const queue = new Queue(queueName, { connection, prefix });
  try {
    // A queued row younger than the grace may not be enqueued yet (the gateway writes it first).
    const enqueuedBefore = new Date(Date.now() - LOST_JOB_GRACE_MS);
    const jobs = await prisma.job.findMany({
      // Only what runs on this node's queue: sweeps (this one included) are not queue jobs.
      where: {
        type: { in: ['backup', 'restore'] },
        OR: [{ nodeId }, { queue: queueName }],
        AND: [{ OR: [{ status: 'running' }, { status: 'queued', createdAt: { lt: enqueuedBefore } }] }],
      },
      include: { backup: { select: { instanceId: true } } },
    });
    for (const job of jobs) {
      if (await queue.getJob(job.id)) continue;
      const changed = await transitionJob(prisma, job.id, ['queued', 'running'], 'interrupted', {
        error: 'the job was lost from the queue (worker or Redis restarted)',
      });
      if (!changed) continue;
      interrupted.push(job.id);
      logger.warn({ jobId: job.id }, 'marked a lost job interrupted');
      if (job.type === 'backup' && job.backupId && job.backup) {
        await transitionBackup(prisma, job.backupId, ['pending', 'running'], 'failed', {
          error: 'interrupted: the job was lost from the queue',
          completedAt: new Date(),
        });
        // Its half-written multipart upload would otherwise wait for the control sweep's grace period.
        for (const upload of await store.listIncompleteUploads(backupPrefix(job.backup.instanceId, job.backupId))) {
          await store.abortIncompleteUpload(upload.key, upload.uploadId);
          abortedUploads.push(upload.key);
        }
      }
    }
  } finally {
    await queue.close();
  }
  return { leftovers, interrupted, abortedUploads };
}
