// A node worker in a process of its own, for tests that SIGKILL it mid-job.
import { loadConfig } from '@cairn/core';
import { createRuntime } from '@cairn/core/runtime.ts';
import { startNodeWorker } from '@cairn/worker/node/node-worker.ts';

const runtime = createRuntime(loadConfig(), { name: 'test-node-worker' });
const lock = Number(process.env.CAIRN_TEST_LOCK_MS ?? 30_000);
await startNodeWorker({ ...runtime, lockDurationMs: lock, stalledIntervalMs: Math.max(1000, lock / 2) });
process.stdout.write('node worker ready\n');
