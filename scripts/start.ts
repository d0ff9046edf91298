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
import { setWorkerV8Flags } from '@cairn/worker/node/memory-flags.ts';
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

/** Something this script started, stopped in reverse order on the way out. */
interface Part {
  name: string;
  stop(): Promise<unknown>;
}

const parts: Part[] = [];
let stopping: Promise<void> | undefined;
let shutdownRequested = false;

/** Stops every part started so far (the local stack's s3rver, Postgres, Redis last), once. */
function stopAll(): Promise<void> {
  stopping ??= (async () => {
    for (const part of parts.splice(0).reverse())
      await part.stop().catch((err: Error) => console.error(`cairn: stopping the ${part.name} failed: ${err.message}`));
  })();
  return stopping;
}

class Interrupted extends Error {}

/** Records a started part; when a signal came while it was starting, startup goes no further. */
function started(name: string, stop: () => Promise<unknown>): void {
  parts.push({ name, stop });
  if (shutdownRequested) throw new Interrupted(`${name}: interrupted`);
}

function portInUse(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE';
}

async function main(): Promise<void> {
  const base = loadConfig();
  // This process runs a node worker (and its archive threads, which start later and take the flags).
  setWorkerV8Flags(base);
  const stack = await startLocalStack({ s3Directory: path.resolve(base.CAIRN_DATA_DIR, 's3') });
  started('local stack', () => stack.stop());
  const admin = adminToken(base);
  const config = loadConfig({ ...process.env, ...stack.env, CAIRN_ADMIN_TOKEN: admin.token });
  for (const root of config.VOLUME_ROOTS) fs.mkdirSync(root, { recursive: true });

  const runtime = createRuntime(config, { name: 'all-in-one' });
  started('connections', () => runtime.close());
  // The workers' metrics join the gateway's /metrics (process metrics once, from the gateway); also
  // on their own port when WORKER_METRICS_PORT is set.
  const workerMetrics = await startWorkerMetrics(runtime, { defaultMetrics: false });
  started('worker metrics', async () => workerMetrics.server?.close());
  const gateway = await startGateway(runtime, { extraMetrics: [workerMetrics.metrics.registry] }).catch((err: unknown) => {
    if (!portInUse(err)) throw err;
    throw new CairnError(
      'conflict',
      `port ${config.PORT} on ${config.HOST} is already in use (another Cairn?); ` +
        `stop what listens there or choose another port, e.g. PORT=${config.PORT + 1} npm start`,
    );
  });
  started('gateway', () => gateway.close());
  const control = await startControlWorker({ ...runtime, metrics: workerMetrics.metrics });
  started('control worker', () => control.close());
  const node = await startNodeWorker({ ...runtime, metrics: workerMetrics.metrics });
  started('node worker', () => node.close());

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
}

const startup = main();
startup.catch(async (err: unknown) => {
  if (shutdownRequested) return; // the signal handler stops everything
  console.error(err instanceof CairnError || err instanceof Error ? `cairn: ${err.message}` : err);
  await stopAll();
  process.exit(1);
});

// SIGINT, SIGTERM, SIGHUP: the step starting now finishes (so nothing it starts is left running),
// then everything stops and the process exits. A second signal exits without waiting.
const SIGNAL_EXIT: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
for (const [signal, code] of Object.entries(SIGNAL_EXIT) as [NodeJS.Signals, number][]) {
  process.on(signal, () => {
    if (shutdownRequested) process.exit(code);
    shutdownRequested = true;
    console.log(`\n${signal}: stopping Cairn...`);
    void startup
      .catch(() => undefined)
      .then(stopAll)
      .then(() => process.exit(0));
  });
}
