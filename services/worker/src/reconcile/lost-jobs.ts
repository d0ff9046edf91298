import { abortIncompleteUploads, backupPrefix, type Job, type JobQueues, type Logger, type NodeJobName, type Records } from '@cairn/core';
import type { ObjectStore } from '@cairn/core/storage/object-store.ts';

/**
 * The one place that decides what becomes of a Job that nobody runs (issue 16): its BullMQ job is
 * gone (Redis lost it), finished without its record being finished (Postgres was down), or waits on
 * a node whose heartbeat stopped. Used by the node worker at start and after a Redis reconnect, by
 * the control worker's short periodic check and by the orphan sweep.
 *
 * A job is enqueued again only when a second run is safe: a backup always (its pipeline reuses the
 * Backup row, aborts what an earlier attempt left half-uploaded and finds a completed backup done);
 * a plain restore only when it never started. Anything else (a restore that may have written to
 * the target, a migrate's node jobs, control jobs) is settled `interrupted` with the reason, and
 * the start-up recovery of its node puts back what a cut restore left.
 */

export interface LostJobDeps {
  records: Records;
  store: Pick<ObjectStore, 'listIncompleteUploads' | 'abortIncompleteUpload'>;
  queues: Pick<JobQueues, 'queue' | 'enqueueNode' | 'cancel' | 'isHeld'>;
  logger: Logger;
  clock?: () => Date;
}

export interface LostJobOptions {
  /** Only the jobs of this node (a node worker looking after its own); all jobs otherwise. */
  nodeId?: string;
  /** Queued jobs younger than this are left alone (their enqueue may be under way). */
  lostJobGraceMs: number;
  /** A node silent this long is dead: its jobs are settled. Infinity: never (a node worker about itself). */
  nodeDeadMs: number;
  /**
   * Heartbeats are judged only from this time on: while the database was unreachable no node could
   * write one, so a node is given `nodeDeadMs` from its return before it is called dead.
   */
  heartbeatsVisibleSince?: Date;
}

export type LostJobAction = 'requeued' | 'interrupted';

export interface LostJobOutcome {
  jobId: string;
  type: Job['type'];
  backupId: string | null;
  action: LostJobAction;
  reason: string;
  /** The job's Backup was marked `failed` with it. */
  backupFailed: boolean;
  /** Incomplete uploads of an interrupted backup that were aborted. */
  abortedUploads: string[];
}

const BATCH = 500;
/** A sweep record still `running` after this long belongs to a sweep whose process died. */
const SWEEP_RECORD_STALE_MS = 6 * 3600_000;

/** Finds the jobs nobody runs among the `queued`/`running` ones and re-enqueues or settles each. */
export async function reconcileLostJobs(deps: LostJobDeps, options: LostJobOptions): Promise<LostJobOutcome[]> {
  const { records } = deps;
  const now = (deps.clock ?? (() => new Date()))();
  const lastSeen = await heartbeatClock(records, now, options);
  const outcomes: LostJobOutcome[] = [];
  const scope = options.nodeId ? { onNode: options.nodeId } : {};
  // Running rows need no grace: a row is claimed only by a worker that holds its BullMQ job.
  const batches = [
    { ...scope, status: 'running' as const },
    { ...scope, status: 'queued' as const, createdBefore: new Date(now.getTime() - options.lostJobGraceMs) },
  ];
  // A running job enqueued again is `queued` when the second batch is read: judged once per check.
  const judged = new Set<string>();
  for (const filter of batches) {
    let cursor: string | undefined;
    for (;;) {
      const jobs = await records.jobs.find(filter, { after: cursor, take: BATCH });
      for (const job of jobs) {
        if (judged.has(job.id)) continue;
        judged.add(job.id);
        const verdict = await judge(deps, job, now, lastSeen, options);
        if (!verdict) continue;
        const outcome = verdict.requeue ? await requeue(deps, job, verdict.reason) : await interrupt(deps, job, verdict.reason, verdict.removeQueued, now);
        if (outcome) outcomes.push(outcome);
      }
      if (jobs.length < BATCH) break;
      cursor = jobs[jobs.length - 1]!.id;
    }
  }
  return outcomes;
}

type Verdict = { reason: string; requeue: boolean; removeQueued: boolean } | null;

/** When each node was last heard of, as far as this check can tell. */
async function heartbeatClock(records: Records, now: Date, options: LostJobOptions): Promise<(nodeId: string) => { at: Date | null; dead: boolean }> {
  if (!Number.isFinite(options.nodeDeadMs)) return () => ({ at: null, dead: false });
  const nodes = new Map((await records.nodes.list()).map((n) => [n.id, n]));
  const visibleSince = options.heartbeatsVisibleSince?.getTime() ?? 0;
  return (nodeId) => {
    const node = nodes.get(nodeId);
    const at = node ? (node.lastHeartbeatAt ?? node.createdAt) : null;
    const judgedFrom = Math.max(at?.getTime() ?? 0, visibleSince);
    return { at, dead: now.getTime() - judgedFrom > options.nodeDeadMs };
  };
}

async function judge(
  deps: LostJobDeps,
  job: Job,
  now: Date,
  lastSeen: (nodeId: string) => { at: Date | null; dead: boolean },
  options: LostJobOptions,
): Promise<Verdict> {
  const nodeId = nodeOfQueue(job.queue);
  if (nodeId) {
    const seen = lastSeen(nodeId);
    // A node whose beats do not arrive but whose worker still holds this job's lock is alive.
    if (seen.dead && !(await deps.queues.isHeld(job.queue!, job.id))) {
      const since = seen.at ? `no heartbeat since ${seen.at.toISOString()}` : 'never registered';
      return { reason: `node ${nodeId} is offline (${since})`, requeue: false, removeQueued: true };
    }
  }
  if (!job.queue) {
    // Records of work without a queue job (sweeps) whose process died.
    const age = now.getTime() - job.createdAt.getTime();
    if (job.type === 'sweep' && !options.nodeId && age > Math.max(SWEEP_RECORD_STALE_MS, options.lostJobGraceMs))
      return { reason: 'the sweep never finished (its worker stopped)', requeue: false, removeQueued: false };
    return null;
  }
  const queued = await deps.queues.queue(job.queue).getJob(job.id);
  if (!queued) {
    const reason = 'the job was lost from the queue (worker or Redis restarted)';
    return { reason, requeue: nodeId !== null && safeToRunAgain(job), removeQueued: false };
  }
  const state = await queued.getState();
  // A failed job's own error is what the record lacks (its worker could not write it).
  if (state === 'failed' && queued.failedReason)
    return { reason: `the job failed but its record was never finished: ${queued.failedReason}`, requeue: false, removeQueued: false };
  if (state === 'completed' || state === 'failed' || state === 'unknown')
    return { reason: `the queue holds the job as ${state} but its record was never finished`, requeue: false, removeQueued: false };
  return null;
}

/**
 * Whether a node job lost from the queue may simply run again: a backup always (see the module
 * comment), a restore of an instance (not a migrate's) only when it never started.
 */
export function safeToRunAgain(job: Pick<Job, 'type' | 'status' | 'startedAt' | 'parentJobId'>): boolean {
  if (job.type === 'backup') return true;
  if (job.type === 'restore' && !job.parentJobId) return job.status === 'queued' && job.startedAt === null;
  return false;
}

/** The BullMQ job name a re-enqueued Job runs under (only the kinds safeToRunAgain allows). */
function jobNameOf(job: Job): NodeJobName {
  return job.type === 'backup' ? 'backup' : 'restore';
}

function nodeOfQueue(queue: string | null): string | null {
  return queue?.startsWith('node.') ? queue.slice('node.'.length) : null;
}

async function requeue(deps: LostJobDeps, job: Job, reason: string): Promise<LostJobOutcome | null> {
  const nodeId = nodeOfQueue(job.queue)!;
  // Back to `queued` first, so a cancel or a second reconciler sees it waiting; the claim of the
  // new run clears the note. Two reconcilers enqueueing the same id add one BullMQ job.
  const changed = await deps.records.jobs.transition(job.id, ['queued', 'running'], 'queued', {
    error: `${reason}; enqueued again`,
    errorCode: null,
  });
  if (!changed) return null;
  await deps.queues.enqueueNode(nodeId, jobNameOf(job), { jobId: job.id });
  deps.logger.warn({ jobId: job.id, type: job.type, reason }, 'a job lost from the queue was enqueued again');
  return { jobId: job.id, type: job.type, backupId: job.backupId, action: 'requeued', reason, backupFailed: false, abortedUploads: [] };
}

async function interrupt(deps: LostJobDeps, job: Job, reason: string, removeQueued: boolean, now: Date): Promise<LostJobOutcome | null> {
  const { records } = deps;
  const changed = await records.jobs.transition(job.id, ['queued', 'running'], 'interrupted', { error: `interrupted: ${reason}`, errorCode: 'interrupted' });
  if (!changed) return null;
  const outcome: LostJobOutcome = {
    jobId: job.id,
    type: job.type,
    backupId: job.backupId,
    action: 'interrupted',
    reason,
    backupFailed: false,
    abortedUploads: [],
  };
  if (job.type === 'backup' && job.backupId) {
    outcome.backupFailed = await records.backups.transition(job.backupId, ['pending', 'running'], 'failed', {
      error: `interrupted: ${reason}`,
      completedAt: now,
    });
    const backup = outcome.backupFailed ? await records.backups.get(job.backupId) : null;
    // Its half-written multipart upload would otherwise wait for the orphan sweep's grace period.
    if (backup)
      try {
        for (const upload of await abortIncompleteUploads(deps.store, backupPrefix(backup.instanceId, backup.id))) outcome.abortedUploads.push(upload.key);
      } catch (err) {
        deps.logger.warn({ backupId: backup.id, err: (err as Error).message }, 'could not abort the uploads of an interrupted backup; the orphan sweep will');
      }
  }
  // A job still waiting for a dead node would run when it comes back; its record says otherwise.
  if (removeQueued && job.queue)
    await deps.queues
      .cancel(job.queue, job.id, `interrupted: ${reason}`)
      .catch((err: Error) => deps.logger.warn({ jobId: job.id, err: err.message }, 'could not remove the queued job of an offline node'));
  deps.logger.warn({ jobId: job.id, type: job.type, reason }, 'job interrupted');
  return outcome;
}
