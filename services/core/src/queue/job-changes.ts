import type { Redis } from 'ioredis';

/**
 * Job change notices (issue 17): whoever writes a job's progress or state publishes its id here,
 * and each gateway re-reads the job once for all the streams that watch it. The Job row stays
 * the truth; a notice only says "read it again", so a lost one costs a delay, never a wrong state.
 */
export const jobChangesChannel = (prefix: string): string => `${prefix}:job-changes`;

export interface JobChangeNotice {
  jobId: string;
  /** A migrate's child job: its parent's view (which lists the children) changed too. */
  parentJobId?: string | null;
}

/**
 * Publishes a notice, best effort: it never throws, and while Redis is not connected it is
 * dropped rather than queued (the watchers' periodic re-read catches up).
 */
export async function publishJobChange(redis: Pick<Redis, 'publish' | 'status'>, prefix: string, notice: JobChangeNotice): Promise<void> {
  if (redis.status !== 'ready') return;
  try {
    await redis.publish(jobChangesChannel(prefix), JSON.stringify(notice));
  } catch {
    // Best effort, as above.
  }
}

/** The notice in a channel message, or null when it is not one. */
export function parseJobChange(raw: string): JobChangeNotice | null {
  try {
    const msg = JSON.parse(raw) as Partial<JobChangeNotice> | null;
    if (typeof msg?.jobId !== 'string' || !msg.jobId) return null;
    return { jobId: msg.jobId, parentJobId: typeof msg.parentJobId === 'string' ? msg.parentJobId : null };
  } catch {
    return null;
  }
}
