import { Redis, type RedisOptions } from 'ioredis';

/**
 * Redis connections for BullMQ: `maxRetriesPerRequest: null` is required by its blocking
 * commands; reconnects back off up to 2 s so a Redis restart is ridden out, not fatal.
 */
export function createRedis(url: string, options: RedisOptions = {}): Redis {
  const redis = new Redis(url, {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    ...options,
  });
  // Connection errors surface through readiness checks and BullMQ; an unhandled 'error' would crash.
  redis.on('error', () => {});
  return redis;
}
