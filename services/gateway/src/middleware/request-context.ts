import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';
import type { Logger } from '@cairn/core';

/** Gives each request an id (honouring a sane incoming X-Request-Id) and logs one line per request. */
export function requestContext(logger: Logger): Middleware {
  return async (ctx, next) => {
    const incoming = ctx.get('x-request-id');
    const requestId = /^[A-Za-z0-9._-]{1,128}$/.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = requestId;
    ctx.state.log = logger.child({ reqId: requestId });
    ctx.set('X-Request-Id', requestId);
    const start = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      if (ctx.path !== '/healthz' && ctx.path !== '/metrics') {
        // A download link's path is its credential: never logged.
        const path = ctx.path.startsWith('/v1/downloads/') ? '/v1/downloads/***' : ctx.path;
        ctx.state.log.info({ method: ctx.method, path, status: ctx.status, ms: Math.round(ms * 10) / 10 }, 'request');
      }
    }
  };
}
