import { CairnError } from '@cairn/core';

/**
 * How a run of a job ended when it threw:
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

/** Any thrown value as a CairnError: errno codes mapped, anything unknown transient. */
export function toCairnError(err: unknown): CairnError {
  if (err instanceof CairnError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const errno = (err as NodeJS.ErrnoException | null)?.code;
  const permanent = typeof errno === 'string' ? PERMANENT_ERRNO[errno] : undefined;
  if (permanent) return new CairnError(permanent, message, { cause: err, details: { errno } });
  return new CairnError('unavailable', message, { permanent: false, cause: err });
}

/** Classifies an error thrown by a job's work: cancelled, permanent failure, or worth a retry. */
export function classify(err: unknown, run: { signal: AbortSignal; lastAttempt: boolean }): Failure {
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

/** The same failure with its message replaced (code, permanence and details kept). */
export function amendFailure(failure: Failure, message: string): Failure {
  const e = failure.error;
  return { kind: failure.kind, error: new CairnError(e.code, message, { permanent: e.permanent, details: e.details, cause: e }) };
}
