import type { Middleware } from 'koa';
import { CairnError, type ErrorCode } from '@cairn/core';
import type { Logger } from '@cairn/core';

const STATUS: Partial<Record<ErrorCode, number>> = {
  validation: 400,
  unauthorized: 401,
  forbidden: 403,
  'not-found': 404,
  conflict: 409,
  'payload-too-large': 413,
  'no-data': 422,
  limit: 429,
  unavailable: 503,
};

/**
 * The one error path (SPEC §11): every error becomes `{"error": {code, message, details?}}`.
 * Known errors keep their message; anything else is logged and answered with a generic 500,
 * never a stack trace.
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
      if (status >= 500 && status !== 503) logger.error({ err, reqId: ctx.state.requestId }, 'request failed');
      ctx.status = status;
      ctx.body = { error: { code: e.code, message: status === 500 ? 'internal error' : e.message, ...(e.details !== undefined ? { details: e.details } : {}) } };
      if (status === 401) ctx.set('WWW-Authenticate', 'Bearer');
    }
  };
}

function toCairnError(err: unknown): CairnError {
  if (err instanceof CairnError) return err;
  const e = err as { status?: number; expose?: boolean; message?: string; type?: string };
  // Errors raised by Koa itself or body parsing (http-errors): keep their status.
  if (e?.status === 413 || e?.type === 'entity.too.large') return new CairnError('payload-too-large', 'request body is too large');
  if (e?.status === 400 && e.expose) return new CairnError('validation', e.message ?? 'bad request');
  if (e?.status === 401) return new CairnError('unauthorized', e.message ?? 'unauthorized');
  if (e?.status === 403) return new CairnError('forbidden', e.message ?? 'forbidden');
  if (e?.status === 404) return new CairnError('not-found', e.message ?? 'not found');
  return new CairnError('internal', e?.message ?? String(err));
}
