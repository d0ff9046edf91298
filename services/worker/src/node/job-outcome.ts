import { UnrecoverableError } from 'bullmq';
import { CairnError, transitionJob, type PrismaClient } from '@cairn/core';
import type { JobRun } from './node-context.ts';

/**
 * - cancelled: the user (or a deletion) stopped it; failed: permanent; retry: transient, BullMQ
 *   retries it;
 * - lost: this worker lost the job's BullMQ lock, so another run may own the job now: this run
 *   stops and changes neither the records nor the objects (the other run does).
 */
export type Failure = { kind: 'cancelled' | 'failed' | 'retry' | 'lost'; error: CairnError };

/** The abort reason a worker gives a processor whose job lock could not be renewed. */
export class LockLostError extends Error {
  constructor(jobId: string) {
    super(`lost the lock of job ${jobId}: another worker may be running it`);
    this.name = 'LockLostError';
  }
}

/**
 * Filesystem errors that retrying cannot fix (permissions, read-only or full filesystem, a path
 * that is not what it should be). Others (EBUSY, EMFILE, EAGAIN, ENOENT races...) are retried.
 */
const PERMANENT_ERRNO: Record<string, 'insufficient-space' | 'internal'> = {
  ENOSPC: 'insufficient-space',
  EDQUOT: 'insufficient-space',
  EFBIG: 'insufficient-space',
  EACCES: 'internal',
  EPERM: 'internal',
  EROFS: 'internal',
  ENOTDIR: 'internal',
  EISDIR: 'internal',
  ELOOP: 'internal',
  ENAMETOOLONG: 'internal',
  EXDEV: 'internal',
};

function toCairnError(err: unknown): CairnError {
  if (err instanceof CairnError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const errno = (err as NodeJS.ErrnoException | null)?.code;
  const permanent = typeof errno === 'string' ? PERMANENT_ERRNO[errno] : undefined;
  if (permanent) return new CairnError(permanent, message, { cause: err, details: { errno } });
  return new CairnError('unavailable', message, { permanent: false, cause: err });
}

/** Classifies an error thrown inside a pipeline run: cancelled, permanent failure, or worth a retry. */
export function classify(err: unknown, run: Pick<JobRun, 'signal' | 'lastAttempt'>): Failure {
  if (run.signal.aborted && run.signal.reason instanceof LockLostError) {
    return { kind: 'lost', error: new CairnError('unavailable', run.signal.reason.message, { permanent: false, cause: err }) };
  }
  if (run.signal.aborted || (err instanceof CairnError && err.code === 'cancelled')) {
    const reason = run.signal.reason instanceof Error ? run.signal.reason.message : String(run.signal.reason ?? 'cancelled');
    return { kind: 'cancelled', error: err instanceof CairnError && err.code === 'cancelled' ? err : new CairnError('cancelled', `cancelled: ${reason}`) };
  }
  const error = toCairnError(err);
  if (error.permanent || run.lastAttempt) return { kind: 'failed', error };
  return { kind: 'retry', error };
}

/**
 * Records the failure on the Job row and returns what the BullMQ processor must throw:
 * UnrecoverableError for cancelled/permanent failures (no retry), the original error otherwise
 * (BullMQ retries with backoff; the Job goes back to `queued`). A lost run records nothing.
 */
export async function recordFailure(prisma: PrismaClient, run: JobRun, failure: Failure): Promise<Error> {
  const { kind, error } = failure;
  if (kind === 'lost') return error;
  if (kind === 'retry') {
    await transitionJob(prisma, run.jobId, ['running'], 'queued', {
      error: `attempt ${run.attempt} failed, will retry: ${error.message}`,
      errorCode: error.code,
    }).catch(() => {});
    return error;
  }
  await transitionJob(prisma, run.jobId, ['queued', 'running'], kind === 'cancelled' ? 'cancelled' : 'failed', {
    error: error.message,
    errorCode: error.code,
  }).catch(() => {});
  return new UnrecoverableError(`${error.code}: ${error.message}`);
}
