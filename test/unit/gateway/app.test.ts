import http from 'node:http';
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { CairnError, createLogger, MemoryRecords, UniqueViolation } from '@cairn/core';
import { MemoryObjectStore } from '@cairn/core/storage/memory.object-store.ts';
import { createGateway } from '@cairn/gateway/app.ts';
import { toCairnError } from '@cairn/gateway/middleware/error-handler.ts';
import { generateToken } from '@cairn/gateway/services/token.service.ts';
import { FakeQueues } from './gateway-fixture.ts';

/** The whole Koa application over in-memory records and store and a fake queue: routing, auth and the error path. */

const servers: http.Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

async function serve(checks: Record<string, () => Promise<unknown>> = {}, logger = createLogger({ level: 'silent' })) {
  const records = new MemoryRecords();
  const queues = new FakeQueues();
  const gateway = createGateway({
    config: { BODY_LIMIT: 65536, COMPRESSION: 'gzip', MANUAL_BACKUP_LIMIT: 1 },
    logger,
    records,
    queues,
    store: new MemoryObjectStore(),
    readinessChecks: checks,
  });
  const adminSecret = generateToken();
  await gateway.tokens.ensureBootstrapAdmin(adminSecret);
  const server = http.createServer(gateway.app.callback()).listen(0, '127.0.0.1');
  servers.push(server);
  await new Promise((r) => server.once('listening', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const api = async (method: string, route: string, body?: unknown, token: string | null = adminSecret) => {
    const res = await fetch(`${base}${route}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
  };
  return { records, queues, api };
}

/** A logger at `level` whose lines are kept, parsed. */
function capturedLogger(level: string) {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level }, sink), lines };
}

describe('gateway app (in memory)', () => {
  it("logs one line per request with the request's id and, once authenticated, its token", async () => {
    const { logger, lines } = capturedLogger('info');
    const { api } = await serve({}, logger);
    const res = await api('GET', '/v1/instances');
    expect(res.status).toBe(200);
    await new Promise((r) => setTimeout(r, 10));
    const line = lines.find((l) => l.msg === 'request' && l.path === '/v1/instances');
    expect(line).toMatchObject({ reqId: res.headers.get('x-request-id'), tokenId: expect.any(String), method: 'GET', status: 200 });
  });

  it('registers an instance, starts a backup, and maps busy/limit to 409/429 through the one error path', async () => {
    const { records, queues, api } = await serve();
    records.seedNode({ id: 'n1', volumeRoots: ['/srv/a'], lastHeartbeatAt: new Date() });
    const created = await api('POST', '/v1/instances', { name: 'shop', nodeId: 'n1', tenant: 'acme', volumes: [{ name: 'd', hostPath: '/srv/a/d' }] });
    expect(created.status).toBe(201);
    const started = await api('POST', `/v1/instances/${created.body.id}/backups`);
    expect(started.status).toBe(202);
    expect(queues.nodeJobs).toHaveLength(1);

    const busy = await api('POST', `/v1/instances/${created.body.id}/backups`);
    expect(busy.status).toBe(409);
    expect(busy.body.error).toMatchObject({ code: 'conflict', details: { jobId: started.body.job.id } });

    await records.jobs.transition(started.body.job.id, ['queued'], 'succeeded');
    await records.backups.transition(started.body.backup.id, ['pending'], 'completed');
    const limited = await api('POST', `/v1/instances/${created.body.id}/backups`);
    expect(limited.status).toBe(429);
    expect(limited.body.error).toMatchObject({ code: 'limit', details: { limit: 1, count: 1 } });

    const dup = await api('POST', '/v1/instances', { name: 'shop', nodeId: 'n1', tenant: 'acme', volumes: [{ name: 'd', hostPath: '/srv/a/e' }] });
    expect(dup.status).toBe(409);
  });

  it('answers 401 without a valid token, 404 for unknown routes, 503 with Retry-After when the queue is down', async () => {
    const { records, queues, api } = await serve();
    expect((await api('GET', '/v1/instances', undefined, null)).status).toBe(401);
    expect((await api('GET', '/v1/instances', undefined, generateToken())).status).toBe(401);
    expect((await api('GET', '/v1/nowhere')).status).toBe(404);
    records.seedNode({ id: 'n1', volumeRoots: ['/srv/a'], lastHeartbeatAt: new Date() });
    const inst = (await api('POST', '/v1/instances', { name: 'a', nodeId: 'n1', tenant: 'acme', volumes: [{ name: 'd', hostPath: '/srv/a/d' }] })).body;
    queues.down = true;
    const res = await api('POST', `/v1/instances/${inst.id}/backups`);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
  });

  it('answers /readyz 503 naming the failing dependency', async () => {
    const { api } = await serve({
      postgres: async () => {},
      redis: async () => {
        throw new CairnError('unavailable', 'redis connection is reconnecting');
      },
    });
    const ready = await api('GET', '/readyz', undefined, null);
    expect(ready.status).toBe(503);
    expect(ready.body.error.details).toEqual({ failing: ['redis'] });
  });

  it('serves download links without a bearer token and refuses a forged one in the error shape, uncached', async () => {
    const { api } = await serve();
    const forged = await api('GET', `/v1/downloads/${Buffer.from('{"b":"x","p":null,"t":"y","e":9e15}').toString('base64url')}.AAAA`, undefined, null);
    expect(forged.status).toBe(401);
    expect(forged.body.error).toMatchObject({ code: 'unauthorized', message: expect.stringMatching(/invalid download link/) });
    expect(forged.headers.get('cache-control')).toBe('no-store');
    const missing = await api('POST', '/v1/backups/01JNOPE0000000000000000000/download-links', {});
    expect(missing.status).toBe(404);
    expect((await api('POST', '/v1/backups/01JNOPE0000000000000000000/download-links', {}, null)).status).toBe(401);
  });

  it('maps a unique violation to 409 and a database outage to 503', () => {
    // The constraint stays out of the response (it is logged as the cause).
    const conflict = toCairnError(new UniqueViolation(['name']));
    expect(conflict).toMatchObject({ code: 'conflict', message: 'a record with the same unique name already exists' });
    expect(conflict.details).toBeUndefined();
    expect(toCairnError(Object.assign(new Error('x'), { code: 'P2002', meta: { target: ['Tenant_name_key'] } })).details).toBeUndefined();
    expect(toCairnError(Object.assign(new Error('gone'), { code: 'P1001' }))).toMatchObject({ code: 'unavailable', message: 'database unavailable' });
  });
});
