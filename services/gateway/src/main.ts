import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { CairnError, loadConfig, reconcileSchedulers, redactConfig } from '@cairn/core';
import { createRuntime, type Runtime } from '@cairn/core/runtime.ts';
import { createGateway, type GatewayDeps } from './app.ts';
import { answerClientError, MAX_HEADER_BYTES } from './http/client-error.ts';
import { redisJobChangeFeed } from './queue/job-change-feed.ts';
import { QueueClient } from './queue/queue-client.ts';

export interface RunningGateway {
  /** `http://host:port` actually listened on (PORT 0 picks a free port). */
  url: string;
  /** Stops serving. The runtime's connections stay open: whoever built the runtime closes it. */
  close(): Promise<void>;
}

/**
 * Serves the API on HOST:PORT over a runtime its caller built (the gateway's own main, the
 * all-in-one, tests) and closes; its connections are the runtime's (one of them subscribed to job
 * change notices, closed with the gateway). Makes CAIRN_ADMIN_TOKEN a valid admin token and
 * rebuilds the BullMQ job schedulers from the schedule table.
 */
export async function startGateway(runtime: Runtime, options: Pick<GatewayDeps, 'extraMetrics'> = {}): Promise<RunningGateway> {
  const { config, logger, records, redis, store } = runtime;
  const queues = new QueueClient(runtime.queues, redis);
  const jobChanges = redisJobChangeFeed(runtime.connection('job-changes'), redis, config.QUEUE_PREFIX, logger);
  const gateway = createGateway({
    config,
    logger,
    records,
    queues,
    store,
    jobChanges,
    extraMetrics: options.extraMetrics,
    readinessChecks: {
      postgres: () => records.ping(),
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

  const server = http.createServer({ maxHeaderSize: MAX_HEADER_BYTES }, gateway.app.callback());
  server.on('clientError', answerClientError); // 431/400 in the API's error shape, not an empty body
  server.keepAliveTimeout = 65_000; // longer than common load balancer idle timeouts
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.PORT, config.HOST, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    clearTimeout(bootstrapTimer);
    throw err;
  }
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  logger.info({ url }, 'gateway listening');
  // The schedule table is the truth: rebuild the BullMQ job schedulers from it (a flushed or new
  // Redis loses none). In the background: a slow or absent Redis must not hold up serving.
  const reconciling = reconcileSchedulers(records, queues, { logger }).then(
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
        // A reconcile still running would fail once the runtime closes: give it a moment first.
        await Promise.race([reconciling, delay(2000)]);
        jobChanges.close();
        logger.info('gateway stopped');
      })()),
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** `tsx services/gateway/src/main.ts`: the gateway-only role, the composition root that owns its runtime. */
async function main(): Promise<void> {
  // Node 20 is Cairn's fixed runtime: the AWS SDK's notice about a future Node 22 floor is noise.
  // Set before the runtime builds the S3 client, which is when the SDK would print it.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const config = loadConfig();
  const runtime = createRuntime(config, { name: 'gateway' });
  runtime.logger.info({ config: redactConfig(config) }, 'starting gateway');
  let gateway: RunningGateway;
  try {
    gateway = await startGateway(runtime);
  } catch (err) {
    await runtime.close();
    throw err;
  }
  const stop = (signal: string) => {
    runtime.logger.info({ signal }, 'stopping');
    gateway
      .close()
      .then(() => runtime.close())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          runtime.logger.error({ err }, 'stopping failed');
          process.exit(1);
        },
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
