import { S3ObjectStore } from '@cairn/core';
import type { Runtime } from '@cairn/core/runtime.ts';
import { startMetricsServer, type MetricsServer } from './metrics-server.ts';
import { WorkerMetrics } from './worker-metrics.ts';

/**
 * The worker metrics of one process: counts the failed requests of the runtime's S3 store and,
 * when WORKER_METRICS_PORT is set (or `port` given), serves them on HOST:port. The all-in-one
 * passes `serve: false` and shows them on the gateway's /metrics instead.
 */
export async function startWorkerMetrics(
  runtime: Pick<Runtime, 'config' | 'logger' | 'store'>,
  options: { serve?: boolean; defaultMetrics?: boolean; port?: number } = {},
): Promise<{ metrics: WorkerMetrics; server: MetricsServer | null }> {
  const metrics = new WorkerMetrics({ defaultMetrics: options.defaultMetrics });
  if (runtime.store instanceof S3ObjectStore) runtime.store.onRequestError((e) => metrics.s3RequestFailed(e));
  const port = options.port ?? runtime.config.WORKER_METRICS_PORT;
  const server =
    (options.serve ?? true) && port !== undefined ? await startMetricsServer({ metrics, host: runtime.config.HOST, port, logger: runtime.logger }) : null;
  return { metrics, server };
}
