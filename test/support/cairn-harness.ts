import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type PrismaRecords, createLogger, createRedis, loadConfig, type Config, type PrismaClient } from '@cairn/core';
import { createRuntime, type Runtime } from '@cairn/core/runtime.ts';
import { startGateway } from '@cairn/gateway/main.ts';
import { startControlWorker } from '@cairn/worker/control/control-worker.ts';
import { startNodeWorker } from '@cairn/worker/node/node-worker.ts';
import { deleteKeysUnder } from './redis-keys.ts';

let counter = 0;

export interface Cairn {
  url: string;
  adminToken: string;
  config: Config;
  runtime: Runtime;
  /** The runtime's own Prisma client, for tests to look at (and arrange) rows directly. */
  prisma: PrismaClient;
  nodeId: string;
  /** A tenant name of this harness's own: test files share the run's database. */
  tenant: string;
  volumeRoot: string;
  /** Authenticated JSON request as admin (or with the given token). */
  api<T = any>(method: string, route: string, body?: unknown, token?: string): Promise<{ status: number; body: T }>;
  waitForJob(jobId: string, until?: (job: any) => boolean, timeoutMs?: number): Promise<any>;
  /**
   * Starts the node worker as its own process (so a test can SIGKILL it); `env` overrides its
   * settings (another NODE_ID and VOLUME_ROOTS: a second host).
   */
  spawnNodeWorker(env?: Record<string, string>): ChildProcess;
  startInProcessNodeWorker(): Promise<void>;
  stopInProcessNodeWorker(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Runs a whole Cairn against the run's real Postgres, Redis and S3 (from the global setup):
 * gateway on an ephemeral port, control worker, and a node worker with its own volume root and
 * node id, all under a queue prefix of its own.
 */
export async function startCairn(
  opts: { nodeWorker?: 'in-process' | 'none'; compression?: string; env?: Record<string, string>; reconcileLostJobs?: boolean } = {},
): Promise<Cairn> {
  const n = ++counter;
  const tag = `${process.env.CAIRN_TEST_RUN_ID ?? 'dev'}-${process.pid}-${n}`;
  const nodeId = `node-${tag}`;
  const volumeRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-e2e-vol-'));
  const adminToken = `cairn_${randomBytes(24).toString('base64url')}`;
  const env = {
    ...process.env,
    QUEUE_PREFIX: `{cairn-e2e-${tag}}`,
    PORT: '0',
    NODE_ID: nodeId,
    VOLUME_ROOTS: volumeRoot,
    CAIRN_ADMIN_TOKEN: adminToken,
    LOG_LEVEL: process.env.CAIRN_TEST_LOG_LEVEL ?? 'warn',
    ARCHIVE_BLOCK_SIZE: '1MiB',
    S3_PART_SIZE: '5MiB',
    ...(opts.compression ? { COMPRESSION: opts.compression } : {}),
    ...opts.env,
  };
  const config = loadConfig(env);
  const logger = createLogger({ level: config.LOG_LEVEL, name: 'e2e' });
  const runtime = createRuntime(config, { logger });
  const gateway = await startGateway(runtime);
  // Periodic sweeps and lost-job checks would act on other test files' rows in the shared run
  // database (their queues are under other prefixes); a suite with a database of its own turns them on.
  const control = await startControlWorker({
    ...runtime,
    sweepEveryMs: null,
    retentionEveryMs: null,
    ...(opts.reconcileLostJobs ? {} : { reconcileEveryMs: null }),
  });
  let node: { close(): Promise<void> } | null = null;
  const children: ChildProcess[] = [];

  const api: Cairn['api'] = async (method, route, body, token = adminToken) => {
    const res = await fetch(`${gateway.url}${route}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    let parsed: any = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed };
  };

  const cairn: Cairn = {
    url: gateway.url,
    adminToken,
    config,
    runtime,
    prisma: (runtime.records as PrismaRecords).prisma,
    nodeId,
    tenant: `tenant-${tag}`,
    volumeRoot,
    api,
    async waitForJob(jobId, until = (j) => ['succeeded', 'failed', 'cancelled', 'interrupted'].includes(j.status), timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      let last: any;
      while (Date.now() < deadline) {
        const res = await api('GET', `/v1/jobs/${jobId}`);
        last = res.body;
        if (res.status === 200 && until(res.body)) return res.body;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`job ${jobId} did not reach the expected state in ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
    },
    spawnNodeWorker(extra = {}) {
      // `node --import tsx`, not the tsx wrapper: SIGKILL must hit the worker itself.
      const child = spawn(process.execPath, ['--import', 'tsx', path.resolve('test/support/node-worker-process.ts')], {
        env: { ...env, CAIRN_TEST_LOCK_MS: '5000', ...extra },
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      children.push(child);
      return child;
    },
    async startInProcessNodeWorker() {
      node = await startNodeWorker({ ...runtime, lockDurationMs: 5000, stalledIntervalMs: 2000 });
    },
    async stopInProcessNodeWorker() {
      await node?.close();
      node = null;
    },
    async close() {
      for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await node?.close();
      await control.close();
      await gateway.close();
      const redis = createRedis(config.REDIS_URL, { lazyConnect: true });
      await redis.connect().catch(() => {});
      await deleteKeysUnder(redis, config.QUEUE_PREFIX);
      redis.disconnect();
      await runtime.close();
      fs.rmSync(volumeRoot, { recursive: true, force: true });
    },
  };
  if ((opts.nodeWorker ?? 'in-process') === 'in-process') await cairn.startInProcessNodeWorker();
  return cairn;
}
