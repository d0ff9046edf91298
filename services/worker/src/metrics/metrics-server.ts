import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '@cairn/core';
import type { WorkerMetrics } from './worker-metrics.ts';

export interface MetricsServer {
  /** `http://host:port/metrics` actually listened on (port 0 picks a free port). */
  url: string;
  close(): Promise<void>;
}

/**
 * A worker's own `/metrics` (Prometheus text) on host:port; every other path answers 404 in the
 * API's error shape. Workers have no other HTTP surface, so this is a bare node:http server.
 */
export async function startMetricsServer(opts: { metrics: WorkerMetrics; host: string; port: number; logger: Logger }): Promise<MetricsServer> {
  const { metrics, logger } = opts;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'not-found', message: 'only GET /metrics is served here' } }));
      return;
    }
    metrics.render().then(
      (body) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: Error) => {
        logger.warn({ err: err.message }, 'metrics: rendering failed');
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'unavailable', message: 'metrics could not be collected' } }));
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}/metrics`;
  logger.info({ url }, 'worker metrics listening');
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
