import type { Redis } from 'ioredis';
import type { Config } from './config/config.ts';
import { createLogger, type Logger } from './logging/logger.ts';
import { JobQueues } from './queue/job-queues.ts';
import { createRedis } from './queue/redis.ts';
import { PrismaRecords } from './records/prisma.records.ts';
import type { Records } from './records/records.ts';
import type { ObjectStore } from './storage/object-store.ts';
import { S3ObjectStore } from './storage/s3.object-store.ts';

/**
 * The shared I/O of one Cairn process (STYLE.md "Composition roots own connections"): the
 * records (one Prisma pool), Redis connections, the producer side of the queues and the object
 * store. Built once by each process's main from the validated config; the gateway, control
 * worker and node worker starters take it, and `close()` releases everything it opened. `new
 * Queue`, `new Redis` and `new PrismaClient` appear nowhere else in the services.
 */
export interface Runtime {
  config: Config;
  logger: Logger;
  records: Records;
  store: ObjectStore;
  /** Producer side of every queue (enqueue, cancel, schedulers), on its own Redis connection. */
  queues: JobQueues;
  /** The Redis connection `queues` uses (readiness checks, pub/sub publishing). */
  redis: Redis;
  /**
   * A new Redis connection for something that blocks or subscribes (a BullMQ Worker, a pub/sub
   * listener); the runtime closes it with everything else.
   */
  connection(purpose: string): Redis;
  close(): Promise<void>;
}

export interface RuntimeParts {
  logger?: Logger;
  name?: string;
  /** Replaces the Postgres records (unit tests: MemoryRecords). */
  records?: Records;
  /** Replaces the S3 object store (tests: a filesystem or in-memory store). */
  store?: ObjectStore;
  /** Pool size of the Postgres records. */
  databasePoolSize?: number;
}

/** Builds the runtime of one process (composition roots and test harnesses only). */
export function createRuntime(config: Config, parts: RuntimeParts = {}): Runtime {
  const logger = parts.logger ?? createLogger({ level: config.LOG_LEVEL, name: parts.name });
  const records = parts.records ?? PrismaRecords.open(config.DATABASE_URL, { max: parts.databasePoolSize });
  const store = parts.store ?? createObjectStore(config);
  const redis = createRedis(config.REDIS_URL);
  const queues = new JobQueues(redis, config.QUEUE_PREFIX);
  const connections: Redis[] = [];
  let closing: Promise<void> | undefined;
  return {
    config,
    logger,
    records,
    store,
    queues,
    redis,
    connection(purpose) {
      const c = createRedis(config.REDIS_URL, { connectionName: `cairn:${purpose}` });
      connections.push(c);
      return c;
    },
    close: () =>
      (closing ??= (async () => {
        // A Redis that never answered would make BullMQ's close wait forever: bounded.
        await Promise.race([queues.close().catch((err: Error) => logger.warn({ err: err.message }, 'closing the queues failed')), delay(2000)]);
        for (const c of [redis, ...connections]) c.disconnect();
        await records.close().catch((err: Error) => logger.warn({ err: err.message }, 'closing the records failed'));
        await (store as { close?: () => Promise<void> }).close?.();
      })()),
  };
}

export function createObjectStore(config: Config): ObjectStore {
  return new S3ObjectStore({
    endpoint: config.S3_ENDPOINT || undefined,
    region: config.S3_REGION,
    bucket: config.S3_BUCKET,
    prefix: config.S3_PREFIX,
    accessKeyId: config.S3_ACCESS_KEY_ID,
    secretAccessKey: config.S3_SECRET_ACCESS_KEY,
    forcePathStyle: config.S3_FORCE_PATH_STYLE,
    checksumMode: config.S3_CHECKSUM_MODE,
    partSize: config.S3_PART_SIZE,
    requestTimeoutMs: config.S3_REQUEST_TIMEOUT,
    socketTimeoutMs: config.S3_SOCKET_TIMEOUT,
    queueSize: config.S3_UPLOAD_QUEUE_SIZE,
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
