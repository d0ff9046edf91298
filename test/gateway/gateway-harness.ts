import { randomBytes } from 'node:crypto';
import { loadConfig, PrismaRecords, type Config, type JobQueues, type PrismaClient } from '@cairn/core';
import { createRuntime, type Runtime } from '@cairn/core/runtime.ts';
import type { ObjectStore } from '@cairn/core/storage/object-store.ts';
import { startGateway } from '@cairn/gateway/main.ts';
import { deleteKeysUnder } from '../support/redis-keys.ts';

let counter = 0;

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export interface TestGateway {
  url: string;
  config: Config;
  adminToken: string;
  /** The gateway's runtime (its records, queues, store and connections). */
  runtime: Runtime;
  /** The gateway's records, seen from outside. */
  records: PrismaRecords;
  /** Direct database access for arranging rows (nodes) and asserting on them. */
  prisma: PrismaClient;
  /** The gateway's queues, seen from outside (same Redis, same prefix). */
  jobQueues: JobQueues;
  store: ObjectStore;
  /** A name unique to this gateway within the test run (tenants, nodes, instances). */
  tag: string;
  api<T = any>(
    method: string,
    route: string,
    options?: { token?: string | null; body?: unknown; headers?: Record<string, string>; raw?: string },
  ): Promise<ApiResponse<T>>;
  /** Creates a token through the API (as admin) and returns its secret and id. */
  token(role: 'admin' | 'member', tenant?: string): Promise<{ id: string; token: string }>;
  /** Inserts a Node row as a worker's self-registration would. */
  node(id: string, volumeRoots: string[], heartbeatAgoMs?: number | null): Promise<void>;
  close(): Promise<void>;
}

/**
 * A gateway on an ephemeral port over a runtime of its own against the run's Postgres, Redis and
 * S3 (global setup), with a queue prefix of its own so BullMQ assertions see only its jobs.
 */
export async function startTestGateway(env: Record<string, string> = {}): Promise<TestGateway> {
  const tag = `${process.env.CAIRN_TEST_RUN_ID ?? 'dev'}-${process.pid}-${++counter}`;
  const adminToken = `cairn_${randomBytes(32).toString('base64url')}`;
  const config = loadConfig({
    ...process.env,
    QUEUE_PREFIX: `{cairn-gw-${tag}}`,
    PORT: '0',
    HOST: '127.0.0.1',
    CAIRN_ADMIN_TOKEN: adminToken,
    LOG_LEVEL: process.env.CAIRN_TEST_LOG_LEVEL ?? 'silent',
    ...env,
  });
  const records = PrismaRecords.open(config.DATABASE_URL);
  const runtime = createRuntime(config, { name: 'gateway', records });
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  try {
    gateway = await startGateway(runtime);
  } catch (err) {
    await runtime.close();
    throw err;
  }
  const { prisma } = records;
  const { queues: jobQueues, store, redis } = runtime;

  const api: TestGateway['api'] = async (method, route, options = {}) => {
    const token = options.token === undefined ? adminToken : options.token;
    const headers: Record<string, string> = { ...(token ? { authorization: `Bearer ${token}` } : {}), ...options.headers };
    let body: string | undefined = options.raw;
    if (options.body !== undefined) {
      headers['content-type'] ??= 'application/json';
      body = JSON.stringify(options.body);
    }
    const res = await fetch(`${gateway.url}${route}`, { method, headers, body });
    const text = await res.text();
    let parsed: any = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON */
    }
    return { status: res.status, headers: res.headers, body: parsed, text };
  };

  return {
    url: gateway.url,
    config,
    adminToken,
    runtime,
    records,
    prisma,
    jobQueues,
    store,
    tag,
    api,
    async token(role, tenant) {
      const res = await api('POST', '/v1/tokens', { body: { name: `${role}-${tenant ?? 'none'}`, role, ...(tenant ? { tenant } : {}) } });
      if (res.status !== 201) throw new Error(`token creation failed: ${res.status} ${res.text}`);
      return { id: res.body.id, token: res.body.token };
    },
    async node(id, volumeRoots, heartbeatAgoMs = 0) {
      const lastHeartbeatAt = heartbeatAgoMs === null ? null : new Date(Date.now() - heartbeatAgoMs);
      await prisma.node.upsert({
        where: { id },
        create: {
          id,
          volumeRoots,
          version: 'test',
          lastHeartbeatAt,
          capacity: { roots: Object.fromEntries(volumeRoots.map((r) => [r, { freeBytes: 1e9, totalBytes: 2e9 }])), concurrency: 2 },
        },
        update: { volumeRoots, lastHeartbeatAt },
      });
    },
    async close() {
      await gateway.close();
      await deleteKeysUnder(redis, config.QUEUE_PREFIX);
      await runtime.close();
    },
  };
}
