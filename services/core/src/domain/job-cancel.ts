import type { JobQueues } from '../queue/job-queues.ts';
import { ACTIVE_JOB_STATUSES, type Job, type RecordSet } from '../records/records.ts';

type CancelQueues = Pick<JobQueues, 'cancel'>;

export type CancelResult = 'cancelled' | 'signalled' | 'unchanged';

/**
 * Cancels one job (SPEC §4): a job still waiting in BullMQ is removed and marked cancelled (and
 * its pending backup with it); a running one is signalled and ends `cancelled` by its worker.
 * All row changes are conditional, so a worker finishing at the same moment wins. A migrate job's
 * queued or running children (backup, restore, ...) are cancelled after it, the same way (its
 * handler stops them too when it sees its own cancel; doing both is harmless).
 */
export async function cancelJob(records: RecordSet, queues: CancelQueues, job: Job, reason: string): Promise<CancelResult> {
  const result = await cancelOne(records, queues, job, reason);
  if (job.type === 'migrate') {
    const children = await records.jobs.find({ parentJobId: job.id, status: ACTIVE_JOB_STATUSES }, { order: 'asc' });
    for (const child of children) await cancelJob(records, queues, child, reason);
  }
  return result;
}

async function cancelOne(records: RecordSet, queues: CancelQueues, job: Job, reason: string): Promise<CancelResult> {
  const outcome = job.queue ? await queues.cancel(job.queue, job.id, reason) : 'gone';
  if (outcome === 'signalled') return 'signalled';
  // Removed from its queue, or no BullMQ job left that could run it: nothing will pick it up.
  const from = outcome === 'removed' ? (['queued', 'running'] as const) : (['queued'] as const);
  const changed = await records.jobs.transition(job.id, from, 'cancelled', { error: reason, errorCode: 'cancelled' });
  if (changed && job.type === 'backup' && job.backupId) {
    await records.backups.transition(job.backupId, ['pending', 'running'], 'cancelled', { error: reason });
  }
  return changed ? 'cancelled' : 'unchanged';
}

/** Cancels several jobs; returns the ids that were cancelled or signalled. */
export async function cancelJobs(records: RecordSet, queues: CancelQueues, jobs: Job[], reason: string): Promise<string[]> {
  const out: string[] = [];
  for (const job of jobs) {
    if ((await cancelJob(records, queues, job, reason)) !== 'unchanged') out.push(job.id);
  }
  return out;
}
