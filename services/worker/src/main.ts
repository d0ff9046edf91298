import { parseArgs } from 'node:util';
import { loadConfig } from '@cairn/core';
import { createRuntime } from '@cairn/core/runtime.ts';
import { startControlWorker } from './control/control-worker.ts';
import { startWorkerMetrics } from './metrics/process-metrics.ts';
import { setWorkerV8Flags } from './node/memory-flags.ts';
import { startNodeWorker } from './node/node-worker.ts';

/**
 * Worker entry point: `--node <id>` runs a node worker (volume roots from VOLUME_ROOTS),
 * `--control` a control worker. Both may be given.
 */
async function main(): Promise<void> {
  // Node 20 is Cairn's fixed runtime: the AWS SDK's notice about a future Node 22 floor is noise.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const { values } = parseArgs({ options: { node: { type: 'string' }, control: { type: 'boolean', default: false } } });
  if (!values.node && !values.control) {
    console.error('usage: worker --node <nodeId> [--control] | --control');
    process.exit(2);
  }
  const config = loadConfig();
  if (values.node) setWorkerV8Flags(config);
  const runtime = createRuntime(config, { name: values.node ? 'node-worker' : 'control-worker' });
  // glibc reads MALLOC_ARENA_MAX and MALLOC_MMAP_THRESHOLD_ only at process start, and V8 sizes
  // the main thread's young generation then too: npm start, `npm run worker` and the image set
  // them; a node worker started otherwise says so (uncapped arenas, freed buffers kept in the heap
  // and a young generation grown to 48 MiB cost it tens of MiB of RSS each).
  const unset = ['MALLOC_ARENA_MAX', 'MALLOC_MMAP_THRESHOLD_'].filter((name) => !process.env[name]);
  const semiSpaceSet = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => a.startsWith('--max-semi-space-size'));
  if (!semiSpaceSet) unset.push('--max-semi-space-size');
  if (values.node && process.platform === 'linux' && unset.length)
    runtime.logger.warn(
      `${unset.join(' and ')} not set: start node workers with MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=4194304 ` +
        'and node --max-semi-space-size=2 (npm run worker and the image do) to cap their memory',
    );
  const stops: Array<() => Promise<void>> = [];
  // One /metrics per process (WORKER_METRICS_PORT), shared by its node and control workers.
  const { metrics, server } = await startWorkerMetrics(runtime);
  if (values.node) stops.push((await startNodeWorker({ ...runtime, nodeId: values.node, metrics })).close);
  if (values.control) stops.push((await startControlWorker({ ...runtime, metrics })).close);
  if (server) stops.push(server.close);
  const shutdown = async (signal: string) => {
    runtime.logger.info({ signal }, 'shutting down');
    for (const stop of stops) await stop().catch((err: Error) => runtime.logger.warn({ err: err.message }, 'stopping a worker failed'));
    await runtime.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((err: Error) => {
  console.error(err.message);
  process.exit(1);
});
