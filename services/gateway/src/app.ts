import Koa from 'koa';
import { keyringOf, ScheduleService, type Check, type Config, type Logger, type Records } from '@cairn/core';
import type { ObjectStore } from '@cairn/core/storage/object-store.ts';
import { bullBoard } from './admin/bull-board.ts';
import { ApiRegistry } from './http/api-routes.ts';
import { buildOpenApi } from './http/openapi.ts';
import { uiStatic } from './http/ui-static.ts';
import { bearerAuthenticator } from './middleware/authenticate.ts';
import { errorHandler } from './middleware/error-handler.ts';
import { requestContext } from './middleware/request-context.ts';
import type { JobChangeFeed } from './queue/job-change-feed.ts';
import type { QueuePort } from './queue/queue-client.ts';
import { backupRoutes } from './routes/backups.routes.ts';
import { catalogRoutes } from './routes/catalog.routes.ts';
import { downloadLinkRoutes } from './routes/download-links.routes.ts';
import { instanceRoutes } from './routes/instances.routes.ts';
import { instancePolicyRoutes } from './routes/instance-policy.routes.ts';
import { jobRoutes } from './routes/jobs.routes.ts';
import { keyRoutes } from './routes/keys.routes.ts';
import { KeyRewrapService } from './services/key-rewrap.service.ts';
import { migrateRoutes } from './routes/migrate.routes.ts';
import { nodeRoutes } from './routes/nodes.routes.ts';
import { opsRoutes } from './routes/ops.routes.ts';
import { scheduleRoutes } from './routes/schedules.routes.ts';
import { tokenRoutes } from './routes/tokens.routes.ts';
import { verifyRoutes } from './routes/verify.routes.ts';
import { BackupFilesService } from './services/backup-files.service.ts';
import { BackupObjects } from './services/backup-objects.ts';
import { BackupService } from './services/backup.service.ts';
import { DownloadLinkService, downloadLinkKey } from './services/download-link.service.ts';
import { InstanceService } from './services/instance.service.ts';
import { InstancePolicyService } from './services/instance-policy.service.ts';
import { JobService } from './services/job.service.ts';
import { MetricsService, type MetricsServiceOptions } from './services/metrics.service.ts';
import { MigrateService } from './services/migrate.service.ts';
import { NodeService } from './services/node.service.ts';
import { RestoreService } from './services/restore.service.ts';
import { TokenService } from './services/token.service.ts';
import { VerifyService } from './services/verify.service.ts';

export const GATEWAY_VERSION = '0.1.0';

export interface GatewayDeps {
  config: Pick<Config, 'BODY_LIMIT' | 'COMPRESSION' | 'MANUAL_BACKUP_LIMIT'> &
    Partial<
      Pick<Config, 'FULL_BACKUP_EVERY' | 'CAIRN_MASTER_KEYS' | 'DOWNLOAD_LINK_SECRET' | 'CAIRN_ADMIN_TOKEN' | 'JOB_STREAMS_PER_TOKEN' | 'JOB_STREAM_POLL_MS'>
    >;
  logger: Logger;
  records: Records;
  queues: QueuePort;
  store: ObjectStore;
  readinessChecks: Record<string, Check>;
  /** Job change notices from the workers (Redis pub/sub), which progress streams follow. */
  jobChanges?: JobChangeFeed;
  /** Metrics of other roles in this process, appended to /metrics (the all-in-one's workers). */
  extraMetrics?: MetricsServiceOptions['extra'];
}

export interface Gateway {
  app: Koa;
  registry: ApiRegistry;
  tokens: TokenService;
}

/** Builds the Koa application and its services; all I/O arrives through `deps` (composition in main.ts). */
export function createGateway(deps: GatewayDeps): Gateway {
  const { records, queues, logger, store, config } = deps;
  const tokens = new TokenService({ records, logger });
  const schedules = new ScheduleService({ records, queues, config, logger });
  const instances = new InstanceService({ records, queues, objects: new BackupObjects(store), schedulers: schedules.schedulers, logger });
  const backups = new BackupService({ records, queues, instances, config, logger, store });
  const policies = new InstancePolicyService({ records, queues, instances, config, logger });
  const files = new BackupFilesService({ store, backups, logger, records, keyring: () => keyringOf(config) });
  const restores = new RestoreService({ records, queues, instances, backups, files, logger });
  const migrations = new MigrateService({ records, queues, instances, backups, files, logger });
  const jobs = new JobService({
    records,
    queues,
    logger,
    changes: deps.jobChanges,
    pollIntervalMs: config.JOB_STREAM_POLL_MS,
    streamsPerToken: config.JOB_STREAMS_PER_TOKEN,
  });
  const nodes = new NodeService({ records });
  const metrics = new MetricsService({ records, queues, logger, extra: deps.extraMetrics });

  const registry = new ApiRegistry();
  tokenRoutes(registry, tokens);
  instanceRoutes(registry, instances, backups);
  instancePolicyRoutes(registry, policies);
  backupRoutes(registry, backups, files, restores);
  const links = new DownloadLinkService({ key: downloadLinkKey(config, logger), backups, files, tokens, logger });
  const linkDownloads = downloadLinkRoutes(registry, links);
  migrateRoutes(registry, migrations);
  scheduleRoutes(registry, schedules);
  jobRoutes(registry, jobs);
  nodeRoutes(registry, nodes);
  verifyRoutes(registry, new VerifyService({ records, queues, backups, logger }));
  catalogRoutes(registry, { records, store, logger });
  keyRoutes(registry, new KeyRewrapService({ records, keyring: () => keyringOf(config), logger, store }));
  let openapi: unknown;
  const ops = opsRoutes(
    registry,
    deps.readinessChecks,
    metrics,
    () =>
      (openapi ??= buildOpenApi(registry.operations(), {
        title: 'Cairn',
        version: GATEWAY_VERSION,
        description: 'Backup, restore, migrate and cleanup of application instance volumes. Errors are `{"error": {"code", "message", "details?"}}`.',
      })),
  );
  const api = registry.mount({ authenticate: bearerAuthenticator(tokens), bodyLimit: config.BODY_LIMIT });

  const app = new Koa();
  app.proxy = true;
  app.silent = true; // errors are logged by errorHandler, once
  app.use(requestContext(logger));
  app.use(metrics.middleware());
  app.use(errorHandler(logger));
  app.use(bullBoard({ basePath: '/admin/queues', tokens, queues, nodes }));
  app.use(ops.routes());
  app.use(linkDownloads.routes()); // public: the signed link is the credential
  app.use(api.routes());
  app.use(uiStatic()); // the web UI at /ui (services/ui/dist)
  return { app, registry, tokens };
}

/** The Koa application alone (tests and embedding). */
export function createGatewayApp(deps: GatewayDeps): Koa {
  return createGateway(deps).app;
}
