import Router from '@koa/router';
import { checkReadiness, type Check } from '@cairn/core';

/** `/healthz`: the process is up. `/readyz`: Postgres, Redis and S3 answer (503 naming the missing ones). */
export function healthRoutes(checks: Record<string, Check>): Router {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    const readiness = await checkReadiness(checks);
    const failing = Object.entries(readiness.checks).filter(([, c]) => !c.ok).map(([name]) => name);
    ctx.status = readiness.ok ? 200 : 503;
    ctx.body = readiness.ok
      ? { status: 'ready', checks: readiness.checks }
      : { status: 'unavailable', error: { code: 'unavailable', message: `not ready: ${failing.join(', ')} unreachable` }, checks: readiness.checks };
  });
  return router;
}
