/**
 * `npm start` (scripts/start.ts) as a user runs it: the real npm, its own database, Redis key
 * prefix, data dir and a local s3rver it starts on a free port. What it starts must be gone when
 * it stops: after a taken gateway port, and after SIGINT to the npm process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis } from '@cairn/core';
import { dropDatabase, withDatabase } from '../../scripts/local-stack/postgres.ts';
import { freePort, tcpAnswers } from '../../scripts/local-stack/process.ts';
import { deleteKeysUnder } from '../support/redis-keys.ts';

const runId = `${process.env.CAIRN_TEST_RUN_ID ?? 'dev'}-${process.pid}`;
const database = `cairn_test_start_${runId.replace(/[^a-z0-9_]/gi, '_')}`.toLowerCase();
const queuePrefix = `{cairn-test-start-${runId}}`;

interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** `npm start` with its own everything; the S3 endpoint is a free loopback port, so it starts its s3rver there. */
function npmStart(dataDir: string, port: number, s3Port: number): Run {
  let output = '';
  const child = spawn('npm', ['start'], {
    env: {
      ...process.env,
      DATABASE_URL: withDatabase(process.env.DATABASE_URL!, database),
      QUEUE_PREFIX: queuePrefix,
      S3_ENDPOINT: `http://127.0.0.1:${s3Port}`,
      S3_PREFIX: '',
      CAIRN_DATA_DIR: dataDir,
      CAIRN_ADMIN_TOKEN: '',
      VOLUME_ROOTS: path.join(dataDir, 'volumes'),
      NODE_ID: `start-test-${runId}`,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/** Pids of every process below `pid` (from /proc). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command name (field 2) may hold spaces: the parent pid is the 2nd field after ')'.
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      /* exited meanwhile */
    }
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/** Running (an exited process not yet reaped, a zombie, counts as gone). */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function waitFor(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('npm start', () => {
  let dataDir: string;
  const runs: Run[] = [];

  beforeAll(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-start-'));
  });
  afterAll(async () => {
    for (const run of runs) if (run.child.exitCode === null) run.child.kill('SIGKILL');
    const redis = createRedis(process.env.REDIS_URL!, { lazyConnect: true });
    await redis.connect().catch(() => {});
    await deleteKeysUnder(redis, queuePrefix);
    redis.disconnect();
    await dropDatabase(process.env.DATABASE_URL!, database);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('exits non-zero naming the taken port, and leaves no s3rver running', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as net.AddressInfo).port;
    const s3Port = await freePort();
    try {
      const run = npmStart(dataDir, port, s3Port);
      runs.push(run);
      const code = await run.exited;
      expect(code, run.output()).toBe(1);
      expect(run.output()).toContain(`s3: started the fixed s3rver at http://127.0.0.1:${s3Port}`);
      expect(run.output()).toContain(`port ${port} on 127.0.0.1 is already in use`);
      expect(run.output()).toContain(`PORT=${port + 1} npm start`);
      expect(run.output()).not.toMatch(/\n\s+at /); // no stack trace
      expect(await tcpAnswers('127.0.0.1', s3Port)).toBe(false);
    } finally {
      taken.close();
    }
  }, 120_000);

  it('SIGINT to the npm process stops the gateway, the workers and the s3rver within 5 s', async () => {
    const port = await freePort();
    const s3Port = await freePort();
    const run = npmStart(dataDir, port, s3Port);
    runs.push(run);
    await waitFor('Cairn is running', () => run.output().includes('Cairn is running') || run.child.exitCode !== null, 90_000);
    expect(run.output()).toContain(`Cairn is running (all-in-one): http://127.0.0.1:${port}`);
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    // The processes below npm: the node running start.ts and the s3rver it started.
    const tree = descendants(run.child.pid!);
    expect(tree.length).toBeGreaterThanOrEqual(2);
    expect(await tcpAnswers('127.0.0.1', s3Port)).toBe(true);
    // The all-in-one runs its node worker: glibc's arenas are capped from the process start on.
    const cairn = tree.find((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('scripts/start.ts'));
    expect(cairn, 'no process runs scripts/start.ts').toBeDefined();
    expect(fs.readFileSync(`/proc/${cairn}/environ`, 'utf8').split('\0')).toContain('MALLOC_ARENA_MAX=2');

    const sent = Date.now();
    run.child.kill('SIGINT');
    const code = await Promise.race([run.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 5000))]);
    expect(code, run.output()).not.toBe('timeout');
    await waitFor('every child to exit', () => tree.every((pid) => !alive(pid)), 5000 - (Date.now() - sent));
    expect(Date.now() - sent).toBeLessThan(5000);
    expect(run.output()).toContain('SIGINT: stopping Cairn...');
    expect(await tcpAnswers('127.0.0.1', port)).toBe(false);
    expect(await tcpAnswers('127.0.0.1', s3Port)).toBe(false);
  }, 120_000);
});
