import type { Logger } from '../logging/logger.ts';
import type { RecordSet } from '../records/records.ts';

export interface RetryWriteOptions {
  /** Tries in all (default 3), whatever the error. */
  attempts?: number;
  /** Pause before the second try; doubled before each further one (default 100 ms). */
  delayMs?: number;
  /** The longest pause between two tries (default: unbounded doubling). */
  maxDelayMs?: number;
  /**
   * Keep trying past `attempts` for this long (from the first try) while the error says the
   * database is unreachable (isUnavailableError): terminal writes outlive a minutes-long outage.
   */
  outlastOutagesMs?: number;
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
  const maxDelayMs = options.maxDelayMs ?? Number.POSITIVE_INFINITY;
  const giveUpAt = Date.now() + (options.outlastOutagesMs ?? 0);
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (err) {
      const pause = Math.min(delayMs * 2 ** Math.min(attempt - 1, 30), maxDelayMs);
      const outage = isUnavailableError(err) && Date.now() + pause < giveUpAt;
      if (attempt >= attempts && !outage) throw err;
      options.onRetry?.(err, attempt);
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
}

/** Postgres SQLSTATEs of a server that is going away or not there yet (classes 08 and 57P, too many connections). */
const UNAVAILABLE_SQLSTATE = /^(08|57P0[1-3]|53300)/;
/** Prisma's codes for an unreachable server, a closed connection, a timeout or an exhausted pool. */
const UNAVAILABLE_PRISMA = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024']);
/** What the pg driver adapter reports for a connection it could not open or lost. */
const UNAVAILABLE_ADAPTER = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections']);
const UNAVAILABLE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);
const UNAVAILABLE_MESSAGE = new RegExp(
  [
    'Connection terminated',
    'connection (is )?closed',
    "Can't reach database server",
    'timeout exceeded when trying to connect',
    'the database system is (starting up|shutting down)',
  ].join('|'),
  'i',
);

/**
 * True when an error says the database (or the connection to it) is unavailable rather than that
 * the write itself is wrong: worth trying again for as long as an outage may last.
 */
export function isUnavailableError(err: unknown): boolean {
  for (let e = err as ErrorLike | undefined, depth = 0; e && typeof e === 'object' && depth < 6; e = e.cause as ErrorLike | undefined, depth++) {
    if (e.name === 'CairnError' && e.code === 'unavailable') return true;
    if (typeof e.code === 'string' && (UNAVAILABLE_PRISMA.has(e.code) || UNAVAILABLE_ERRNO.has(e.code) || UNAVAILABLE_SQLSTATE.test(e.code))) return true;
    const adapter = e.meta?.driverAdapterError?.cause;
    if (adapter && (UNAVAILABLE_ADAPTER.has(adapter.kind ?? '') || UNAVAILABLE_SQLSTATE.test(adapter.originalCode ?? adapter.code ?? ''))) return true;
    if (typeof e.message === 'string' && UNAVAILABLE_MESSAGE.test(e.message)) return true;
  }
  return false;
}

interface ErrorLike {
  name?: string;
  code?: unknown;
  message?: unknown;
  cause?: unknown;
  meta?: { driverAdapterError?: { cause?: { kind?: string; code?: string; originalCode?: string } } };
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
