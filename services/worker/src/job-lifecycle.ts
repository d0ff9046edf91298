import { UnrecoverableError } from 'bullmq';
import {
  CairnError,
  ProgressThrottle,
  retryWrite,
  type Job,
  type JobChanges,
  type JobChangeNotice,
  type JobRecords,
  type JobStatus,
  type Logger,
  type NewJob,
  type Progress,
} from '@cairn/core';
import { classify, toCairnError, type Failure } from './job-outcome.ts';

/**
 * The one lifecycle of every unit of work Cairn runs (STYLE.md "One job lifecycle"): node backups
 * and restores, cleanups, sweeps, retention runs and schedule firings all go
 * `claim → run(work, signal) → settle(outcome)` here, so each job kind contains only its work.
 *
 * It owns:
 * - the claim: the conditional `queued/running → running` change of the Job row, with the attempt
 *   and node (a job cancelled or interrupted meanwhile is not run: whoever changed it owns it);
 * - progress: throttled and ordered, to BullMQ and the Job row, drained before the terminal write;
 * - the outcome: errors mapped to `failed` / `cancelled` / back to `queued` for a retry (or
 *   nothing, when this run lost the job to another worker), with code and message; permanent
 *   ones thrown as `UnrecoverableError` so BullMQ does not retry them;
 * - the terminal write, retried on failure (a Postgres blip must not leave a job `running` with
 *   its error lost), for as long as `outageToleranceMs` while Postgres is unreachable (a backup
 *   whose objects are uploaded is recorded once it is back), and logged with the job id and the
 *   original error when it still fails; the error BullMQ records is then the job's real error,
 *   which the lost-job check copies onto the row.
 */

/** Retries during an outage ask at least this often whether Postgres is back. */
const MAX_RETRY_DELAY_MS = 5000;

export interface JobRun {
  /** The Cairn Job id (null for BullMQ-only jobs: retention runs, schedule firings). */
  jobId: string | null;
  /** The claimed Job row as it was claimed (null for BullMQ-only jobs). */
  job: Job | null;
  signal: AbortSignal;
  /** 1 on the first attempt. */
  attempt: number;
  /** True when a transient failure now would not be retried by BullMQ. */
  lastAttempt: boolean;
  /** How long the work's own state writes (writeWithRetry) keep trying while Postgres is unreachable. */
  outageToleranceMs?: number;
  progress(stage: string, counters?: { bytesDone: number; bytesTotal: number; filesDone: number; filesTotal: number }): void;
  log: Logger;
}

/** How a unit of work ended without throwing. */
export type WorkOutcome<R = unknown> =
  /** Done: `result` goes on the Job row; `returnValue` (default `result`) to BullMQ. */
  | { status: 'succeeded'; result: R; returnValue?: unknown }
  /** Ended without doing its work because what it works on went away (a backup deleted meanwhile). */
  | { status: 'cancelled'; reason: string }
  /** Nothing to do and nothing to record (the job was not claimed). */
  | { status: 'skipped'; reason: string };

export interface JobWork<R = unknown> {
  run(run: JobRun): Promise<WorkOutcome<R>>;
  /**
   * Puts this kind's own state right after `run` threw (a backup row, uploaded objects, a
   * half-applied restore) before the Job's terminal write; may return the failure amended. Not
   * called when this run lost the job to another worker.
   */
  onFailure?(failure: Failure, run: JobRun): Promise<Failure | undefined>;
}

/** Where the Job row of a run comes from. */
export type JobRecordMode =
  /** A Job row written by whoever enqueued the job (payload.jobId): claimed here. */
  | { kind: 'existing'; jobId: string }
  /** No row yet: the lifecycle writes a `running` one (sweeps record what they did this way). */
  | { kind: 'create'; job: Omit<NewJob, 'status' | 'startedAt'> }
  /** BullMQ-only work (retention runs, schedule firings): nothing to claim or settle in Postgres. */
  | { kind: 'none' };

export interface JobInvocation {
  /** The job name (`backup`, `cleanup`...), for logs. */
  name: string;
  record: JobRecordMode;
  /** 1-based attempt number and the attempts BullMQ allows. */
  attempt: number;
  attempts: number;
  signal: AbortSignal;
  /** Publishes progress to BullMQ as well (`job.updateProgress`). */
  publishProgress?: (p: Progress) => Promise<unknown>;
}

/** How one run of a job ended, as metrics count it. */
export type JobEnd = 'succeeded' | 'failed' | 'cancelled' | 'retry' | 'lost';

/** Told of every run that was claimed, when it ends (worker metrics: durations by type and outcome, bytes). */
export interface JobObserver {
  jobEnded(run: { name: string; outcome: JobEnd; seconds: number; result?: unknown }): void;
}

export interface JobLifecycleOptions {
  jobs: JobRecords;
  observer?: JobObserver;
  logger: Logger;
  /** Recorded on the claimed Job (node workers). */
  nodeId?: string;
  /** How often, and how far apart at first, a failed terminal write is tried again. */
  settleAttempts?: number;
  settleDelayMs?: number;
  /**
   * How long the claim and the terminal write keep trying while Postgres is unreachable (config
   * DB_OUTAGE_TOLERANCE); passed on to the work as `run.outageToleranceMs`. Default 0: settleAttempts only.
   */
  outageToleranceMs?: number;
  progressIntervalMs?: number;
  /**
   * Told after each write of a job's progress or state (issue 17: published on Redis so the
   * gateway's progress streams re-read the job); must not throw or wait.
   */
  onChange?: (notice: JobChangeNotice) => void;
}

export class JobLifecycle {
  private readonly jobs: JobRecords;
  private readonly logger: Logger;
  private readonly settleAttempts: number;
  private readonly settleDelayMs: number;
  private readonly outageToleranceMs: number;

  constructor(private readonly options: JobLifecycleOptions) {
    this.jobs = options.jobs;
    this.logger = options.logger;
    this.settleAttempts = options.settleAttempts ?? 6;
    this.settleDelayMs = options.settleDelayMs ?? 250;
    this.outageToleranceMs = options.outageToleranceMs ?? 0;
  }

  /**
   * Runs one attempt of one job through claim → run → settle. Resolves with what the work returned
   * (or `skipped` when the job could not be claimed); throws what BullMQ must record: the job's
   * own error for a retry, an UnrecoverableError for a permanent failure or a cancel.
   */
  async execute<R>(invocation: JobInvocation, work: JobWork<R>): Promise<WorkOutcome<R>> {
    const lastAttempt = invocation.attempt >= invocation.attempts;
    const claimed = await this.claim(invocation);
    if (!claimed.ok) {
      this.logger.info({ jobId: claimed.jobId, job: invocation.name, reason: claimed.reason }, 'job not run');
      return { status: 'skipped', reason: claimed.reason };
    }
    const { jobId, job } = claimed;
    if (jobId) this.changed(jobId, job?.parentJobId);
    const log = this.logger.child({ ...(jobId ? { jobId } : {}), job: invocation.name });
    const throttle = new ProgressThrottle(
      async (p) => {
        await invocation.publishProgress?.(p);
        if (!jobId) return;
        await this.jobs.setProgress(jobId, p);
        this.changed(jobId, job?.parentJobId);
      },
      this.options.progressIntervalMs ?? 500,
      Date.now,
      (err) => log.debug({ err: errorMessage(err) }, 'progress write failed'),
    );
    const run: JobRun = {
      jobId,
      job,
      signal: invocation.signal,
      attempt: invocation.attempt,
      lastAttempt,
      outageToleranceMs: this.outageToleranceMs,
      log,
      progress: (stage, counters) => (counters ? throttle.update(stage, counters) : throttle.stage(stage)),
    };
    log.info({ attempt: run.attempt }, 'job started');
    const started = performance.now();
    const ended = (outcome: JobEnd, result?: unknown) =>
      this.options.observer?.jobEnded({ name: invocation.name, outcome, seconds: (performance.now() - started) / 1000, result });

    let outcome: WorkOutcome<R>;
    try {
      outcome = await work.run(run);
    } catch (err) {
      await throttle.drain();
      const { thrown, kind } = await this.fail(run, classify(err, run), work);
      ended(kind);
      throw thrown;
    }
    await throttle.drain();
    if (jobId && outcome.status !== 'skipped') {
      const recorded =
        outcome.status === 'succeeded'
          ? await this.settle(jobId, 'succeeded', { result: outcome.result as object, error: null, errorCode: null }, 'succeeded', {
              parentJobId: job?.parentJobId,
            })
          : await this.settle(jobId, 'cancelled', { error: outcome.reason, errorCode: 'cancelled' }, outcome.reason, { parentJobId: job?.parentJobId });
      // The work is done but its record is not: BullMQ retries, and the next run finds it done
      // (a completed backup) or does it again (a restore), then records it.
      if (!recorded) throw new CairnError('unavailable', `job ${jobId} ended ${outcome.status}, but recording it failed`, { permanent: false });
    }
    log.info({ status: outcome.status }, 'job finished');
    if (outcome.status === 'succeeded') ended('succeeded', outcome.result);
    else if (outcome.status === 'cancelled') ended('cancelled');
    return outcome;
  }

  private async claim(
    invocation: JobInvocation,
  ): Promise<{ ok: true; jobId: string | null; job: Job | null } | { ok: false; jobId: string | null; reason: string }> {
    const { record } = invocation;
    const now = new Date();
    if (record.kind === 'none') return { ok: true, jobId: null, job: null };
    if (record.kind === 'create') {
      const job = await this.jobs.create({ ...record.job, status: 'running', startedAt: now, attempts: 1 } as NewJob);
      return { ok: true, jobId: job.id, job };
    }
    // Postgres down when the job is picked up: wait for it rather than spend BullMQ's attempts.
    const job = await this.outlastOutage(`claim of job ${record.jobId}`, () => this.jobs.get(record.jobId));
    if (!job) throw new UnrecoverableError(`not-found: job ${record.jobId} has no record`);
    if (job.status !== 'queued' && job.status !== 'running') return { ok: false, jobId: job.id, reason: `job is ${job.status}` };
    // Every run counts, a re-run after a crash (a stall, which BullMQ does not count) or a re-enqueue
    // included; what an earlier attempt left (its error, its progress) is cleared.
    const attempts = Math.max(invocation.attempt, job.attempts + 1);
    const claimed = await this.outlastOutage(`claim of job ${job.id}`, () =>
      this.jobs.transition(job.id, ['queued', 'running'], 'running', {
        startedAt: job.startedAt ?? now,
        attempts,
        ...(this.options.nodeId ? { nodeId: this.options.nodeId } : {}),
        error: null,
        errorCode: null,
        progress: null,
      }),
    );
    if (!claimed) return { ok: false, jobId: job.id, reason: 'the job changed state before it could be claimed' };
    return { ok: true, jobId: job.id, job: { ...job, status: 'running', attempts } };
  }

  private changed(jobId: string, parentJobId: string | null | undefined): void {
    this.options.onChange?.({ jobId, parentJobId: parentJobId ?? null });
  }

  /** Records a failure and returns what the processor must throw, with how the run ended. */
  private async fail<R>(run: JobRun, classified: Failure, work: JobWork<R>): Promise<{ thrown: Error; kind: Failure['kind'] }> {
    let failure = classified;
    if (failure.kind === 'lost') {
      run.log.warn({ err: failure.error.message }, 'job lost to another worker; this run stops');
      return { thrown: failure.error, kind: 'lost' };
    }
    if (work.onFailure) {
      try {
        failure = (await work.onFailure(failure, run)) ?? failure;
      } catch (err) {
        // The job's own error stays the one recorded; the cleanup's is logged beside it.
        run.log.error({ err: errorMessage(err), jobError: failure.error.message }, 'cleaning up after a failed job failed');
      }
    }
    const { kind, error } = failure;
    run.log.warn({ err: error.message, code: error.code, kind }, 'job ended with an error');
    if (kind === 'retry') {
      // Unrecorded (logged by settle), BullMQ still retries, and the next claim takes it from `running`.
      if (run.jobId)
        await this.settle(run.jobId, 'queued', { error: `attempt ${run.attempt} failed, will retry: ${error.message}`, errorCode: error.code }, error.message, {
          from: ['running'],
          parentJobId: run.job?.parentJobId,
        });
      return { thrown: error, kind };
    }
    // Unrecorded (logged by settle), BullMQ records this same error and the sweep copies it onto the row.
    if (run.jobId)
      await this.settle(run.jobId, kind === 'cancelled' ? 'cancelled' : 'failed', { error: error.message, errorCode: error.code }, error.message, {
        parentJobId: run.job?.parentJobId,
      });
    return { thrown: new UnrecoverableError(`${error.code}: ${error.message}`), kind };
  }

  /** A read or write that only an unreachable Postgres makes fail: tried again while the outage lasts (within the tolerance). */
  private outlastOutage<T>(what: string, work: () => Promise<T>): Promise<T> {
    return retryWrite(work, {
      attempts: 1,
      delayMs: this.settleDelayMs,
      maxDelayMs: MAX_RETRY_DELAY_MS,
      outlastOutagesMs: this.outageToleranceMs,
      onRetry: (err, attempt) => this.logger.warn({ what, attempt, err: errorMessage(err) }, 'database unreachable; trying again'),
    });
  }

  /**
   * The terminal (or back-to-queued) write of a job, tried again with backoff when it fails.
   * Returns false when every try failed, after logging the job id, the job's own outcome and the
   * write's error.
   */
  private async settle(
    jobId: string,
    to: JobStatus,
    changes: JobChanges,
    jobOutcome: string,
    { from = ['queued', 'running'], parentJobId }: { from?: JobStatus[]; parentJobId?: string | null } = {},
  ): Promise<boolean> {
    try {
      const changed = await retryWrite(() => this.jobs.transition(jobId, from, to, changes), {
        attempts: this.settleAttempts,
        delayMs: this.settleDelayMs,
        maxDelayMs: MAX_RETRY_DELAY_MS,
        outlastOutagesMs: this.outageToleranceMs,
        onRetry: (err, attempt) => this.logger.warn({ jobId, to, attempt, err: errorMessage(err) }, 'recording the job outcome failed; trying again'),
      });
      if (!changed) this.logger.info({ jobId, to }, 'job record already changed by someone else (cancel or sweep); left as it is');
      else this.changed(jobId, parentJobId);
      return true;
    } catch (err) {
      this.logger.error({ jobId, to, jobOutcome, err: errorMessage(err) }, 'could not record the job outcome');
      return false;
    }
  }
}

/**
 * A state write of a job's own records (a Backup row...) that must not be lost to a blip: tried
 * like the lifecycle's terminal write, then logged with the job id and rethrown.
 */
export async function writeWithRetry<T>(
  what: string,
  write: () => Promise<T>,
  log: Logger,
  options: { attempts?: number; delayMs?: number; outlastOutagesMs?: number } = {},
): Promise<T> {
  try {
    return await retryWrite(write, {
      attempts: options.attempts ?? 6,
      delayMs: options.delayMs ?? 250,
      maxDelayMs: MAX_RETRY_DELAY_MS,
      outlastOutagesMs: options.outlastOutagesMs ?? 0,
      onRetry: (err, attempt) => log.warn({ err: errorMessage(err), what, attempt }, 'state write failed; trying again'),
    });
  } catch (err) {
    log.error({ err: errorMessage(err), what }, 'state write failed');
    throw toCairnError(err);
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
