import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from './gateway-harness.ts';

let gw: TestGateway;
let nodeId: string;

beforeAll(async () => {
  gw = await startTestGateway();
  nodeId = `auth-${gw.tag}`;
  await gw.node(nodeId, ['/srv/auth']);
});

afterAll(async () => {
  await gw?.close();
});

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('authentication', () => {
  it('answers 401 without a token, with a malformed header and with an unknown token', async () => {
    const none = await gw.api('GET', '/v1/instances', { token: null });
    expect(none.status).toBe(401);
    expect(none.body).toEqual({ error: { code: 'unauthorized', message: expect.stringContaining('bearer token') } });
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);

    const malformed = await gw.api('GET', '/v1/instances', { token: null, headers: { authorization: 'Token abc' } });
    expect(malformed.status).toBe(401);

    const unknown = await gw.api('GET', '/v1/instances', { token: 'cairn_not-a-real-token' });
    expect(unknown.status).toBe(401);
    expect(unknown.body.error.code).toBe('unauthorized');
  });

  it('accepts the bootstrap admin token, stored only as its sha256', async () => {
    const res = await gw.api('GET', '/v1/tokens');
    expect(res.status).toBe(200);
    const hash = createHash('sha256').update(gw.adminToken).digest('hex');
    const row = await gw.prisma.apiToken.findUnique({ where: { tokenHash: hash } });
    expect(row).toMatchObject({ role: 'admin', name: 'bootstrap-admin', revokedAt: null });
  });

  it('updates lastUsedAt when a token is used', async () => {
    const { id, token } = await gw.token('member', `lu-${gw.tag}`);
    expect((await gw.prisma.apiToken.findUnique({ where: { id } }))!.lastUsedAt).toBeNull();
    expect((await gw.api('GET', '/v1/instances', { token })).status).toBe(200);
    await expect.poll(async () => (await gw.prisma.apiToken.findUnique({ where: { id } }))!.lastUsedAt).not.toBeNull();
  });
});

describe('tokens', () => {
  it('creates a member token (tenant created), shows the secret once and keeps only its hash', async () => {
    const tenant = `tok-${gw.tag}`;
    const res = await gw.api('POST', '/v1/tokens', { body: { name: 'ci', role: 'member', tenant } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ id: expect.any(String), name: 'ci', role: 'member', tenant, revokedAt: null });
    expect(res.body.token).toMatch(/^cairn_[A-Za-z0-9_-]{43}$/);
    expect(await gw.prisma.tenant.findUnique({ where: { name: tenant } })).not.toBeNull();

    const row = await gw.prisma.apiToken.findUnique({ where: { id: res.body.id } });
    expect(row!.tokenHash).toBe(createHash('sha256').update(res.body.token).digest('hex'));
    // The secret appears nowhere in the database.
    const all = JSON.stringify(await gw.prisma.apiToken.findMany());
    expect(all).not.toContain(res.body.token);
    expect(all).not.toContain(res.body.token.slice(6));

    const list = await gw.api('GET', '/v1/tokens?limit=500');
    expect(list.status).toBe(200);
    const listed = list.body.items.find((t: { id: string }) => t.id === res.body.id);
    expect(listed).toMatchObject({ name: 'ci', role: 'member', tenant });
    expect(listed.token).toBeUndefined();
    expect(list.text).not.toContain(res.body.token);
  });

  it('validates the body: a member token needs a tenant; unknown fields and bad roles are named', async () => {
    const res = await gw.api('POST', '/v1/tokens', { body: { name: 'x', role: 'owner', color: 'red' } });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation');
    const paths = res.body.error.details.map((d: { path: string }) => d.path);
    expect(paths).toEqual(expect.arrayContaining(['role', 'color']));

    const noTenant = await gw.api('POST', '/v1/tokens', { body: { name: 'x', role: 'member' } });
    expect(noTenant.status).toBe(400);
    expect(noTenant.body.error.details).toEqual([{ path: 'tenant', message: 'a member token needs a tenant' }]);
  });

  it('revokes: the revoked token is refused with 401 and stays listed as revoked', async () => {
    const { id, token } = await gw.token('member', `rev-${gw.tag}`);
    expect((await gw.api('GET', '/v1/instances', { token })).status).toBe(200);
    const del = await gw.api('DELETE', `/v1/tokens/${id}`);
    expect(del.status).toBe(200);
    expect(del.body.revokedAt).not.toBeNull();
    const after = await gw.api('GET', '/v1/instances', { token });
    expect(after.status).toBe(401);
    expect(after.body.error.message).toMatch(/revoked/);

    const hidden = await gw.api('GET', '/v1/tokens?limit=500');
    expect(hidden.body.items.some((t: { id: string }) => t.id === id)).toBe(false);
    const shown = await gw.api('GET', '/v1/tokens?limit=500&includeRevoked=true');
    expect(shown.body.items.find((t: { id: string }) => t.id === id).revokedAt).not.toBeNull();
    expect((await gw.api('DELETE', '/v1/tokens/01UNKNOWN')).status).toBe(404);
  });

  it('refuses admin routes to members with 403', async () => {
    const { token } = await gw.token('member', `m403-${gw.tag}`);
    for (const [method, route] of [
      ['GET', '/v1/tokens'],
      ['POST', '/v1/tokens'],
      ['DELETE', '/v1/tokens/whatever'],
    ] as const) {
      const res = await gw.api(method, route, { token, ...(method === 'POST' ? { body: { name: 'x', role: 'admin' } } : {}) });
      expect(res.status, `${method} ${route}`).toBe(403);
      expect(res.body.error.code).toBe('forbidden');
    }
  });
});

describe('tenancy', () => {
  it("answers 404 (not 403) for another tenant's instance, backup and job", async () => {
    const a = await gw.token('member', `ta-${gw.tag}`);
    const b = await gw.token('member', `tb-${gw.tag}`);
    const inst = await gw.api('POST', '/v1/instances', {
      token: b.token,
      body: { name: 'db', nodeId, volumes: [{ name: 'data', hostPath: '/srv/auth/tb/data' }] },
    });
    expect(inst.status).toBe(201);
    const started = await gw.api('POST', `/v1/instances/${inst.body.id}/backups`, { token: b.token });
    expect(started.status).toBe(202);
    const { backup, job } = started.body;

    for (const route of [
      `/v1/instances/${inst.body.id}`,
      `/v1/instances/${inst.body.id}/backups`,
      `/v1/instances/${inst.body.id}/coverage`,
      `/v1/backups/${backup.id}`,
      `/v1/jobs/${job.id}`,
      `/v1/jobs/${job.id}/events`,
    ]) {
      const res = await gw.api('GET', route, { token: a.token });
      expect(res.status, route).toBe(404);
      expect(res.body.error.code).toBe('not-found');
      // (The event stream stays open while the job is queued: its 200 is not awaited here.)
      if (!route.endsWith('/events')) expect((await gw.api('GET', route, { token: b.token })).status, route).toBe(200);
    }
    expect((await gw.api('POST', `/v1/instances/${inst.body.id}/backups`, { token: a.token })).status).toBe(404);
    expect((await gw.api('DELETE', `/v1/backups/${backup.id}`, { token: a.token })).status).toBe(404);
    expect((await gw.api('POST', `/v1/jobs/${job.id}/cancel`, { token: a.token })).status).toBe(404);
    expect((await gw.api('POST', `/v1/backups/${backup.id}/restore`, { token: a.token, body: {} })).status).toBe(404);

    // Lists are scoped too: A sees none of B's rows; the admin sees both.
    const listA = await gw.api('GET', '/v1/instances?limit=500', { token: a.token });
    expect(listA.body.items.map((i: { id: string }) => i.id)).not.toContain(inst.body.id);
    const jobsA = await gw.api('GET', '/v1/jobs?limit=500', { token: a.token });
    expect(jobsA.body.items.map((j: { id: string }) => j.id)).not.toContain(job.id);
    const jobsB = await gw.api('GET', `/v1/jobs?instance=${inst.body.id}`, { token: b.token });
    expect(jobsB.body.items.map((j: { id: string }) => j.id)).toEqual([job.id]);
    expect((await gw.api('GET', `/v1/instances/${inst.body.id}`)).status).toBe(200);
  });

  it('lets members create instances only in their own tenant', async () => {
    const a = await gw.token('member', `own-${gw.tag}`);
    const res = await gw.api('POST', '/v1/instances', {
      token: a.token,
      body: { name: 'x', nodeId, tenant: `other-${gw.tag}`, volumes: [{ name: 'data', hostPath: '/srv/auth/x' }] },
    });
    expect(res.status).toBe(403);
  });
});

describe('Bull Board', () => {
  it('needs HTTP Basic with an admin token', async () => {
    const none = await fetch(`${gw.url}/admin/queues`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Basic/);
    expect(await none.json()).toMatchObject({ error: { code: 'unauthorized' } });

    const wrong = await fetch(`${gw.url}/admin/queues`, { headers: { authorization: basic('admin', 'nope') } });
    expect(wrong.status).toBe(401);

    const { token } = await gw.token('member', `bb-${gw.tag}`);
    const member = await fetch(`${gw.url}/admin/queues`, { headers: { authorization: basic('admin', token) } });
    expect(member.status).toBe(403);

    const ok = await fetch(`${gw.url}/admin/queues`, { headers: { authorization: basic('admin', gw.adminToken) } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toMatch(/text\/html/);
    expect(await ok.text()).toMatch(/<html/i);

    // The board's API lists control and the node queue of every node.
    const queues = await fetch(`${gw.url}/admin/queues/api/queues`, { headers: { authorization: basic('admin', gw.adminToken) } });
    expect(queues.status).toBe(200);
    const names = ((await queues.json()) as { queues: { name: string }[] }).queues.map((q) => q.name);
    expect(names).toEqual(expect.arrayContaining(['control', `node.${nodeId}`]));
  });
});
