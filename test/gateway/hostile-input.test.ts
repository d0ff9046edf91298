import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCairn, type Cairn } from '../support/cairn-harness.ts';
import { fuzzCases, seededRandom, type FuzzCase, type OpenApiDocument } from './openapi-fuzz.ts';

/**
 * Hostile input against a whole Cairn (gateway, control and node worker on the run's Postgres,
 * Redis and S3): every operation of the live /openapi.json with malformed path parameters, query
 * parameters and bodies, as an admin and as a member; oversized headers; the first use of a
 * tenant by concurrent requests; the token revocation rules.
 */

let cairn: Cairn;
let member: { id: string; token: string };
const seed: Record<string, string> = {};

interface RawResponse {
  status: number;
  contentType: string;
  text: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

/** One request with the target sent exactly as given (no URL normalisation); streams are cut after the headers. */
function send(
  c: { method: string; target: string; body?: string; contentType?: string; headers?: Record<string, string> },
  token: string,
): Promise<RawResponse> {
  const url = new URL(cairn.url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        method: c.method,
        path: c.target,
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          ...(c.body !== undefined ? { 'content-type': c.contentType ?? 'application/json', 'content-length': Buffer.byteLength(c.body) } : {}),
          ...c.headers,
        },
        timeout: 15_000,
      },
      (res) => {
        const contentType = String(res.headers['content-type'] ?? '');
        if (res.statusCode! < 400 && !contentType.startsWith('application/json')) {
          // A download or an event stream that validation let through: its status is all we need.
          res.destroy();
          resolve({ status: res.statusCode!, contentType, text: '' });
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode!, contentType, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer to ${c.method} ${c.target.slice(0, 80)} within 15 s`)));
    req.on('error', reject);
    req.end(c.body);
  });
}

/** What is wrong with an answer: a 5xx, an error body not in the documented shape, database internals. */
function problemOf(res: RawResponse, documented: number[]): string | null {
  if (res.status >= 500) return `${res.status}: ${res.text.slice(0, 200)}`;
  if (res.status < 400) return null;
  if (!res.contentType.startsWith('application/json')) return `${res.status} with content-type ${res.contentType || 'none'}`;
  let body: unknown;
  try {
    body = JSON.parse(res.text);
  } catch {
    return `${res.status} with a body that is not JSON: ${res.text.slice(0, 100)}`;
  }
  const error = (body as { error?: Record<string, unknown> }).error;
  const shapeOk =
    typeof body === 'object' &&
    body !== null &&
    Object.keys(body).join() === 'error' &&
    typeof error === 'object' &&
    error !== null &&
    typeof error.code === 'string' &&
    typeof error.message === 'string' &&
    error.message !== '' &&
    Object.keys(error).every((k) => ['code', 'message', 'details'].includes(k));
  if (!shapeOk) return `${res.status} body not in the error shape: ${res.text.slice(0, 200)}`;
  if (/prisma|P20\d\d|_key\b|constraint|driverAdapter|\bat \S+ \(|node_modules/i.test(res.text))
    return `${res.status} leaks internals: ${res.text.slice(0, 200)}`;
  if (!documented.includes(res.status)) return `${res.status} is not documented for the operation: ${res.text.slice(0, 120)}`;
  return null;
}

async function runAll(cases: FuzzCase[], token: string, concurrency = 6): Promise<string[]> {
  const problems: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const c = cases[next++]!;
      let problem: string | null;
      try {
        const res = await send(c, token);
        problem = problemOf(res, c.documented);
      } catch (err) {
        problem = `request failed: ${(err as Error).message}`;
      }
      if (problem) problems.push(`${c.method} ${c.target.slice(0, 100)} [${c.what}]: ${problem}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return problems;
}

beforeAll(async () => {
  cairn = await startCairn();
  const data = path.join(cairn.volumeRoot, 'fuzz', 'data');
  fs.mkdirSync(path.join(data, 'dir'), { recursive: true });
  fs.writeFileSync(path.join(data, 'file.txt'), 'hello');
  fs.writeFileSync(path.join(data, 'dir', 'inner.txt'), 'inner');
  const instance = await cairn.api('POST', '/v1/instances', {
    name: 'fuzz',
    nodeId: cairn.nodeId,
    tenant: cairn.tenant,
    volumes: [{ name: 'data', hostPath: data }],
  });
  expect(instance.status).toBe(201);
  seed.instances = instance.body.id;
  const started = await cairn.api('POST', `/v1/instances/${seed.instances}/backups`, {});
  expect(started.status).toBe(202);
  expect((await cairn.waitForJob(started.body.job.id, undefined, 120_000)).status).toBe('succeeded');
  seed.backups = started.body.backup.id;
  seed.jobs = started.body.job.id;
  const schedule = await cairn.api('POST', `/v1/instances/${seed.instances}/schedules`, { cron: '0 3 * * *', timezone: 'UTC', retention: { keepLast: 3 } });
  expect(schedule.status).toBe(201);
  seed.schedules = schedule.body.id;
  seed.nodes = cairn.nodeId;
  // A real signed download link, so the public /v1/downloads/{token} route is fuzzed too.
  const link = await cairn.api('POST', `/v1/backups/${seed.backups}/download-links`, {});
  expect(link.status).toBe(201);
  seed.downloads = String(link.body.url).split('/').pop()!;
  const throwaway = await cairn.api('POST', '/v1/tokens', { name: 'fuzz-throwaway', role: 'member', tenant: cairn.tenant });
  seed.tokens = throwaway.body.id;
  const m = await cairn.api('POST', '/v1/tokens', { name: 'fuzz-member', role: 'member', tenant: cairn.tenant });
  expect(m.status).toBe(201);
  member = { id: m.body.id, token: m.body.token };
}, 180_000);

afterAll(async () => {
  agent.destroy();
  await cairn?.close();
});

describe('hostile input, case by case', () => {
  it('answers a NUL in cursor with 400 on every list endpoint', async () => {
    for (const target of ['/v1/instances', `/v1/instances/${seed.instances}/backups`, `/v1/instances/${seed.instances}/schedules`, '/v1/jobs', '/v1/tokens']) {
      const res = await send({ method: 'GET', target: `${target}?cursor=a%00b` }, cairn.adminToken);
      expect(res.status, target).toBe(400);
      expect(JSON.parse(res.text).error).toMatchObject({ code: 'validation', details: [{ path: 'cursor', message: 'must not contain NUL' }] });
    }
  });

  it('refuses NUL and lone surrogates in token names and excludes before the database sees them', async () => {
    for (const name of ['a\u0000b', '\ud800', 'x\udc00']) {
      const res = await cairn.api('POST', '/v1/tokens', { name, role: 'member', tenant: cairn.tenant });
      expect(res.status, JSON.stringify(name)).toBe(400);
      expect(res.body.error.details[0].path).toBe('name');
      const inst = await cairn.api('POST', '/v1/instances', {
        name: 'hostile-excludes',
        nodeId: cairn.nodeId,
        tenant: cairn.tenant,
        volumes: [{ name: 'data', hostPath: path.join(cairn.volumeRoot, 'hostile'), excludes: ['*.tmp', name] }],
      });
      expect(inst.status, JSON.stringify(name)).toBe(400);
      expect(inst.body.error.details).toEqual([{ path: 'volumes.0.excludes.1', message: expect.stringMatching(/NUL|surrogate/) }]);
    }
    // A well-formed pair is ordinary text.
    const emoji = await cairn.api('POST', '/v1/tokens', { name: 'rocket \ud83d\ude80', role: 'member', tenant: cairn.tenant });
    expect(emoji.status).toBe(201);
    expect(emoji.body.name).toBe('rocket 🚀');
  });

  it("checks files?prefix= with the same rule as download?path= ('..', NUL, absolute)", async () => {
    for (const raw of ['..', 'data/..', 'data/%00', '/data', 'data//x', '%ED%A0%80']) {
      for (const [route, param] of [
        ['files', 'prefix'],
        ['download', 'path'],
      ] as const) {
        const res = await send({ method: 'GET', target: `/v1/backups/${seed.backups}/${route}?${param}=${raw}` }, cairn.adminToken);
        expect(res.status, `${route} ${raw}`).toBe(400);
        expect(JSON.parse(res.text).error.details[0].path).toBe(param);
      }
    }
    const listed = await cairn.api('GET', `/v1/backups/${seed.backups}/files?prefix=data/`);
    expect(listed.status).toBe(200);
    expect(listed.body.prefix).toBe('data');
    expect(listed.body.items.map((e: { path: string }) => e.path)).toEqual(['data', 'data/dir', 'data/dir/inner.txt', 'data/file.txt']);
  });

  it('answers a 100 KB header with 431 and a malformed request with 400, both in the error shape', async () => {
    const big = await send({ method: 'GET', target: '/v1/instances', headers: { 'x-filler': 'a'.repeat(100 * 1024) } }, cairn.adminToken);
    expect(big.status).toBe(431);
    const doc = (await cairn.api('GET', '/openapi.json')).body as OpenApiDocument;
    for (const item of Object.values(doc.paths)) for (const op of Object.values(item)) expect(Object.keys(op.responses), op.operationId).toContain('431');
    expect(JSON.parse(big.text)).toEqual({ error: { code: 'headers-too-large', message: expect.stringContaining('16384') } });

    const url = new URL(cairn.url);
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(Number(url.port), url.hostname, () => socket.write('GET /v1/instances HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n'));
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString()));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4))).toEqual({ error: { code: 'validation', message: 'malformed HTTP request' } });
    // The server still answers.
    expect((await cairn.api('GET', '/v1/instances?limit=1')).status).toBe(200);
  });
});

describe('first use of a new tenant by concurrent requests', () => {
  it('10 instance registrations (distinct names) and 10 token creations all succeed, in one tenant', async () => {
    const tenant = `race-${Date.now().toString(36)}`;
    const instances = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        cairn.api('POST', '/v1/instances', {
          name: `app-${i}`,
          nodeId: cairn.nodeId,
          tenant,
          volumes: [{ name: 'data', hostPath: path.join(cairn.volumeRoot, 'race', String(i)) }],
        }),
      ),
    );
    expect(instances.map((r) => r.status)).toEqual(Array(10).fill(201));
    expect(new Set(instances.map((r) => r.body.tenantId)).size).toBe(1);

    const tenant2 = `race2-${Date.now().toString(36)}`;
    const tokens = await Promise.all(Array.from({ length: 10 }, (_, i) => cairn.api('POST', '/v1/tokens', { name: `t${i}`, role: 'member', tenant: tenant2 })));
    expect(tokens.map((r) => r.status)).toEqual(Array(10).fill(201));
    expect(new Set(tokens.map((r) => r.body.tenant))).toEqual(new Set([tenant2]));
    expect(await cairn.prisma.tenant.count({ where: { name: { in: [tenant, tenant2] } } })).toBe(2);
  });
});

describe('token revocation', () => {
  it('refuses to revoke the bootstrap admin token (409); other admin tokens, its own included, can be revoked', async () => {
    const bootstrap = (await cairn.prisma.apiToken.findMany({ where: { revokedAt: null, role: 'admin' } })).find(
      (t) => t.tokenHash === createHash('sha256').update(cairn.adminToken).digest('hex'),
    )!;
    const res = await cairn.api('DELETE', `/v1/tokens/${bootstrap.id}`);
    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({ code: 'conflict', message: expect.stringContaining('bootstrap admin token') });
    expect(Object.keys((await cairn.api('GET', '/openapi.json')).body.paths['/v1/tokens/{id}'].delete.responses)).toContain('409');
    expect((await cairn.api('GET', '/v1/tokens?limit=1')).status).toBe(200);

    const other = await cairn.api('POST', '/v1/tokens', { name: 'second-admin', role: 'admin' });
    const self = await cairn.api('DELETE', `/v1/tokens/${other.body.id}`, undefined, other.body.token);
    expect(self.status).toBe(200);
    expect(self.body.revokedAt).not.toBeNull();
    expect((await cairn.api('GET', '/v1/tokens?limit=1', undefined, other.body.token)).status).toBe(401);
  });
});

// Last: a fuzzed request that is valid after all really runs (a backup, a policy change), so the
// seeded records may differ afterwards.
describe('fuzzing every operation of /openapi.json', () => {
  it('finds no 5xx, no undocumented status and no error outside the documented shape, as admin and as member', async () => {
    const doc = (await cairn.api('GET', '/openapi.json')).body as OpenApiDocument;
    let hostPaths = 0;
    const cases = fuzzCases(
      doc,
      {
        pathValue: (p) => {
          const resource = p.split('/')[2] ?? '';
          const value = seed[resource];
          if (!value) throw new Error(`no seed id for the path parameters of ${p}`);
          return value;
        },
        fieldHint: (name) =>
          ({
            nodeId: cairn.nodeId,
            hostPath: path.join(cairn.volumeRoot, 'fuzz-new', String(++hostPaths)),
            tenant: cairn.tenant,
            cron: '0 3 * * *',
            timezone: 'UTC',
            url: 'https://example.com/hook',
            targetInstanceId: seed.instances,
          })[name],
      },
      seededRandom(1016),
    );
    const operations = new Set(Object.values(doc.paths).flatMap((item) => Object.values(item).map((op) => (op as { operationId: string }).operationId)));
    // Every operation with parameters or a body gets cases (the others have nothing to malform).
    const fuzzed = new Set(cases.map((c) => c.operationId));
    expect(fuzzed.size).toBeGreaterThan(operations.size * 0.8);

    // Destructive operations last, so the others run against the seeded records.
    const order = (c: FuzzCase) => (c.method === 'DELETE' ? 1 : 0);
    const sorted = [...cases].sort((a, b) => order(a) - order(b));
    // The member runs a seeded fifth of the cases (admin routes answer it 403 before any validation).
    const random = seededRandom(16);
    const memberCases = sorted.filter(() => random() < 0.2);
    const started = Date.now();
    const problems = [
      ...(await runAll(
        sorted.filter((c) => order(c) === 0),
        cairn.adminToken,
      )),
      ...(await runAll(memberCases, member.token)),
    ];
    problems.push(
      ...(await runAll(
        sorted.filter((c) => order(c) === 1),
        cairn.adminToken,
      )),
    );
    const seconds = (Date.now() - started) / 1000;
    console.log(`fuzz: ${cases.length} admin and ${memberCases.length} member requests over ${fuzzed.size} operations in ${seconds.toFixed(1)} s`);
    expect(problems.slice(0, 40)).toEqual([]);
    expect(cases.length).toBeGreaterThan(1000);
    expect(problems.length).toBe(0);
  }, 240_000);
});
