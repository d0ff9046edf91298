export * from './ids.ts';
export * from './errors.ts';
export * from './config/config.ts';
export * from './db/prisma.ts';
export * from './queue/redis.ts';
export * from './health/readiness.ts';
export * from './logging/logger.ts';
