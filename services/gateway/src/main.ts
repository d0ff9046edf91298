import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import {
  CairnError,
  JobQueues,
  createLogger,
  createPrisma,
  createRedis,
  loadConfig,
  reconcileSchedulers,
  redactConfig,
  type Config,
  type Logger,
} from '@cairn/core';
import { createObjectStore } from '@cairn/core/runtime.ts';
import { createGateway } from './app.ts';
import { QueueClient } from './queue/queue-client.ts';

export interface StartGatewayOptions {
  config: Config;
  logger?: Logger;
}

export interface RunningGateway {
  /** `http://host:port` actually listened on (PORT 0 picks a free port). */
  url: string;
  close(): Promise<void>;
}

/**
 * The gateway's composition root: opens Postgres, Redis and the object store from `config`,
 * makes CAIRN_ADMIN_TOKEN a valid admin token, and serves the API on HOST:PORT.
 */
export async function startGateway(options: StartGatewayOptions): Promise<RunningGateway> {
  const { config } = options;
  const logger = options.logger ?? createLogger({ level: config.LOG_LEVEL, name: 'gateway' });
  const prisma = createPrisma(config.DATABASE_URL);
  const redis = createRedis(config.REDIS_URL);
  const jobQueues = new JobQueues(redis, config.QUEUE_PREFIX);
  const store = createObjectStore(config);
  const queues = new QueueClient(jobQueues, redis);

  const releaseAll = async () => {
    // A Redis that never answered would make BullMQ's close wait forever: bounded.
    await Promise.race([jobQueues.close().catch(() => {}), delay(2000)]);
    redis.disconnect();
    await prisma.$disconnect().catch(() => {});
    await (store as { close?: () => Promise<void> }).close?.().catch(() => {});
  };

  try {
    const gateway = createGateway({
      config,
      logger,
      prisma,
      queues,
      store,
      readinessChecks: {
        postgres: () => prisma.$executeRaw`SELECT 1`,
        redis: async () => {
          if (redis.status !== 'ready') throw new CairnError('unavailable', `redis connection is ${redis.status}`);
          await redis.ping();
        },
        s3: () => store.ping(),
      },
    });
    // A gateway whose Postgres is down still starts and answers /readyz 503 (an orchestrator
    // then waits instead of crash-looping); the bootstrap admin row is written once it is back.
    let bootstrapTimer: NodeJS.Timeout | undefined;
    const bootstrap = async (): Promise<void> => {
      if (!config.CAIRN_ADMIN_TOKEN) return;
      try {
        await gateway.tokens.ensureBootstrapAdmin(config.CAIRN_ADMIN_TOKEN);
      } catch (err) {
        logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'could not record the bootstrap admin token yet; retrying in 5 s');
        bootstrapTimer = setTimeout(() => void bootstrap(), 5000);
        bootstrapTimer.unref();
      }
    };
    await bootstrap();

    const server = http.createServer(gateway.app.callback());
    server.keepAliveTimeout = 65_000; // longer than common load balancer idle timeouts
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.PORT, config.HOST, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    const url = `http://${host}:${address.port}`;
    logger.info({ url }, 'gateway listening');
    // The schedule table is the truth: rebuild the BullMQ job schedulers from it (a flushed or new
    // Redis loses none). In the background: a slow or absent Redis must not hold up serving.
    const reconciling = reconcileSchedulers(prisma, queues, { logger }).then(
      (report) => {
        if (report.failed.length)
          logger.warn(
            { failed: report.failed.slice(0, 20), count: report.failed.length },
            'some schedulers could not be reconciled; the next start or control worker retries',
          );
      },
      (err: unknown) => logger.error({ err }, 'could not reconcile the schedulers with the schedule table'),
    );

    let closing: Promise<void> | undefined;
    return {
      url,
      close: () =>
        (closing ??= (async () => {
          clearTimeout(bootstrapTimer);
          const closed = new Promise<void>((resolve) => server.close(() => resolve()));
          server.closeIdleConnections();
          // Event streams and downloads in flight get a moment, then are cut.
          const timer = setTimeout(() => server.closeAllConnections(), 2000);
          await closed;
          clearTimeout(timer);
          // A reconcile still running would fail on closed connections: give it a moment first.
          await Promise.race([reconciling, delay(2000)]);
          await releaseAll();
          logger.info('gateway stopped');
        })()),
    };
  } catch (err) {
    await releaseAll();
    throw err;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** `tsx services/gateway/src/main.ts`: the gateway-only role. */
async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ level: config.LOG_LEVEL, name: 'gateway' });
  logger.info({ config: redactConfig(config) }, 'starting gateway');
  const gateway = await startGateway({ config, logger });
  const stop = (signal: string) => {
    logger.info({ signal }, 'stopping');
    gateway.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(`cairn gateway: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
