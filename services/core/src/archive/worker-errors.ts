/** Errors cross thread boundaries as plain objects; CairnErrors keep their code. */
import { CairnError, type ErrorCode } from '../errors.ts';

export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  details?: unknown;
  /** A CairnError's: whether a retry could succeed (an S3 outage is not permanent). */
  permanent?: boolean;
  stack?: string;
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof CairnError)
    return { name: err.name, message: err.message, code: err.code, details: err.details, permanent: err.permanent, stack: err.stack };
  if (err instanceof Error) return { name: err.name, message: err.message, code: (err as NodeJS.ErrnoException).code, stack: err.stack };
  return { name: 'Error', message: String(err) };
}

export function deserializeError(e: SerializedError): Error {
  if (e.name === 'CairnError' && e.code)
    return new CairnError(e.code as ErrorCode, e.message, { details: e.details, ...(e.permanent === undefined ? {} : { permanent: e.permanent }) });
  const err = new Error(e.message) as NodeJS.ErrnoException;
  err.name = e.name;
  if (e.code) err.code = e.code;
  if (e.stack) err.stack = e.stack;
  return err;
}
