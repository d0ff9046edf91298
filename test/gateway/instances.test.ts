import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from './gateway-harness.ts';

let gw: TestGateway;
let nodeId: string;
let member: string;
const root = '/srv/inst';

beforeAll(async () => {
  gw = await startTestGateway();
  nodeId = `inst-${gw.tag}`;
  await gw.node(nodeId, [root, '/data/second']);
  member = (await gw.token('member', `inst-${gw.tag}`)).token;
});

afterAll(async () => {
  await gw?.close();
});

const register = (body: unknown, token = member) => gw.api('POST', '/v1/instances', { token, body });
const paths = (res: { body: { error: { details: { path: string }[] } } }) => res.body.error.details.map((d) => d.path);

describe('instance registration', () => {
  it('registers an instance with its volumes', async () => {
    const res = await register({
      name: 'web',
      nodeId,
      volumes: [
        { name: 'data', hostPath: `${root}/web/data`, excludes: ['*.tmp'] },
        { name: 'logs', hostPath: '/data/second/web' },
      ],
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      name: 'web',
      nodeId,
      tenant: `inst-${gw.tag}`,
      volumes: [
        { name: 'data', hostPath: `${root}/web/data`, excludes: ['*.tmp'] },
        { name: 'logs', hostPath: '/data/second/web', excludes: [] },
      ],
    });
    const got = await gw.api('GET', `/v1/instances/${res.body.id}`, { token: member });
    expect(got.status).toBe(200);
    expect(got.body).toEqual(res.body);
  });

  it('rejects unknown fields and wrong types, naming each', async () => {
    const res = await register({ name: 42, nodeId, volumes: [{ name: 'data', hostPath: `${root}/a`, size: 3 }], colour: 'blue' });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation');
    expect(paths(res)).toEqual(expect.arrayContaining(['name', 'volumes.0.size', 'colour']));
    expect(res.body.error.message).toMatch(/name/);
    expect(Object.keys(res.body)).toEqual(['error']);

    const missing = await register({});
    expect(missing.status).toBe(400);
    expect(paths(missing)).toEqual(expect.arrayContaining(['name', 'nodeId', 'volumes']));
  });

  it('rejects host paths that are relative, not normalised, contain .., or lie outside the node roots', async () => {
    const cases: [string, RegExp][] = [
      ['relative/path', /absolute/],
      [`${root}/../etc`, /'\.\.'/],
      [`${root}/a/`, /normalised/],
      [`${root}//a`, /normalised/],
      [`${root}/./a`, /normalised/],
      ['/etc/passwd', /not inside a volume root/],
      [`${root}-other/a`, /not inside a volume root/],
    ];
    for (const [hostPath, message] of cases) {
      const res = await register({ name: 'bad', nodeId, volumes: [{ name: 'data', hostPath }] });
      expect(res.status, hostPath).toBe(400);
      expect(res.body.error.details, hostPath).toEqual([{ path: 'volumes.0.hostPath', message: expect.stringMatching(message) }]);
    }
  });

  it('names an unknown node', async () => {
    const res = await register({ name: 'ghost', nodeId: 'no-such-node', volumes: [{ name: 'data', hostPath: `${root}/g` }] });
    expect(res.status).toBe(400);
    expect(res.body.error.details).toEqual([{ path: 'nodeId', message: expect.stringContaining('no-such-node') }]);
  });

  it('refuses duplicate volume names (400), overlapping volumes (400) and a duplicate instance name (409)', async () => {
    const dupVol = await register({
      name: 'dv',
      nodeId,
      volumes: [
        { name: 'data', hostPath: `${root}/dv1` },
        { name: 'data', hostPath: `${root}/dv2` },
      ],
    });
    expect(dupVol.status).toBe(400);
    expect(paths(dupVol)).toEqual(['volumes.1.name']);

    const nested = await register({
      name: 'nv',
      nodeId,
      volumes: [
        { name: 'a', hostPath: `${root}/nv` },
        { name: 'b', hostPath: `${root}/nv/inner` },
      ],
    });
    expect(nested.status).toBe(400);
    expect(paths(nested)).toEqual(['volumes.1.hostPath']);

    expect((await register({ name: 'twice', nodeId, volumes: [{ name: 'data', hostPath: `${root}/t1` }] })).status).toBe(201);
    const again = await register({ name: 'twice', nodeId, volumes: [{ name: 'data', hostPath: `${root}/t2` }] });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('conflict');

    // The same name in another tenant is fine.
    const other = (await gw.token('member', `inst2-${gw.tag}`)).token;
    expect((await register({ name: 'twice', nodeId, volumes: [{ name: 'data', hostPath: `${root}/t3` }] }, other)).status).toBe(201);
  });

  it("refuses volumes that share or nest inside another instance's volumes on the node (409), without naming other tenants' instances", async () => {
    const first = await register({ name: 'owner', nodeId, volumes: [{ name: 'data', hostPath: `${root}/shared/data` }] });
    expect(first.status).toBe(201);
    const nested = await register({ name: 'nested', nodeId, volumes: [{ name: 'data', hostPath: `${root}/shared/data/inner` }] });
    expect(nested.status).toBe(409);
    expect(nested.body.error.details).toEqual([
      { path: 'volumes.0.hostPath', message: `${root}/shared/data/inner overlaps volume data of instance owner (${root}/shared/data)` },
    ]);
    const other = (await gw.token('member', `other-${gw.tag}`)).token;
    const outer = await register({ name: 'outer', nodeId, volumes: [{ name: 'data', hostPath: `${root}/shared` }] }, other);
    expect(outer.status).toBe(409);
    expect(outer.body.error.message).toContain('a volume of another instance on this node');
    expect(outer.body.error.message).not.toContain('owner');
    const sibling = await register({ name: 'sibling', nodeId, volumes: [{ name: 'data', hostPath: `${root}/shared/data-2` }] });
    expect(sibling.status).toBe(201);
  });

  it("lets an admin register into a named tenant, and into the 'default' tenant (created on first use) when its token has none", async () => {
    const tenant = `adm-${gw.tag}`;
    const res = await register({ name: 'adm', nodeId, tenant, volumes: [{ name: 'data', hostPath: `${root}/adm` }] }, gw.adminToken);
    expect(res.status).toBe(201);
    expect(res.body.tenant).toBe(tenant);
    const none = await register({ name: `adm2-${gw.tag}`, nodeId, volumes: [{ name: 'data', hostPath: `${root}/adm2` }] }, gw.adminToken);
    expect(none.status).toBe(201);
    expect(none.body.tenant).toBe('default');
    const again = await register({ name: `adm3-${gw.tag}`, nodeId, volumes: [{ name: 'data', hostPath: `${root}/adm3` }] }, gw.adminToken);
    expect(again.status).toBe(201);
    expect(again.body.tenantId).toBe(none.body.tenantId);
    const listed = await gw.api('GET', '/v1/instances?tenant=default', { token: gw.adminToken });
    expect(listed.body.items.map((i: { id: string }) => i.id)).toEqual(expect.arrayContaining([none.body.id, again.body.id]));
  });
});

describe('instance listing, changes and removal', () => {
  it('paginates newest first with a cursor', async () => {
    const token = (await gw.token('member', `page-${gw.tag}`)).token;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push((await register({ name: `p${i}`, nodeId, volumes: [{ name: 'data', hostPath: `${root}/page/${i}` }] }, token)).body.id);
    const first = await gw.api('GET', '/v1/instances?limit=2', { token });
    expect(first.body.items.map((i: { id: string }) => i.id)).toEqual([ids[4], ids[3]]);
    const second = await gw.api('GET', `/v1/instances?limit=2&cursor=${first.body.nextCursor}`, { token });
    expect(second.body.items.map((i: { id: string }) => i.id)).toEqual([ids[2], ids[1]]);
    const third = await gw.api('GET', `/v1/instances?limit=2&cursor=${second.body.nextCursor}`, { token });
    expect(third.body.items.map((i: { id: string }) => i.id)).toEqual([ids[0]]);
    expect(third.body.nextCursor).toBeNull();
    const bad = await gw.api('GET', '/v1/instances?limit=0&bogus=1', { token });
    expect(bad.status).toBe(400);
    expect(paths(bad)).toEqual(expect.arrayContaining(['limit', 'bogus']));
  });

  it('renames and replaces volumes, re-checking them against the node roots', async () => {
    const inst = (await register({ name: 'patchme', nodeId, volumes: [{ name: 'data', hostPath: `${root}/patch` }] })).body;
    const ok = await gw.api('PATCH', `/v1/instances/${inst.id}`, {
      token: member,
      body: { name: 'patched', volumes: [{ name: 'files', hostPath: `${root}/patch/files` }] },
    });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ name: 'patched', volumes: [{ name: 'files', hostPath: `${root}/patch/files`, excludes: [] }] });
    const outside = await gw.api('PATCH', `/v1/instances/${inst.id}`, { token: member, body: { volumes: [{ name: 'files', hostPath: '/elsewhere' }] } });
    expect(outside.status).toBe(400);
    expect(paths(outside)).toEqual(['volumes.0.hostPath']);
    const empty = await gw.api('PATCH', `/v1/instances/${inst.id}`, { token: member, body: {} });
    expect(empty.status).toBe(400);
  });

  it('reports coverage: volumes outside the roots are skipped with a reason; an offline node is a warning', async () => {
    const offline = `inst-off-${gw.tag}`;
    await gw.node(offline, [root], 10 * 60_000);
    const inst = (
      await register({
        name: 'cov',
        nodeId: offline,
        volumes: [
          { name: 'a', hostPath: `${root}/cov/a` },
          { name: 'b', hostPath: `${root}/cov/b` },
        ],
      })
    ).body;
    // The node's roots change after registration: volume b is no longer inside them.
    await gw.prisma.node.update({ where: { id: offline }, data: { volumeRoots: [`${root}/cov/a`] } });
    const res = await gw.api('GET', `/v1/instances/${inst.id}/coverage`, { token: member });
    expect(res.status).toBe(200);
    expect(res.body.covered).toEqual(['a']);
    expect(res.body.skipped).toEqual([{ name: 'b', reason: expect.stringContaining('outside the volume roots') }]);
    expect(res.body.volumes[0]).toMatchObject({ name: 'a', covered: true, root: `${root}/cov/a`, reason: null });
    expect(res.body.node).toMatchObject({ known: true, online: false });
    expect(res.body.warnings).toEqual([expect.stringContaining('offline')]);
    expect(res.body.lastBackup).toBeNull();
  });

  it("reports coverage from what the node worker saw: a missing directory is registered but skipped, naming the node's check", async () => {
    const seen = `inst-seen-${gw.tag}`;
    await gw.node(seen, [root]);
    const inst = (
      await register({
        name: 'seen',
        nodeId: seen,
        volumes: [
          { name: 'here', hostPath: `${root}/seen/here` },
          { name: 'gone', hostPath: `${root}/seen/gone` },
          { name: 'file', hostPath: `${root}/seen/file` },
          { name: 'new', hostPath: `${root}/seen/new` },
        ],
      })
    ).body;
    expect(inst.id).toBeDefined();
    const checkedAt = '2026-12-05T08:00:00.000Z';
    // As the node worker's heartbeat reports them ('new' was registered after its last check).
    await gw.prisma.node.update({
      where: { id: seen },
      data: {
        volumeStates: {
          [`${root}/seen/here`]: { state: 'exists', checkedAt },
          [`${root}/seen/gone`]: { state: 'missing', checkedAt },
          [`${root}/seen/file`]: { state: 'not-a-directory', checkedAt },
        },
      },
    });
    const res = await gw.api('GET', `/v1/instances/${inst.id}/coverage`, { token: member });
    expect(res.status).toBe(200);
    expect(res.body.covered).toEqual(['here', 'new']);
    expect(res.body.skipped).toEqual([
      { name: 'file', reason: `node ${seen} reports that ${root}/seen/file is not a directory (checked ${checkedAt})` },
      { name: 'gone', reason: `node ${seen} reports that ${root}/seen/gone does not exist (checked ${checkedAt})` },
    ]);
    const byName = Object.fromEntries(res.body.volumes.map((v: { name: string }) => [v.name, v]));
    expect(byName.gone).toMatchObject({ covered: false, state: 'missing', stateCheckedAt: checkedAt });
    expect(byName.here).toMatchObject({ covered: true, state: 'exists', stateCheckedAt: checkedAt, reason: null });
    expect(byName.new).toMatchObject({ covered: true, state: null, stateCheckedAt: null });
  });

  it('refuses to delete an instance with backups unless forced', async () => {
    const inst = (await register({ name: 'del', nodeId, volumes: [{ name: 'data', hostPath: `${root}/del` }] })).body;
    const started = await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member });
    expect(started.status).toBe(202);
    const refused = await gw.api('DELETE', `/v1/instances/${inst.id}`, { token: member });
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toMatch(/force=true/);

    const forced = await gw.api('DELETE', `/v1/instances/${inst.id}?force=true`, { token: member });
    expect(forced.status).toBe(200);
    expect(forced.body).toEqual({ id: inst.id, deletedBackups: 1, cancelledJobs: [started.body.job.id] });
    expect((await gw.api('GET', `/v1/instances/${inst.id}`, { token: member })).status).toBe(404);
    expect(await gw.prisma.backup.count({ where: { instanceId: inst.id } })).toBe(0);
    // The queued BullMQ job is gone and its record says cancelled.
    expect(await gw.jobQueues.nodeQueue(nodeId).getJob(started.body.job.id)).toBeUndefined();
    expect((await gw.prisma.job.findUnique({ where: { id: started.body.job.id } }))!.status).toBe('cancelled');

    const plain = (await register({ name: 'del2', nodeId, volumes: [{ name: 'data', hostPath: `${root}/del2` }] })).body;
    expect((await gw.api('DELETE', `/v1/instances/${plain.id}`, { token: member })).status).toBe(200);
  });
});
