import type { Redis } from 'ioredis';

/** Removes every key under a BullMQ prefix, so test runs leave nothing behind in a shared Redis. */
export async function deleteKeysUnder(redis: Redis, prefix: string): Promise<void> {
  if (redis.status !== 'ready') return;
  for await (const keys of redis.scanStream({ match: `${prefix}:*`, count: 500 }) as AsyncIterable<string[]>) {
    if (keys.length) await redis.unlink(...keys);
  }
}
