/**
 * `npm start`: the all-in-one Cairn (SPEC §2) — gateway + control worker + one node worker
 * (node id = hostname, volume root from VOLUME_ROOTS) — on a local stack that it finds or starts.
 */
import './quiet-sdk.ts';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CairnError, loadConfig, type Config } from '@cairn/core';
import { createRuntime } from '@cairn/core/runtime.ts';
import { startGateway } from '@cairn/gateway/main.ts';
import { startControlWorker } from '@cairn/worker/control/control-worker.ts';
import { startWorkerMetrics } from '@cairn/worker/metrics/process-metrics.ts';
import { startNodeWorker } from '@cairn/worker/node/node-worker.ts';
import { startLocalStack } from './local-stack/index.ts';

/** The admin token of a local install: from CAIRN_ADMIN_TOKEN, else generated once into the data dir. */
function adminToken(config: Config): { token: string; location: string } {
  if (config.CAIRN_ADMIN_TOKEN) return { token: config.CAIRN_ADMIN_TOKEN, location: 'the CAIRN_ADMIN_TOKEN variable' };
  const file = path.resolve(config.CAIRN_DATA_DIR, 'admin-token');
  if (!fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, `cairn_${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
  }
  return { token: fs.readFileSync(file, 'utf8').trim(), location: file };
}

async function main(): Promise<void> {
  const base = loadConfig();
  const stack = await startLocalStack({ s3Directory: path.resolve(base.CAIRN_DATA_DIR, 's3') });
  const admin = adminToken(base);
  const config = loadConfig({ ...process.env, ...stack.env, CAIRN_ADMIN_TOKEN: admin.token });
  for (const root of config.VOLUME_ROOTS) fs.mkdirSync(root, { recursive: true });

  const runtime = createRuntime(config, { name: 'all-in-one' });
  // The workers' metrics join the gateway's /metrics (process metrics once, from the gateway); also
  // on their own port when WORKER_METRICS_PORT is set.
  const workerMetrics = await startWorkerMetrics(runtime, { defaultMetrics: false });
  const gateway = await startGateway(runtime, { extraMetrics: [workerMetrics.metrics.registry] });
  const control = await startControlWorker({ ...runtime, metrics: workerMetrics.metrics });
  const node = await startNodeWorker({ ...runtime, metrics: workerMetrics.metrics });

  const root = config.VOLUME_ROOTS[0]!;
  console.log(`
Cairn is running (all-in-one): ${gateway.url}
  admin token: ${admin.location}
  node worker: ${node.nodeId}, volume roots ${config.VOLUME_ROOTS.join(', ')}
  Bull Board:  ${gateway.url}/admin/queues (user admin, password the admin token)
  metrics:     ${gateway.url}/metrics (gateway and workers)

First backup:
  TOKEN=$(cat ${admin.location.startsWith('/') ? admin.location : '<token>'})
  mkdir -p ${root}/demo/data && echo hello > ${root}/demo/data/hello.txt
  curl -s -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \\
    -d '{"name":"demo","nodeId":"${node.nodeId}","tenant":"default","volumes":[{"name":"data","hostPath":"${root}/demo/data"}]}' \\
    ${gateway.url}/v1/instances
  curl -s -X POST -H "Authorization: Bearer $TOKEN" ${gateway.url}/v1/instances/<instance id>/backups
  curl -s -H "Authorization: Bearer $TOKEN" ${gateway.url}/v1/jobs/<job id>
`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping Cairn...`);
    const warn = (what: string) => (err: Error) => console.error(`cairn: stopping the ${what} failed: ${err.message}`);
    await node.close().catch(warn('node worker'));
    await control.close().catch(warn('control worker'));
    await gateway.close().catch(warn('gateway'));
    await workerMetrics.server?.close().catch(warn('worker metrics'));
    await runtime.close().catch(warn('connections'));
    await stack.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
}

main().catch((err: unknown) => {
  console.error(err instanceof CairnError || err instanceof Error ? `cairn: ${err.message}` : err);
  process.exit(1);
});
