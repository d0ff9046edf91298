import Koa from 'koa';
import type { Check, Logger } from '@cairn/core';
import { errorHandler } from './middleware/error-handler.ts';
import { requestContext } from './middleware/request-context.ts';
import { healthRoutes } from './routes/health.routes.ts';

export interface GatewayDeps {
  logger: Logger;
  readinessChecks: Record<string, Check>;
}

/** Builds the Koa application; all I/O arrives through `deps` (composition in main.ts). */
export function createGatewayApp(deps: GatewayDeps): Koa {
  const app = new Koa();
  app.proxy = true;
  app.silent = true; // errors are logged by errorHandler, once
  app.use(requestContext(deps.logger));
  app.use(errorHandler(deps.logger));
  const health = healthRoutes(deps.readinessChecks);
  app.use(health.routes()).use(health.allowedMethods());
  return app;
}
