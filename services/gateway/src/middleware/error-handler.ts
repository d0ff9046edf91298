import type { Middleware } from 'koa';
import { CairnError, UniqueViolation, type ErrorCode, type Logger } from '@cairn/core';

const STATUS: Partial<Record<ErrorCode, number>> = {
  validation: 400,
  'unsafe-path': 400,
  unauthorized: 401,
  forbidden: 403,
  'not-found': 404,
  conflict: 409,
  // The backup's stored objects are gone or unreadable: a state problem of that backup, not of the server.
  'archive-missing': 409,
  'archive-corrupt': 409,
  'checksum-mismatch': 409,
  'payload-too-large': 413,
  'no-data': 422,
  limit: 429,
  unavailable: 503,
};

/** Prisma error codes that mean "the database is not reachable / not answering". */
const PRISMA_UNAVAILABLE = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2037']);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE', 'EAI_AGAIN']);

/**
 * The one error path (SPEC §11): every error becomes `{"error": {code, message, details?}}`.
 * Known errors keep their message; a dependency that is down is a 503 naming it; anything else
 * is logged and answered with a generic 500, never a stack trace.
 */
export function errorHandler(logger: Logger): Middleware {
  return async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        throw new CairnError('not-found', `no route ${ctx.method} ${ctx.path}`);
      }
    } catch (err) {
      const e = toCairnError(err);
      const status = STATUS[e.code] ?? 500;
      const log = (ctx.state.log as Logger | undefined) ?? logger;
      if (status === 500) log.error({ err }, 'request failed');
      else if (status === 503) log.warn({ err: e.message, cause: causeMessage(err) }, 'dependency unavailable');
      if (ctx.headerSent) {
        // A stream already started (download, SSE): the only thing left is to cut it.
        ctx.res.destroy();
        return;
      }
      ctx.status = status;
      ctx.remove('Content-Disposition');
      ctx.remove('Content-Length');
      ctx.body = {
        error: { code: e.code, message: status === 500 ? 'internal error' : e.message, ...(e.details !== undefined ? { details: e.details } : {}) },
      };
      if (status === 401 && !ctx.response.get('WWW-Authenticate')) ctx.set('WWW-Authenticate', 'Bearer realm="cairn"');
      if (status === 503) ctx.set('Retry-After', '5');
    }
  };
}

export function toCairnError(err: unknown): CairnError {
  if (err instanceof CairnError) return err;
  const e = (err ?? {}) as { name?: string; code?: unknown; status?: number; expose?: boolean; message?: string; type?: string; meta?: unknown };
  // Unique violations are duplicate names raced past the service's own check. The constraint and
  // driver details stay in the log: a response never carries database internals.
  if (err instanceof UniqueViolation || e.code === 'P2002')
    return new CairnError('conflict', 'a record with the same unique name already exists', { cause: err });
  if (e.code === 'P2025') return new CairnError('not-found', 'record not found');
  if ((typeof e.code === 'string' && PRISMA_UNAVAILABLE.has(e.code)) || e.name === 'PrismaClientInitializationError') {
    return new CairnError('unavailable', 'database unavailable', { cause: err });
  }
  if (isRedisDown(err)) return new CairnError('unavailable', 'redis unavailable', { cause: err });
  if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return new CairnError('unavailable', 'a dependency is unreachable', { cause: err });
  // Errors raised by Koa itself (http-errors): keep their status.
  if (e.status === 413 || e.type === 'entity.too.large') return new CairnError('payload-too-large', 'request body is too large');
  if (e.status === 400 && e.expose) return new CairnError('validation', e.message ?? 'bad request');
  if (e.status === 401) return new CairnError('unauthorized', e.message ?? 'unauthorized');
  if (e.status === 403) return new CairnError('forbidden', e.message ?? 'forbidden');
  if (e.status === 404) return new CairnError('not-found', e.message ?? 'not found');
  if (e.status === 405) return new CairnError('validation', e.message ?? 'method not allowed');
  return new CairnError('internal', e.message ?? String(err));
}

function isRedisDown(err: unknown): boolean {
  const e = err as { name?: string; message?: string };
  if (e?.name === 'MaxRetriesPerRequestError') return true;
  return typeof e?.message === 'string' && /Connection is closed|Stream isn't writeable|enableOfflineQueue options is false/.test(e.message);
}

function causeMessage(err: unknown): string | undefined {
  const cause = err instanceof CairnError ? err.cause : err;
  return cause instanceof Error ? cause.message : undefined;
}
