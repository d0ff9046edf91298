import Router from '@koa/router';
import { checkReadiness, type Check } from '@cairn/core';
import type { ApiRegistry } from '../http/api-routes.ts';
import type { MetricsService } from '../services/metrics.service.ts';

/**
 * Operational endpoints, unauthenticated like any health or scrape endpoint: `/healthz` (the
 * process is up), `/readyz` (Postgres, Redis and S3 answer; 503 naming the ones that do not),
 * `/metrics` (Prometheus) and `/openapi.json`.
 */
export function opsRoutes(api: ApiRegistry, checks: Record<string, Check>, metrics: MetricsService, openapi: () => unknown): Router {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    const readiness = await checkReadiness(checks);
    const failing = Object.entries(readiness.checks)
      .filter(([, c]) => !c.ok)
      .map(([name]) => name);
    ctx.status = readiness.ok ? 200 : 503;
    ctx.body = readiness.ok
      ? { status: 'ready', checks: readiness.checks }
      : {
          status: 'unavailable',
          error: { code: 'unavailable', message: `not ready: ${failing.join(', ')} unreachable`, details: { failing } },
          checks: readiness.checks,
        };
  });
  router.get('/metrics', async (ctx) => {
    const { contentType, body } = await metrics.render();
    ctx.type = contentType;
    ctx.body = body;
  });
  router.get('/openapi.json', (ctx) => {
    ctx.body = openapi();
  });

  const ops = { tag: 'ops', access: 'public' } as const;
  api
    .document({
      ...ops,
      method: 'get',
      path: '/healthz',
      operationId: 'healthz',
      summary: 'The process is up',
      responses: { 200: { description: 'up', contentType: 'application/json' } },
    })
    .document({
      ...ops,
      method: 'get',
      path: '/readyz',
      operationId: 'readyz',
      summary: 'Postgres, Redis and S3 answer',
      responses: {
        200: { description: 'ready', contentType: 'application/json' },
        503: { description: 'not ready: names the failing dependencies', contentType: 'application/json' },
      },
    })
    .document({
      ...ops,
      method: 'get',
      path: '/metrics',
      operationId: 'metrics',
      summary: 'Prometheus metrics',
      responses: { 200: { description: 'text exposition format', contentType: 'text/plain' } },
    })
    .document({
      ...ops,
      method: 'get',
      path: '/openapi.json',
      operationId: 'openapi',
      summary: 'This document',
      responses: { 200: { description: 'OpenAPI 3.1', contentType: 'application/json' } },
    })
    .document({
      method: 'get',
      path: '/admin/queues',
      operationId: 'bullBoard',
      summary: 'Bull Board (HTML): HTTP Basic, user admin, password an admin API token',
      tag: 'ops',
      access: 'basic',
      responses: { 200: { description: 'the Bull Board UI', contentType: 'text/html' } },
    });
  return router;
}
