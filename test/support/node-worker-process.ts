// A node worker in a process of its own, for tests that SIGKILL it mid-job.
import { loadConfig } from '@cairn/core';
import { createRuntime } from '@cairn/core/runtime.ts';
import { startWorkerMetrics } from '@cairn/worker/metrics/process-metrics.ts';
import { startNodeWorker } from '@cairn/worker/node/node-worker.ts';

const runtime = createRuntime(loadConfig(), { name: 'test-node-worker' });
const lock = Number(process.env.CAIRN_TEST_LOCK_MS ?? 30_000);
// As the worker's main: /metrics on WORKER_METRICS_PORT when set (its URL printed for the test).
const { metrics, server } = await startWorkerMetrics(runtime);
await startNodeWorker({ ...runtime, lockDurationMs: lock, stalledIntervalMs: Math.max(1000, lock / 2), metrics });
if (server) process.stdout.write(`worker metrics at ${server.url}\n`);
process.stdout.write('node worker ready\n');
