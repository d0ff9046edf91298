import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { aptInstall, findBinary, isLoopback, spawnService, waitFor, type Log, type Started } from './process.ts';

async function answers(url: string): Promise<boolean> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 2000 });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

/** Uses the Redis at `url` when it answers; otherwise starts a throwaway `redis-server` (no persistence) on its port. */
export async function ensureRedis(url: string, log: Log): Promise<{ url: string; started?: Started }> {
  if (await answers(url)) {
    log(`redis: using the server at ${new URL(url).host}`);
    return { url };
  }
  const u = new URL(url);
  if (!isLoopback(u.hostname)) throw new Error(`redis: nothing answers at ${u.host} and it is not a loopback address, so no local one can stand in`);
  const binary =
    findBinary('redis-server', ['/usr/bin', '/usr/sbin', '/usr/local/bin']) ??
    (aptInstall('redis-server', log) ? findBinary('redis-server', ['/usr/bin']) : null);
  if (!binary) throw new Error('redis: no server answers and redis-server is not installed (install the Debian package "redis-server" or start one)');
  const port = Number(u.port || 6379);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-redis-'));
  const { child, started } = spawnService(
    'redis',
    binary,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    path.join(dir, 'server.log'),
  );
  await waitFor(`redis on port ${port}`, () => answers(url), 15_000, child);
  log(`redis: started a throwaway server on 127.0.0.1:${port}`);
  return {
    url,
    started: {
      name: 'redis',
      async stop() {
        await started.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    },
  };
}
