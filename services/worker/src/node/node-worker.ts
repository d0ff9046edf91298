import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { NODE_JOB_NAMES, newId, nodeJobPayload, nodeQueueName, publishJobChange } from '@cairn/core';
import type { Runtime } from '@cairn/core/runtime.ts';
import { listenForCancels, type CancelListener } from '../cancel-listener.ts';
import { JobLifecycle, type JobWork } from '../job-lifecycle.ts';
import { checkHandlers } from '../job-handlers.ts';
import { ApplyJob } from './apply.job.ts';
import { DiscardJob } from './discard.job.ts';
import { ThawJob } from './thaw.job.ts';
import { LockLostError } from '../job-outcome.ts';
import type { WorkerMetrics } from '../metrics/worker-metrics.ts';
import { BackupJob } from './backup.pipeline.ts';
import { HookCommands } from './hooks/hook-commands.ts';
import { hookEnvOf } from './hooks/node-hooks.ts';
import { thawOpenWindows } from './hooks/run-with-hooks.ts';
import { startHeartbeat } from './heartbeat.ts';
import { volumeStateReports } from './volume-states.ts';
import { IdleMemoryRelease } from './idle-memory.ts';
import type { NodeContext } from './node-context.ts';
import { RestoreJob } from './restore.pipeline.ts';
import { recoverLeftovers } from './staging.ts';
import { watchLostJobs } from '../reconcile/lost-job-watch.ts';
import { reconcileLostJobs, type LostJobOutcome } from '../reconcile/lost-jobs.ts';

export const WORKER_VERSION = '0.1.0';

export interface NodeWorkerOptions extends Runtime {
  nodeId?: string;
  volumeRoots?: string[];
  /** BullMQ lock/stall timings; shorter in tests so a killed worker's job is picked up fast. */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** The node's hook commands (default: read from CAIRN_NODE_HOOKS). */
  hookCommands?: HookCommands;
  /** Where job durations and bytes are counted (the process's worker metrics); none: not counted. */
  metrics?: WorkerMetrics;
}

export interface RunningWorker {
  nodeId: string;
  close(): Promise<void>;
}

/** The work of each node job name: one fresh unit of work per run. */
const HANDLERS = checkHandlers('node', NODE_JOB_NAMES, {
  backup: (ctx: NodeContext): JobWork => new BackupJob(ctx),
  restore: (ctx: NodeContext): JobWork => new RestoreJob(ctx),
  apply: (ctx: NodeContext): JobWork => new ApplyJob(ctx),
  discard: (ctx: NodeContext): JobWork => new DiscardJob(ctx),
  thaw: (ctx: NodeContext): JobWork => new ThawJob(ctx),
});

/**
 * A node worker (SPEC §2): consumes only `node.<id>`, heartbeats, cleans its own leftovers at
 * start and marks its jobs that BullMQ no longer knows `interrupted`. Every job goes through the
 * job lifecycle; the connections are the runtime's.
 */
export async function startNodeWorker(runtime: NodeWorkerOptions): Promise<RunningWorker> {
  const { config, records, store } = runtime;
  const nodeId = runtime.nodeId ?? config.NODE_ID;
  const volumeRoots = runtime.volumeRoots ?? config.VOLUME_ROOTS;
  const logger = runtime.logger.child({ nodeId });
  const queueName = nodeQueueName(nodeId);
  // A hooks file that cannot be read or is invalid stops the start (CAIRN_NODE_HOOKS).
  const hookCommands = runtime.hookCommands ?? HookCommands.load(config.CAIRN_NODE_HOOKS);
  const ctx: NodeContext = { nodeId, volumeRoots, records, store, logger, config, queues: runtime.queues, hookCommands };
  const lifecycle = new JobLifecycle({
    jobs: records.jobs,
    logger,
    nodeId,
    observer: runtime.metrics,
    outageToleranceMs: config.DB_OUTAGE_TOLERANCE,
    onChange: (notice) => void publishJobChange(runtime.redis, config.QUEUE_PREFIX, notice),
  });
  const memory = new IdleMemoryRelease();
  const runs = new ActiveRuns(memory);
  const stopHeartbeat = await startHeartbeat({
    nodes: records.nodes,
    nodeId,
    volumeRoots,
    version: WORKER_VERSION,
    concurrency: config.WORKER_CONCURRENCY,
    logger,
    hookCommands,
    volumeStates: () => volumeStateReports(ctx),
  });
  let worker: Worker | undefined;
  let cancels: CancelListener | undefined;
  let lostJobs: { stop(): void } | undefined;
  const release = async () => {
    memory.busy();
    stopHeartbeat();
    lostJobs?.stop();
    // The worker first: jobs still running while it drains can still be cancelled.
    await worker?.close();
    await cancels?.close();
  };
  try {
    await startUpSweep(runtime, ctx, lifecycle);
    const w = new Worker(
      queueName,
      (job: Job, _token: string | undefined, signal?: AbortSignal) => {
        const aborted = signal ?? new AbortController().signal;
        // A cancel that came before this processor was registered is applied now.
        const early = cancels?.takeEarly(job.id ?? '');
        if (early !== undefined && !aborted.aborted) w.cancelJob(job.id!, early);
        return runs.run(job.id ?? '', aborted, (signal) => processJob(ctx, lifecycle, job, signal));
      },
      {
        connection: runtime.connection(`node-worker:${nodeId}`),
        prefix: config.QUEUE_PREFIX,
        concurrency: config.WORKER_CONCURRENCY,
        lockDuration: runtime.lockDurationMs ?? 30_000,
        stalledInterval: runtime.stalledIntervalMs ?? 30_000,
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
    cancels = await listenForCancels(runtime.connection(`cancels:${nodeId}`), config.QUEUE_PREFIX, [w], logger);
    // A Redis that comes back empty lost this node's queue: its jobs are found again at once (the
    // control worker's periodic check would find them too, a little later).
    lostJobs = watchLostJobs(
      { records, store, queues: runtime.queues, logger },
      { everyMs: null, redis: runtime.redis, nodeId, lostJobGraceMs: config.LOST_JOB_GRACE, nodeDeadMs: Number.POSITIVE_INFINITY },
    );
    void w.run();
  } catch (err) {
    await release().catch((closeErr: Error) => logger.warn({ err: closeErr.message }, 'closing after a failed start failed'));
    throw err;
  }
  // What starting up allocated and freed goes back too.
  memory.idle();
  logger.info({ queue: queueName, volumeRoots }, 'node worker started');
  return { nodeId, close: release };
}

/** The BullMQ processor: validates the payload and hands the job to the lifecycle (thin by design). */
async function processJob(ctx: NodeContext, lifecycle: JobLifecycle, job: Job, signal: AbortSignal): Promise<unknown> {
  const work = HANDLERS[job.name as keyof typeof HANDLERS];
  if (!work) throw new UnrecoverableError(`no handler for job ${job.name}`);
  const payload = nodeJobPayload.safeParse(job.data);
  if (!payload.success) throw new UnrecoverableError(`invalid ${job.name} payload: ${payload.error.message}`);
  const outcome = await lifecycle.execute(
    {
      name: job.name,
      record: { kind: 'existing', jobId: payload.data.jobId },
      attempt: job.attemptsMade + 1,
      attempts: job.opts.attempts ?? 1,
      signal,
      publishProgress: (p) => job.updateProgress(p as unknown as object),
    },
    work(ctx),
  );
  return outcome.status === 'succeeded' ? (outcome.returnValue ?? outcome.result) : outcome;
}

/**
 * At start, recorded as a sweep Job so operators see what a worker start cleaned up (SPEC §10):
 * restores or removes what interrupted restores left beside this node's volumes, and settles this
 * node's running/queued Jobs whose BullMQ job is gone: enqueued again when a second run is safe,
 * else `interrupted` (their Backups `failed`, their half-written uploads aborted), so nothing stays
 * "running" forever (reconcile/lost-jobs.ts decides which).
 */
async function startUpSweep(runtime: Runtime, ctx: NodeContext, lifecycle: JobLifecycle): Promise<void> {
  const { records, store, nodeId, logger } = ctx;
  const outcome = await lifecycle.execute(
    {
      name: 'sweep',
      record: { kind: 'create', job: { id: newId(), type: 'sweep', nodeId, params: { kind: 'node-start' }, requestedBy: 'system' } },
      attempt: 1,
      attempts: 1,
      signal: new AbortController().signal,
    },
    {
      async run() {
        // Before anything else: post hooks owed by runs this worker's previous life left between pre and post.
        const thawed = await thawOpenWindows(hookEnvOf(ctx), await records.hooks.windows({ nodeId, status: ['open', 'thawing'] }), 'node-start');
        const volumes = await records.instances.volumes({ nodeId });
        const leftovers = await recoverLeftovers(
          volumes.map((v) => v.hostPath),
          async (jobId) => (await records.jobs.get(jobId))?.status === 'succeeded',
        );
        // This node is alive (it is us): only jobs lost from the queue are settled.
        const lost = await reconcileLostJobs(
          { records, store, queues: runtime.queues, logger },
          { nodeId, lostJobGraceMs: runtime.config.LOST_JOB_GRACE, nodeDeadMs: Number.POSITIVE_INFINITY },
        );
        const ids = (action: LostJobOutcome['action']) => lost.filter((o) => o.action === action).map((o) => o.jobId);
        const result = {
          thawedHookWindows: thawed,
          leftovers,
          interrupted: ids('interrupted'),
          requeued: ids('requeued'),
          abortedUploads: lost.flatMap((o) => o.abortedUploads),
        };
        return { status: 'succeeded', result };
      },
    },
  );
  if (outcome.status !== 'succeeded') return;
  const { leftovers, interrupted, requeued, thawedHookWindows } = outcome.result as {
    leftovers: { removed: string[]; restored: string[]; kept: string[] };
    interrupted: string[];
    requeued: string[];
    thawedHookWindows: unknown[];
  };
  if (interrupted.length || requeued.length || thawedHookWindows.length || leftovers.removed.length || leftovers.restored.length || leftovers.kept.length)
    logger.info(outcome.result, 'start-up sweep');
}

/**
 * The runs of this worker by job id. BullMQ hands a job out again when Redis lost it and it was
 * enqueued again (reconcile/lost-jobs.ts) while an earlier run of it may still be going here (its
 * lock renewal fails only later): that earlier run is stopped as a run that lost its job, and the
 * new one starts once it has ended, so two runs of one job never overlap on this node.
 */
class ActiveRuns {
  private readonly runs = new Map<string, { stop: AbortController; done: Promise<unknown> }>();

  constructor(private readonly memory: IdleMemoryRelease) {}

  async run<T>(jobId: string, signal: AbortSignal, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    this.memory.busy();
    const earlier = this.runs.get(jobId);
    if (earlier) {
      earlier.stop.abort(new LockLostError(jobId));
      await earlier.done.catch(() => undefined);
    }
    const stop = new AbortController();
    const done = work(AbortSignal.any([signal, stop.signal]));
    const entry = { stop, done };
    this.runs.set(jobId, entry);
    try {
      return await done;
    } finally {
      if (this.runs.get(jobId) === entry) this.runs.delete(jobId);
      if (this.runs.size === 0) this.memory.idle();
    }
  }
}
