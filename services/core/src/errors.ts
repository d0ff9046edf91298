/**
 * Typed errors with a stable `code`. The gateway maps them to HTTP statuses in one place; the
 * workers map `permanent` ones to BullMQ's UnrecoverableError (no retry).
 */
export type ErrorCode =
  | 'validation'
  | 'unauthorized'
  | 'forbidden'
  | 'not-found'
  | 'conflict'
  | 'payload-too-large'
  | 'no-data'
  | 'limit'
  | 'unavailable'
  | 'checksum-mismatch'
  | 'unsafe-path'
  | 'volume-missing'
  | 'insufficient-space'
  | 'cancelled'
  | 'archive-corrupt'
  | 'archive-missing'
  | 'config'
  /** A pre/post hook failed with onError "fail" (issue 13). */
  | 'hook-failed'
  | 'internal';

export class CairnError extends Error {
  readonly code: ErrorCode;
  readonly details?: unknown;
  /** Retrying cannot help (bad input, corrupt data, missing volume...). */
  readonly permanent: boolean;

  constructor(code: ErrorCode, message: string, options: { details?: unknown; permanent?: boolean; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'CairnError';
    this.code = code;
    this.details = options.details;
    this.permanent = options.permanent ?? code !== 'unavailable';
  }
}

export function isCairnError(err: unknown, code?: ErrorCode): err is CairnError {
  return err instanceof CairnError && (code === undefined || err.code === code);
}

/** Error thrown when an AbortSignal fires; keeps the signal's reason. */
export function abortError(signal: AbortSignal): CairnError {
  const reason = signal.reason instanceof Error ? signal.reason.message : String(signal.reason ?? 'cancelled');
  return new CairnError('cancelled', `cancelled: ${reason}`, { cause: signal.reason });
}
