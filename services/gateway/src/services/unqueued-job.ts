import type { Logger, RecordSet } from '@cairn/core';

export interface UnqueuedRows {
  jobId: string;
  /** The pending backup the job was to produce (a backup request). */
  backupId?: string;
}

export interface FailUnqueuedOptions {
  attempts?: number;
  /** Pause before the second attempt; doubled before each further one. */
  delayMs?: number;
}

/**
 * Marks the rows of a request whose enqueue failed `failed` (a queued job that no worker will ever
 * see would keep the instance busy until the sweep closes it). Each write is tried a few times;
 * one that still fails is logged with the row ids, its own error and the enqueue failure, and
 * the caller answers with the enqueue failure all the same.
 */
export async function failUnqueued(records: RecordSet, logger: Logger, rows: UnqueuedRows, reason: string, options: FailUnqueuedOptions = {}): Promise<void> {
  const attempts = options.attempts ?? 3;
  const delayMs = options.delayMs ?? 100;
  const writes = [
    { row: `job ${rows.jobId}`, write: () => records.jobs.transition(rows.jobId, ['queued'], 'failed', { error: reason, errorCode: 'unavailable' }) },
    ...(rows.backupId
      ? [{ row: `backup ${rows.backupId}`, write: () => records.backups.transition(rows.backupId!, ['pending'], 'failed', { error: reason }) }]
      : []),
  ];
  for (const { row, write } of writes) {
    for (let attempt = 1; ; attempt++) {
      try {
        await write();
        break;
      } catch (err) {
        if (attempt >= attempts) {
          logger.error(
            { ...rows, err: (err as Error).message, cause: reason },
            `could not mark ${row} failed after its enqueue failed; the sweep will close it`,
          );
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, delayMs * 2 ** (attempt - 1)));
      }
    }
  }
}
