import { randomUUID } from 'node:crypto';
import type { Context, Middleware } from 'koa';
import type { Logger } from '@cairn/core';

/** The fields of a request's logger, until something logs: then the logger is made once with them. */
interface PendingLog {
  bindings: Record<string, unknown>;
  made: boolean;
}

const pendingLogs = new WeakMap<Context, PendingLog>();

/**
 * Gives each request an id (honouring a sane incoming X-Request-Id) and logs one line per request.
 * `ctx.state.log` is the request's child logger, made on first use: at the default level most
 * requests never log, and making a child logger per request was a measurable part of its CPU.
 */
export function requestContext(logger: Logger): Middleware {
  return async (ctx, next) => {
    const incoming = ctx.get('x-request-id');
    const requestId = /^[A-Za-z0-9._-]{1,128}$/.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = requestId;
    const pending: PendingLog = { bindings: { reqId: requestId }, made: false };
    let log: Logger | undefined;
    pendingLogs.set(ctx, pending);
    Object.defineProperty(ctx.state, 'log', {
      configurable: true,
      enumerable: true,
      get: () => {
        pending.made = true;
        log ??= logger.child(pending.bindings);
        return log;
      },
      set: (value: Logger) => {
        pending.made = true;
        log = value;
      },
    });
    ctx.set('X-Request-Id', requestId);
    const start = process.hrtime.bigint();
    try {
      await next();
    } finally {
      if (ctx.path !== '/healthz' && ctx.path !== '/metrics' && logger.isLevelEnabled('info')) {
        const ms = Number(process.hrtime.bigint() - start) / 1e6;
        // A download link's path is its credential: never logged.
        const path = ctx.path.startsWith('/v1/downloads/') ? '/v1/downloads/***' : ctx.path;
        ctx.state.log.info({ method: ctx.method, path, status: ctx.status, ms: Math.round(ms * 10) / 10 }, 'request');
      }
    }
  };
}

/** Adds fields to every later line of the request's log (the token, once known). */
export function bindRequestLog(ctx: Context, fields: Record<string, unknown>): void {
  const pending = pendingLogs.get(ctx);
  if (pending && !pending.made) Object.assign(pending.bindings, fields);
  else if (ctx.state.log) ctx.state.log = (ctx.state.log as Logger).child(fields);
}
