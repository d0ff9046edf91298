import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CairnError, createLogger, loadConfig, PrismaRecords } from '@cairn/core';
import { createObjectStore } from '@cairn/core/runtime.ts';
import { createGateway } from '@cairn/gateway/app.ts';
import type { QueuePort } from '@cairn/gateway/queue/queue-client.ts';
import { hashToken } from '@cairn/gateway/services/token.service.ts';
import { newId } from '@cairn/core';
import { startTestGateway, type TestGateway } from './gateway-harness.ts';

let gw: TestGateway;
let nodeId: string;

beforeAll(async () => {
  gw = await startTestGateway({ BODY_LIMIT: '4096' });
  nodeId = `http-${gw.tag}`;
  await gw.node(nodeId, ['/srv/http']);
});

afterAll(async () => {
  await gw?.close();
});

describe('request bodies', () => {
  it('answers 413 for a body over BODY_LIMIT (declared length or chunked)', async () => {
    const big = JSON.stringify({ name: 'x', nodeId, volumes: [{ name: 'data', hostPath: `/srv/http/${'a'.repeat(10_000)}` }] });
    const res = await gw.api('POST', '/v1/instances', { raw: big, headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(413);
    expect(res.body).toEqual({ error: { code: 'payload-too-large', message: expect.stringContaining('4096'), details: { limitBytes: 4096 } } });

    const chunked = await fetch(`${gw.url}/v1/instances`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gw.adminToken}`, 'content-type': 'application/json' },
      body: new ReadableStream({
        start(controller) {
          for (let i = 0; i < 64; i++) controller.enqueue(new TextEncoder().encode(' '.repeat(1024)));
          controller.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);

    // A much larger upload is refused without reading it, and the connection still answers.
    const huge = await gw.api('POST', '/v1/instances', { raw: 'x'.repeat(8 * 1024 * 1024), headers: { 'content-type': 'application/json' } });
    expect(huge.status).toBe(413);
  });

  it('answers 400 for malformed JSON and for a non-JSON content type', async () => {
    const res = await gw.api('POST', '/v1/instances', { raw: '{"name": "x",', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'validation', message: expect.stringContaining('malformed JSON') });

    const form = await gw.api('POST', '/v1/instances', { raw: 'name=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(form.status).toBe(400);
    expect(form.body.error.message).toContain('application/json');

    const array = await gw.api('POST', '/v1/instances', { body: [1, 2] });
    expect(array.status).toBe(400);
  });

  it('answers unknown routes with a JSON 404 and never leaks a stack trace', async () => {
    const res = await gw.api('GET', '/v1/nothing-here');
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: { code: 'not-found', message: 'no route GET /v1/nothing-here' } });
    const badId = await gw.api('GET', '/v1/instances/..%2Fetc');
    expect([400, 404]).toContain(badId.status);
    expect(badId.text).not.toMatch(/at .*\.ts:\d+/);
  });
});

describe('OpenAPI', () => {
  it('serves an OpenAPI 3.1 document listing the routes with the validators’ schemas', async () => {
    const res = await gw.api('GET', '/openapi.json', { token: null });
    expect(res.status).toBe(200);
    const doc = res.body;
    expect(doc.openapi).toBe('3.1.0');
    for (const [p, method] of [
      ['/v1/tokens', 'post'],
      ['/v1/tokens/{id}', 'delete'],
      ['/v1/instances', 'post'],
      ['/v1/instances/{id}', 'patch'],
      ['/v1/instances/{id}/coverage', 'get'],
      ['/v1/instances/{id}/backups', 'post'],
      ['/v1/backups/{id}', 'delete'],
      ['/v1/backups/delete', 'post'],
      ['/v1/backups/{id}/files', 'get'],
      ['/v1/backups/{id}/download', 'get'],
      ['/v1/backups/{id}/restore', 'post'],
      ['/v1/jobs', 'get'],
      ['/v1/jobs/{id}/events', 'get'],
      ['/v1/jobs/{id}/cancel', 'post'],
      ['/v1/nodes/{id}', 'get'],
      ['/readyz', 'get'],
      ['/admin/queues', 'get'],
    ] as const) {
      expect(doc.paths[p]?.[method], `${method} ${p}`).toBeDefined();
    }
    const create = doc.paths['/v1/instances'].post;
    expect(create.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/CreateInstanceRequest' });
    expect(create.responses['201'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Instance' });
    expect(create.responses['400'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Error' });
    const schema = doc.components.schemas.CreateInstanceRequest;
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toEqual(expect.arrayContaining(['name', 'nodeId', 'volumes']));
    expect(doc.components.schemas.VolumeSpec.properties.hostPath).toBeDefined();
    const listJobs = doc.paths['/v1/jobs'].get;
    expect(listJobs.parameters.map((p: { name: string }) => p.name)).toEqual(expect.arrayContaining(['instance', 'type', 'status', 'node', 'cursor', 'limit']));
    expect(doc.paths['/v1/tokens'].post['x-cairn-access']).toBe('admin');
    // Every $ref resolves.
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]!);
    for (const ref of refs) expect(doc.components.schemas[ref], ref).toBeDefined();
  });
});

describe('metrics', () => {
  it('exposes job counts by type and status, queue depth, node heartbeat age and request durations', async () => {
    const member = (await gw.token('member', `http-${gw.tag}`)).token;
    const inst = (await gw.api('POST', '/v1/instances', { token: member, body: { name: 'm', nodeId, volumes: [{ name: 'd', hostPath: '/srv/http/m' }] } }))
      .body;
    expect((await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member })).status).toBe(202);
    const res = await fetch(`${gw.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/^cairn_jobs\{type="backup",status="queued"\} [1-9]\d*$/m);
    expect(text).toMatch(new RegExp(`^cairn_queue_jobs\\{queue="node\\.${nodeId.replace(/[.]/g, '\\.')}",state="waiting"\\} 1$`, 'm'));
    expect(text).toMatch(new RegExp(`^cairn_node_heartbeat_age_seconds\\{node="${nodeId}"\\} \\d`, 'm'));
    expect(text).toMatch(/^cairn_http_request_duration_seconds_count\{method="POST",route="\/v1\/instances\/:id\/backups",status="202"\} 1$/m);
    expect(text).toMatch(/^cairn_metrics_source_up\{source="postgres"\} 1$/m);
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
  });
});

describe('health', () => {
  it('is ready when Postgres, Redis and S3 answer', async () => {
    expect((await gw.api('GET', '/healthz', { token: null })).body).toEqual({ status: 'ok' });
    const res = await gw.api('GET', '/readyz', { token: null });
    expect(res.status).toBe(200);
    expect(Object.keys(res.body.checks).sort()).toEqual(['postgres', 'redis', 's3']);
  });

  it('answers 503 naming redis when Redis is unreachable, and refuses work with 503', async () => {
    const broken = await startTestGateway({ REDIS_URL: 'redis://127.0.0.1:1' });
    try {
      const ready = await broken.api('GET', '/readyz', { token: null });
      expect(ready.status).toBe(503);
      expect(ready.body.error.message).toContain('redis');
      expect(ready.body.error.details).toEqual({ failing: ['redis'] });
      expect(ready.body.checks.postgres.ok).toBe(true);

      await broken.node(`http-broken-${broken.tag}`, ['/srv/broken']);
      const inst = (
        await broken.api('POST', '/v1/instances', {
          body: { name: 'b', nodeId: `http-broken-${broken.tag}`, tenant: `broken-${broken.tag}`, volumes: [{ name: 'd', hostPath: '/srv/broken/d' }] },
        })
      ).body;
      const started = Date.now();
      const res = await broken.api('POST', `/v1/instances/${inst.id}/backups`);
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('unavailable');
      expect(res.body.error.message).toContain('redis');
      expect(Date.now() - started).toBeLessThan(5000);
      expect(await broken.prisma.backup.count({ where: { instanceId: inst.id } })).toBe(0);
    } finally {
      await broken.close();
    }
  });

  it('answers /readyz 503 naming s3 when the object store is unreachable', async () => {
    const broken = await startTestGateway({ S3_ENDPOINT: 'http://127.0.0.1:1' });
    try {
      const ready = await readyzOnceRedisIsUp(broken);
      expect(ready.status).toBe(503);
      expect(ready.body.error.details).toEqual({ failing: ['s3'] });
      expect(ready.body.checks.postgres.ok).toBe(true);
      expect(ready.body.checks.redis.ok).toBe(true);
    } finally {
      await broken.close();
    }
  });

  it('starts with Postgres down and answers /readyz 503 naming postgres', async () => {
    const url = new URL(process.env.DATABASE_URL!);
    url.port = '1';
    const broken = await startTestGateway({ DATABASE_URL: url.toString() });
    try {
      const ready = await readyzOnceRedisIsUp(broken);
      expect(ready.status).toBe(503);
      expect(ready.body.error.details).toEqual({ failing: ['postgres'] });
      expect(ready.body.checks.redis.ok).toBe(true);
    } finally {
      await broken.close();
    }
  });

  it('answers 503 (not 500) when Postgres is unreachable', async () => {
    const url = new URL(gw.config.DATABASE_URL);
    url.port = '1';
    const config = loadConfig({ ...process.env, DATABASE_URL: url.toString(), PORT: '0', LOG_LEVEL: 'silent' });
    const records = PrismaRecords.open(config.DATABASE_URL);
    const { app } = createGateway({
      config,
      logger: createLogger({ level: 'silent' }),
      records,
      queues: failingQueues(),
      store: createObjectStore(config),
      readinessChecks: {},
    });
    const server = http.createServer(app.callback()).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/instances`, {
        headers: { authorization: 'Bearer cairn_whatever' },
      });
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({ error: { code: 'unavailable', message: 'database unavailable' } });
    } finally {
      server.close();
      await records.close();
    }
  });
});

/** /readyz once the gateway's Redis connection is up: a probe right after start can precede it. */
async function readyzOnceRedisIsUp(gateway: TestGateway) {
  let ready = await gateway.api('GET', '/readyz', { token: null });
  for (let i = 0; i < 50 && !ready.body.checks.redis.ok; i++) {
    await new Promise((r) => setTimeout(r, 100));
    ready = await gateway.api('GET', '/readyz', { token: null });
  }
  return ready;
}

/** A queue whose Redis answers the readiness probe but loses every enqueue. */
function failingQueues(): QueuePort {
  const down = () => Promise.reject(new CairnError('unavailable', 'redis unavailable: connection lost'));
  return {
    enqueueNode: down,
    enqueueControl: down,
    cancel: down,
    counts: down,
    ready: () => Promise.resolve(),
    queue: () => {
      throw new Error('not used');
    },
  };
}

describe('enqueue failures', () => {
  it('marks the backup and job failed and answers 503 when the enqueue fails', async () => {
    const config = loadConfig({ ...process.env, PORT: '0', LOG_LEVEL: 'silent' });
    const { app } = createGateway({
      config,
      logger: createLogger({ level: 'silent' }),
      records: gw.records,
      queues: failingQueues(),
      store: gw.store,
      readinessChecks: {},
    });
    const server = http.createServer(app.callback()).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      const secret = `cairn_enqueue_${newId()}`;
      await gw.prisma.apiToken.create({ data: { id: newId(), role: 'admin', name: 'enqueue-test', tokenHash: hashToken(secret) } });
      const created = await gw.api('POST', '/v1/instances', {
        body: { name: 'eq', nodeId, tenant: `eq-${gw.tag}`, volumes: [{ name: 'd', hostPath: '/srv/http/eq' }] },
      });
      expect(created.status, created.text).toBe(201);
      const inst = created.body;
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/instances/${inst.id}/backups`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}` },
      });
      const body = (await res.json()) as { error: { code: string; details: { backupId: string; jobId: string } } };
      expect(res.status, JSON.stringify(body)).toBe(503);
      expect(body.error.code).toBe('unavailable');
      const backup = await gw.prisma.backup.findUnique({ where: { id: body.error.details.backupId } });
      const job = await gw.prisma.job.findUnique({ where: { id: body.error.details.jobId } });
      expect(backup).toMatchObject({ status: 'failed', error: expect.stringContaining('could not enqueue') });
      expect(job).toMatchObject({ status: 'failed', errorCode: 'unavailable' });
      // The failed attempt does not block the next request.
      expect((await gw.api('POST', `/v1/instances/${inst.id}/backups`)).status).toBe(202);
    } finally {
      server.close();
    }
  });

  it('deletes nothing while Redis is down; a lost cleanup enqueue fails its job (503) and a repeat retries', async () => {
    const config = loadConfig({ ...process.env, PORT: '0', LOG_LEVEL: 'silent' });
    const down = () => Promise.reject(new CairnError('unavailable', 'redis unavailable: connection lost'));
    const serve = async (queues: QueuePort) => {
      const { app } = createGateway({ config, logger: createLogger({ level: 'silent' }), records: gw.records, queues, store: gw.store, readinessChecks: {} });
      const server = http.createServer(app.callback()).listen(0, '127.0.0.1');
      await new Promise((r) => server.once('listening', r));
      return server;
    };
    const notReady = await serve({ ...failingQueues(), ready: down });
    const lost = await serve(failingQueues());
    try {
      const secret = `cairn_cleanup_${newId()}`;
      await gw.prisma.apiToken.create({ data: { id: newId(), role: 'admin', name: 'cleanup-test', tokenHash: hashToken(secret) } });
      const inst = (
        await gw.api('POST', '/v1/instances', { body: { name: 'cl', nodeId, tenant: `cl-${gw.tag}`, volumes: [{ name: 'd', hostPath: '/srv/http/cl' }] } })
      ).body;
      const { backup, job } = (await gw.api('POST', `/v1/instances/${inst.id}/backups`)).body;
      await gw.prisma.backup.update({ where: { id: backup.id }, data: { status: 'completed', completedAt: new Date() } });
      await gw.prisma.job.update({ where: { id: job.id }, data: { status: 'succeeded' } });
      const del = (server: http.Server) =>
        fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/backups/${backup.id}`, {
          method: 'DELETE',
          headers: { authorization: `Bearer ${secret}` },
        });

      const refused = await del(notReady);
      expect(refused.status).toBe(503);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('unavailable');
      expect((await gw.prisma.backup.findUnique({ where: { id: backup.id } }))!.status).toBe('completed');
      expect(await gw.prisma.job.count({ where: { backupId: backup.id, type: 'cleanup' } })).toBe(0);

      const res = await del(lost);
      const body = (await res.json()) as { error: { code: string; message: string; details: { backupId: string; jobId: string } } };
      expect(res.status, JSON.stringify(body)).toBe(503);
      expect(body.error).toMatchObject({
        code: 'unavailable',
        message: expect.stringContaining('could not enqueue the cleanup'),
        details: { backupId: backup.id },
      });
      expect((await gw.prisma.backup.findUnique({ where: { id: backup.id } }))!.status).toBe('deleting');
      expect(await gw.prisma.job.findUnique({ where: { id: body.error.details.jobId } })).toMatchObject({
        type: 'cleanup',
        status: 'failed',
        errorCode: 'unavailable',
      });

      // The repeat (Redis back) starts a new cleanup job, enqueued.
      const again = await gw.api('DELETE', `/v1/backups/${backup.id}`);
      expect(again.status).toBe(202);
      expect(again.body.job).toMatchObject({ type: 'cleanup', status: 'queued' });
      expect(again.body.job.id).not.toBe(body.error.details.jobId);
      expect(await gw.jobQueues.queue('control').getJob(again.body.job.id)).toMatchObject({ name: 'cleanup' });
    } finally {
      notReady.close();
      lost.close();
    }
  });
});
