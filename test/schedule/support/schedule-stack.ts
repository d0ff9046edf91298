import { randomBytes } from 'node:crypto';
import { Worker, type Job as BullJob } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  type Config,
  createLogger,
  createRedis,
  enqueueRetention,
  type JobQueues,
  type Logger,
  loadConfig,
  newId,
  nodeQueueName,
  PrismaRecords,
  type PrismaClient,
  ScheduleService,
} from '@cairn/core';
import { createRuntime, type Runtime } from '@cairn/core/runtime.ts';
import type { ObjectStore } from '@cairn/core/storage/object-store.ts';
import { startControlWorker, type ControlWorkerOptions } from '@cairn/worker/control/control-worker.ts';
import { createDatabase, dropDatabase, migrate, withDatabase } from '../../../scripts/local-stack/postgres.ts';

/**
 * An isolated world for schedule, retention and sweep tests: a database of its own (created and
 * migrated here), a Redis key prefix of its own and an S3 prefix of its own. Sweeps act on
 * everything in their database and under their prefix, and a flush wipes a whole prefix, so
 * sharing the run's (used by other test files at the same time) would make tests interfere.
 */
export interface ScheduleStack {
  config: Config;
  /** The process runtime the services and the control worker share (records, queues, store, Redis). */
  runtime: Runtime;
  records: PrismaRecords;
  /** The records' Prisma client, for tests that read rows directly. */
  prisma: PrismaClient;
  store: ObjectStore;
  redis: Redis;
  queues: JobQueues;
  logger: Logger;
  /** ScheduleService accepting 6-field (seconds) expressions. */
  schedules: ScheduleService;
  startControl(options?: Partial<ControlWorkerOptions>): Promise<{ close(): Promise<void> }>;
  /** A tenant, a node (heartbeating now) and an instance with the given volumes. */
  seedInstance(options?: { volumes?: string[]; nodeId?: string }): Promise<{ instanceId: string; nodeId: string; tenantId: string }>;
  /** Deletes every Redis key under this stack's prefix (and only those). */
  flushRedis(): Promise<number>;
  close(): Promise<void>;
}

let counter = 0;

export async function startScheduleStack(): Promise<ScheduleStack> {
  const tag = `${process.env.CAIRN_TEST_RUN_ID ?? 'dev'}_${process.pid}_${++counter}_${randomBytes(3).toString('hex')}`;
  const baseUrl = process.env.DATABASE_URL!;
  const database = `cairn_sched_${tag}`.toLowerCase();
  await createDatabase(baseUrl, database);
  migrate(withDatabase(baseUrl, database));
  const config = loadConfig({
    ...process.env,
    DATABASE_URL: withDatabase(baseUrl, database),
    QUEUE_PREFIX: `{cairn-sched-${tag}}`,
    S3_PREFIX: `${process.env.S3_PREFIX ?? 'dev'}/sched-${tag}`,
    LOG_LEVEL: process.env.CAIRN_TEST_LOG_LEVEL ?? 'silent',
    COMPRESSION: 'gzip',
  });
  const logger = createLogger({ level: config.LOG_LEVEL, name: 'schedule-test' });
  const records = PrismaRecords.open(config.DATABASE_URL, { max: 8 });
  const runtime = createRuntime(config, { logger, records });
  const { prisma } = records;
  const { store, redis, queues } = runtime;
  const schedules = new ScheduleService({ records, queues, config, logger, allowSeconds: true });
  const workers: { close(): Promise<void> }[] = [];
  const flushRedis = async (): Promise<number> => {
    let deleted = 0;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${config.QUEUE_PREFIX}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) deleted += await redis.del(...keys);
    } while (cursor !== '0');
    return deleted;
  };

  return {
    config,
    runtime,
    records,
    prisma,
    store,
    redis,
    queues,
    logger,
    schedules,
    async startControl(options = {}) {
      const w = await startControlWorker({ ...runtime, sweepEveryMs: null, retentionEveryMs: null, reconcileEveryMs: null, ...options });
      workers.push(w);
      let closed = false;
      return {
        async close() {
          if (closed) return;
          closed = true;
          await w.close();
        },
      };
    },
    async seedInstance(options = {}) {
      const tenant = await records.tenants.ensure(`t-${newId()}`, newId());
      const nodeId = options.nodeId ?? `node-${newId().toLowerCase()}`;
      await records.nodes.heartbeat(nodeId, { volumeRoots: ['/srv'], version: 'test', lastHeartbeatAt: new Date(), capacity: {} });
      const instanceId = newId();
      await records.instances.create({
        id: instanceId,
        tenantId: tenant.id,
        name: `app-${instanceId.toLowerCase()}`,
        nodeId,
        volumes: (options.volumes ?? ['data']).map((name) => ({ id: newId(), name, hostPath: `/srv/${instanceId}/${name}`, excludes: [] })),
      });
      return { instanceId, nodeId, tenantId: tenant.id };
    },
    flushRedis,
    async close() {
      for (const w of workers) await w.close().catch(() => {});
      await flushRedis().catch(() => {});
      await runtime.close();
      await dropDatabase(baseUrl, database).catch(() => {});
    },
  };
}

export interface FakeNodeWorker {
  /** Cairn job ids this worker has taken, in order. */
  taken: string[];
  close(): Promise<void>;
}

/**
 * Stands in for a node worker so schedules can be tested on their own: takes `backup` jobs from
 * `node.<nodeId>`, marks them running, and after `holdMs` completed (Backup `completed`, Job
 * `succeeded`), then asks for retention as the backup pipeline does after a scheduled backup.
 */
export function startFakeNodeWorker(stack: ScheduleStack, nodeId: string, options: { holdMs?: number } = {}): FakeNodeWorker {
  const taken: string[] = [];
  const connection = createRedis(stack.config.REDIS_URL);
  const worker = new Worker(
    nodeQueueName(nodeId),
    async (job: BullJob) => {
      const jobId = (job.data as { jobId: string }).jobId;
      taken.push(jobId);
      const { jobs, backups } = stack.records;
      const row = await jobs.get(jobId);
      const backup = row?.backupId ? await backups.get(row.backupId) : null;
      if (!backup) return;
      await jobs.transition(jobId, ['queued'], 'running', { startedAt: new Date() });
      await backups.transition(backup.id, ['pending'], 'running', { startedAt: new Date() });
      await new Promise((r) => setTimeout(r, options.holdMs ?? 20));
      await backups.transition(backup.id, ['running'], 'completed', { completedAt: new Date(), sizeBytes: 1n });
      await jobs.transition(jobId, ['running'], 'succeeded');
      if (backup.trigger === 'schedule' && backup.scheduleId) await enqueueRetention(stack.queues, backup.scheduleId);
    },
    { connection, prefix: stack.config.QUEUE_PREFIX, concurrency: 2 },
  );
  worker.on('error', () => {});
  return {
    taken,
    async close() {
      await worker.close();
      connection.disconnect();
    },
  };
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(what: string, check: () => Promise<T | null | undefined | false>, timeoutMs = 20_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
      last = value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
