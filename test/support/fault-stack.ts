import { spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  answers as postgresAnswers,
  clusterCommand,
  createDatabase,
  initCluster,
  migrate,
  postgresBinDir,
  withDatabase,
} from '../../scripts/local-stack/postgres.ts';
import { findBinary, freePort, spawnService, stopChild, tcpAnswers, waitFor } from '../../scripts/local-stack/process.ts';
import { startS3FaultProxy, type S3FaultProxy } from './s3-fault-proxy.ts';

/**
 * A Postgres and a Redis of a test's own, on free ports (never the machine's shared ones), that
 * the test may stop and start again, and an S3 fault proxy in front of the run's S3 server: what
 * the fault suite breaks (issue 16). `env` points Cairn at all three.
 */
export interface FaultStack {
  env: Record<string, string>;
  s3: S3FaultProxy;
  /** Fast shutdown (connections cut, as when the server goes away); resolves once it is down. */
  stopPostgres(): Promise<void>;
  /** Starts it again on the same port with the same data; resolves once it answers. */
  startPostgres(): Promise<void>;
  /** Kills Redis and starts an empty one on the same port (a restart without persistence). */
  restartRedisEmpty(): Promise<void>;
  close(): Promise<void>;
}

export async function startFaultStack(options: { s3Upstream: string; database?: string }): Promise<FaultStack> {
  const log = (m: string) => console.log(`[fault stack] ${m}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-faults-'));
  const closers: Array<() => Promise<void>> = [];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch((err: Error) => log(`stop failed: ${err.message}`));
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Postgres
    const bin = postgresBinDir(log);
    if (!bin) throw new Error('fault stack: no Postgres binaries (install the Debian package "postgresql")');
    const pgPort = await freePort();
    // A directory of its own in the temp dir: as root the cluster runs as `postgres`, which must reach it.
    const pgData = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-faults-pg-'));
    closers.push(async () => fs.rmSync(pgData, { recursive: true, force: true }));
    initCluster(bin, pgData, 'postgres');
    const serverUrl = `postgresql://postgres@127.0.0.1:${pgPort}/postgres`;
    let postgres: ChildProcess | null = null;
    const startPostgres = async () => {
      const [cmd, args] = clusterCommand(bin, pgData, pgPort);
      const { child } = spawnService('postgres', cmd, args, path.join(dir, 'postgres.log'));
      postgres = child;
      await waitFor(`postgres on port ${pgPort}`, () => postgresAnswers(serverUrl), 30_000, child);
    };
    const stopPostgres = async () => {
      const [cmd, args] = process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', path.join(bin, 'pg_ctl')]] : [path.join(bin, 'pg_ctl'), []];
      const r = spawnSync(cmd as string, [...(args as string[]), '-D', pgData, 'stop', '-m', 'fast', '-w'], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`pg_ctl stop failed: ${r.stderr || r.stdout}`);
      if (postgres) await stopChild(postgres, 5000);
      postgres = null;
    };
    await startPostgres();
    closers.push(async () => {
      if (postgres) await stopPostgres();
    });
    const database = options.database ?? 'cairn_faults';
    await createDatabase(serverUrl, database);
    migrate(withDatabase(serverUrl, database));

    // Redis
    const redisBinary = findBinary('redis-server', ['/usr/bin', '/usr/sbin', '/usr/local/bin']);
    if (!redisBinary) throw new Error('fault stack: redis-server is not installed');
    const redisPort = await freePort();
    let redis: ChildProcess | null = null;
    const startRedis = async () => {
      const args = ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
      redis = spawnService('redis', redisBinary, args, path.join(dir, 'redis.log')).child;
      await waitFor(`redis on port ${redisPort}`, () => tcpAnswers('127.0.0.1', redisPort), 15_000, redis);
    };
    await startRedis();
    closers.push(async () => {
      if (redis) await stopChild(redis, 2000);
    });

    const s3 = await startS3FaultProxy(options.s3Upstream);
    closers.push(() => s3.close());
    log(`postgres :${pgPort}, redis :${redisPort}, s3 proxy ${s3.endpoint} -> ${options.s3Upstream}`);
    return {
      env: { DATABASE_URL: withDatabase(serverUrl, database), REDIS_URL: `redis://127.0.0.1:${redisPort}`, S3_ENDPOINT: s3.endpoint },
      s3,
      stopPostgres,
      startPostgres,
      async restartRedisEmpty() {
        if (redis) {
          redis.kill('SIGKILL');
          await stopChild(redis, 1000);
        }
        await startRedis();
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
