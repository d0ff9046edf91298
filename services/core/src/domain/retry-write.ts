import type { Logger } from '../logging/logger.ts';
import type { RecordSet } from '../records/records.ts';

export interface RetryWriteOptions {
  /** Tries in all (default 3). */
  attempts?: number;
  /** Pause before the second try; doubled before each further one (default 100 ms). */
  delayMs?: number;
  /** Called after each failed try that will be tried again. */
  onRetry?: (err: unknown, attempt: number) => void;
}

/**
 * A state write that a database blip must not lose: tried again after a growing pause when it
 * throws; the last error is thrown. The one retry loop of every state write outside a transaction.
 */
export async function retryWrite<T>(write: () => Promise<T>, options: RetryWriteOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 3;
  const delayMs = options.delayMs ?? 100;
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (err) {
      if (attempt >= attempts) throw err;
      options.onRetry?.(err, attempt);
      await new Promise((resolve) => setTimeout(resolve, delayMs * 2 ** (attempt - 1)));
    }
  }
}

export interface UnqueuedRows {
  jobId: string;
  /** The pending backup the job was to produce (a backup request or a schedule firing). */
  backupId?: string;
  /** More ids for the log line (scheduleId...). */
  context?: Record<string, string>;
}

/**
 * Marks the rows of a request whose enqueue failed `failed` (a queued job that no worker will ever
 * see would keep the instance busy until the sweep closes it). Each write is retried; one that
 * still fails is logged with the row ids, its own error and the enqueue failure, and the caller
 * answers with the enqueue failure all the same (the sweep closes the job later).
 */
export async function failUnqueued(records: RecordSet, logger: Logger, rows: UnqueuedRows, reason: string, options: RetryWriteOptions = {}): Promise<void> {
  const { jobId, backupId } = rows;
  const writes = [
    { row: `job ${jobId}`, write: () => records.jobs.transition(jobId, ['queued'], 'failed', { error: reason, errorCode: 'unavailable' }) },
    ...(backupId ? [{ row: `backup ${backupId}`, write: () => records.backups.transition(backupId, ['pending'], 'failed', { error: reason }) }] : []),
  ];
  for (const { row, write } of writes) {
    try {
      await retryWrite(write, options);
    } catch (err) {
      logger.error(
        { ...rows.context, jobId, ...(backupId ? { backupId } : {}), err: (err as Error).message, cause: reason },
        `could not mark ${row} failed after its enqueue failed; the sweep will close it`,
      );
    }
  }
}
