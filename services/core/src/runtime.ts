import type { Config } from './config/config.ts';
import { createPrisma, type PrismaClient } from './db/prisma.ts';
import { createLogger, type Logger } from './logging/logger.ts';
import { S3ObjectStore } from './storage/s3.object-store.ts';
import type { ObjectStore } from './storage/object-store.ts';

export interface Runtime {
  config: Config;
  prisma: PrismaClient;
  store: ObjectStore;
  logger: Logger;
  close(): Promise<void>;
}

/** The shared I/O of every Cairn process, built from the validated config (composition roots only). */
export function createRuntime(config: Config, options: { logger?: Logger; name?: string } = {}): Runtime {
  const logger = options.logger ?? createLogger({ level: config.LOG_LEVEL, name: options.name });
  const prisma = createPrisma(config.DATABASE_URL);
  const store = createObjectStore(config);
  return {
    config,
    prisma,
    store,
    logger,
    async close() {
      await prisma.$disconnect();
    },
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
  });
}
