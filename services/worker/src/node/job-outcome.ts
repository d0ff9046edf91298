import { UnrecoverableError } from 'bullmq';
import { CairnError, transitionJob, type PrismaClient } from '@cairn/core';
import type { JobRun } from './node-context.ts';

export type Failure = { kind: 'cancelled' | 'failed' | 'retry'; error: CairnError };

/** Classifies an error thrown inside a pipeline run: cancelled, permanent failure, or worth a retry. */
export function classify(err: unknown, run: Pick<JobRun, 'signal' | 'lastAttempt'>): Failure {
  if (run.signal.aborted || (err instanceof CairnError && err.code === 'cancelled')) {
    const reason = run.signal.reason instanceof Error ? run.signal.reason.message : String(run.signal.reason ?? 'cancelled');
    return { kind: 'cancelled', error: err instanceof CairnError && err.code === 'cancelled' ? err : new CairnError('cancelled', `cancelled: ${reason}`) };
  }
  const error = err instanceof CairnError ? err : new CairnError('unavailable', err instanceof Error ? err.message : String(err), { permanent: false, cause: err });
  if (error.permanent || run.lastAttempt) return { kind: 'failed', error };
  return { kind: 'retry', error };
}

/**
 * Records the failure on the Job row and returns what the BullMQ processor must throw:
 * UnrecoverableError for cancelled/permanent failures (no retry), the original error otherwise
 * (BullMQ retries with backoff; the Job goes back to `queued`).
 */
export async function recordFailure(prisma: PrismaClient, run: JobRun, failure: Failure): Promise<Error> {
  const { kind, error } = failure;
  if (kind === 'retry') {
    await transitionJob(prisma, run.jobId, ['running'], 'queued', { error: `attempt ${run.attempt} failed, will retry: ${error.message}`, errorCode: error.code }).catch(() => {});
    return error;
  }
  await transitionJob(prisma, run.jobId, ['queued', 'running'], kind === 'cancelled' ? 'cancelled' : 'failed', { error: error.message, errorCode: error.code }).catch(() => {});
  return new UnrecoverableError(`${error.code}: ${error.message}`);
}
