/**
 * The production build (`npm run build`, scripts/build.mjs) and the image that runs it. Docker
 * does not run here, so this checks what the image is made of: the Dockerfile's final stage runs
 * `node` on files the build produces, holds no compiler or test code, and the compiled gateway
 * and node worker, run by plain node, serve the API and do a backup and a restore.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis } from '@cairn/core';
import { freePort } from '../../scripts/local-stack/process.ts';
import { deleteKeysUnder } from '../support/redis-keys.ts';

const root = path.resolve(import.meta.dirname, '../..');
const tag = `${process.env.CAIRN_TEST_RUN_ID ?? 'dev'}-${process.pid}`;
const outdir = path.join(root, '.scratch', `build-test-${tag}`);

/** The instructions of the Dockerfile's last stage (the image), continuation lines joined. */
function finalStage(): string[] {
  const text = fs.readFileSync(path.join(root, 'infra/Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const lines = text.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
  const last = lines.findLastIndex((l) => /^FROM\s/i.test(l));
  return lines.slice(last);
}

/** `dist/...` paths named by the image's CMD and by every command of compose and Kubernetes. */
function commandTargets(): string[] {
  const cmd = finalStage().find((l) => /^CMD\s/i.test(l))!;
  const sources = [cmd, fs.readFileSync(path.join(root, 'docker-compose.yml'), 'utf8'), fs.readFileSync(path.join(root, 'infra/k8s/cairn.yaml'), 'utf8')];
  return [...new Set(sources.flatMap((s) => [...s.matchAll(/\bdist\/[\w./-]+/g)].map((m) => m[0])))];
}

describe('production build', () => {
  const children: ChildProcess[] = [];
  const queuePrefix = `{cairn-build-${tag}}`;
  let volumeRoot: string;

  beforeAll(() => {
    // Into a directory of its own inside the project (packages resolve from its node_modules).
    execFileSync('npm', ['run', 'build', '--', '--outdir', outdir, '--skip-ui'], { cwd: root, stdio: 'pipe' });
    volumeRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-build-vol-'));
  }, 120_000);
  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    const redis = createRedis(process.env.REDIS_URL!, { lazyConnect: true });
    await redis.connect().catch(() => {});
    await deleteKeysUnder(redis, queuePrefix);
    redis.disconnect();
    fs.rmSync(outdir, { recursive: true, force: true });
    fs.rmSync(volumeRoot, { recursive: true, force: true });
  });

  it('the image runs node on JavaScript files the build produces', () => {
    const cmd = finalStage().find((l) => /^CMD\s/i.test(l));
    expect(cmd).toBeDefined();
    const argv = JSON.parse(cmd!.replace(/^CMD\s+/i, '')) as string[];
    expect(argv[0]).toBe('node');
    expect(argv[1]).toMatch(/^dist\/.+\.js$/);
    const targets = commandTargets();
    expect(targets).toEqual(expect.arrayContaining(['dist/gateway.js', 'dist/worker.js']));
    for (const target of targets) {
      const file = path.join(outdir, target.replace(/^dist\//, ''));
      expect(fs.existsSync(file), `${target} is not in the build output`).toBe(true);
      expect(file).toMatch(/\.js$/);
      execFileSync(process.execPath, ['--check', file]); // parses as JavaScript
    }
    expect(fs.existsSync(path.join(outdir, 'archive.worker.cjs'))).toBe(true);
  });

  it('the final image stage has no compiler, no TypeScript sources and no test code', () => {
    const stage = finalStage();
    expect(stage.join('\n')).not.toMatch(/apt-get|g\+\+|\bmake\b|python3/);
    expect(stage.join('\n')).not.toMatch(/\btsx\b/);
    const copies = stage.filter((l) => /^COPY\s/i.test(l));
    expect(copies.some((l) => l.includes('/app/dist'))).toBe(true);
    for (const copy of copies) {
      expect(copy).not.toMatch(/\btest\b|\/src\b|services\s*\.\/services\s*$/);
    }
    expect(stage.some((l) => /^ENV\s+MALLOC_ARENA_MAX=2/.test(l))).toBe(true);
    // Every module compiled into the output, from the source maps: services only.
    const sources = fs
      .readdirSync(outdir)
      .filter((f) => f.endsWith('.map'))
      .flatMap((f) => (JSON.parse(fs.readFileSync(path.join(outdir, f), 'utf8')) as { sources: string[] }).sources);
    expect(sources.length).toBeGreaterThan(50);
    expect(sources.filter((s) => /(^|\/)(test|scripts|bench)\//.test(s) || s.includes('s3rver'))).toEqual([]);
    for (const f of fs.readdirSync(outdir).filter((f) => /\.(c?js)$/.test(f))) {
      expect(fs.readFileSync(path.join(outdir, f), 'utf8'), f).not.toMatch(/from ['"]s3rver['"]|require\(['"]s3rver['"]\)|tsx\/esm/);
    }
  });

  it('the build output loads only production dependencies (the final image installs no dev dependencies)', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const imported = new Set<string>();
    for (const f of fs.readdirSync(outdir).filter((f) => /\.c?js$/.test(f))) {
      const code = fs.readFileSync(path.join(outdir, f), 'utf8');
      for (const m of code.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\(\s*)["']((?:@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*)(?:\/[\w./-]*)?["']/g)) {
        imported.add(m[1]!);
      }
    }
    const packages = [...imported].filter((name) => !name.startsWith('node:') && !builtinModules.includes(name));
    expect(packages).toEqual(expect.arrayContaining(['bullmq', 'koa', '@prisma/client', 'zstd-napi']));
    expect(packages.filter((name) => !(name in pkg.dependencies))).toEqual([]);
  });

  it('the compiled gateway and node worker, run by plain node, back up and restore', async () => {
    const port = await freePort();
    const adminToken = `cairn_${randomBytes(24).toString('base64url')}`;
    const nodeId = `build-${tag}`;
    const env = {
      ...process.env,
      QUEUE_PREFIX: queuePrefix,
      HOST: '127.0.0.1',
      PORT: String(port),
      NODE_ID: nodeId,
      VOLUME_ROOTS: volumeRoot,
      CAIRN_ADMIN_TOKEN: adminToken,
      LOG_LEVEL: 'warn',
      NODE_OPTIONS: '', // no loader inherited from the test runner: plain node
    };
    let output = '';
    const run = (args: string[]) => {
      const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
      children.push(child);
      return child;
    };
    run([path.join(outdir, 'gateway.js')]);
    run([path.join(outdir, 'worker.js'), '--node', nodeId]);
    const url = `http://127.0.0.1:${port}`;
    const api = async (method: string, route: string, body?: unknown) => {
      const res = await fetch(`${url}${route}`, {
        method,
        headers: { authorization: `Bearer ${adminToken}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      return { status: res.status, body: (await res.json()) as any };
    };
    const until = async <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const v = await probe().catch(() => undefined);
        if (v !== undefined) return v;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; output:\n${output}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };

    const ready = await until('the compiled gateway to be ready', async () => {
      const res = await fetch(`${url}/readyz`);
      return res.status === 200 ? ((await res.json()) as { status: string }) : undefined;
    });
    expect(ready.status).toBe('ready');
    expect((await fetch(`${url}/healthz`)).status).toBe(200);

    // The node registers itself when its worker starts, independently of the gateway's readiness.
    await until('the compiled node worker to register', async () => ((await api('GET', `/v1/nodes/${nodeId}`)).status === 200 ? true : undefined));

    const dir = path.join(volumeRoot, 'app', 'data');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'hello.txt'), 'hello from the build test\n');
    fs.writeFileSync(path.join(dir, 'random.bin'), randomBytes(3 << 20));
    const instance = await api('POST', '/v1/instances', { name: 'app', nodeId, tenant: `build-${tag}`, volumes: [{ name: 'data', hostPath: dir }] });
    expect(instance.status, JSON.stringify(instance.body)).toBe(201);
    const waitJob = (id: string) =>
      until(`job ${id}`, async () => {
        const job = await api('GET', `/v1/jobs/${id}`);
        return ['succeeded', 'failed', 'cancelled', 'interrupted'].includes(job.body.status) ? job.body : undefined;
      });
    const backup = await api('POST', `/v1/instances/${instance.body.id}/backups`, {});
    expect(backup.status, JSON.stringify(backup.body)).toBe(202);
    expect((await waitJob(backup.body.job.id)).status).toBe('succeeded');

    const original = fs.readFileSync(path.join(dir, 'random.bin'));
    fs.writeFileSync(path.join(dir, 'hello.txt'), 'changed\n');
    fs.rmSync(path.join(dir, 'random.bin'));
    const restore = await api('POST', `/v1/backups/${backup.body.backup.id}/restore`, {});
    expect(restore.status, JSON.stringify(restore.body)).toBe(202);
    expect((await waitJob(restore.body.job.id)).status).toBe('succeeded');
    expect(fs.readFileSync(path.join(dir, 'hello.txt'), 'utf8')).toBe('hello from the build test\n');
    expect(fs.readFileSync(path.join(dir, 'random.bin')).equals(original)).toBe(true);
  }, 90_000);
});
