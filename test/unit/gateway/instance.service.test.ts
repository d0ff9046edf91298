import { describe, expect, it } from 'vitest';
import { backupPrefix, newId, UniqueViolation } from '@cairn/core';
import { admin, gatewayFixture, member, rejection } from './gateway-fixture.ts';

describe('InstanceService: registration', () => {
  it('registers an instance with its volumes in the named tenant (created when new)', async () => {
    const f = gatewayFixture();
    f.node('n1', ['/srv/a']);
    const inst = await f.instances.register(admin, {
      name: 'shop',
      nodeId: 'n1',
      tenant: 'acme',
      volumes: [
        { name: 'uploads', hostPath: '/srv/a/shop/uploads', excludes: ['*.tmp'] },
        { name: 'db', hostPath: '/srv/a/shop/db' },
      ],
    });
    expect(inst).toMatchObject({
      name: 'shop',
      tenant: 'acme',
      nodeId: 'n1',
      volumes: [
        { name: 'db', hostPath: '/srv/a/shop/db', excludes: [] },
        { name: 'uploads', hostPath: '/srv/a/shop/uploads', excludes: ['*.tmp'] },
      ],
    });
    expect((await f.records.tenants.getByName('acme'))!.id).toBe(inst.tenantId);
    expect(await f.instances.get(admin, inst.id)).toEqual(inst);
  });

  it('refuses an unknown node and paths outside its volume roots (400, naming each volume)', async () => {
    const f = gatewayFixture();
    f.node('n1', ['/srv/a']);
    const unknown = await rejection(f.instance({ nodeId: 'nope' }));
    expect(unknown).toMatchObject({ code: 'validation', details: [expect.objectContaining({ path: 'nodeId' })] });
    const outside = await rejection(
      f.instance({
        nodeId: 'n1',
        volumes: [
          { name: 'ok', hostPath: '/srv/a/x' },
          { name: 'bad', hostPath: '/srv/ab/x' },
        ],
      }),
    );
    expect(outside.code).toBe('validation');
    expect(outside.details).toEqual([{ path: 'volumes.1.hostPath', message: expect.stringContaining('/srv/ab/x is not inside a volume root of node n1') }]);
    expect(await f.records.instances.find({})).toEqual([]);
  });

  it("refuses volumes nested in another instance's (409), without naming another tenant's instance", async () => {
    const f = gatewayFixture();
    f.node('n1', ['/srv/a']);
    await f.instance({ name: 'mine', nodeId: 'n1', tenant: 'acme', volumes: [{ name: 'd', hostPath: '/srv/a/mine' }] });
    await f.instance({ name: 'theirs', nodeId: 'n1', tenant: 'other', volumes: [{ name: 'private', hostPath: '/srv/a/t' }] });

    const own = await rejection(f.instance({ nodeId: 'n1', tenant: 'acme', volumes: [{ name: 'd', hostPath: '/srv/a/mine/inner' }] }));
    expect(own).toMatchObject({ code: 'conflict', message: expect.stringContaining('volume d of instance mine') });
    const foreign = await rejection(f.instance({ nodeId: 'n1', tenant: 'acme', volumes: [{ name: 'd', hostPath: '/srv/a/t/x' }] }));
    expect(foreign.code).toBe('conflict');
    expect(foreign.message).toContain('a volume of another instance on this node');
    expect(foreign.message).not.toMatch(/theirs|private/);
  });

  it('refuses a duplicate name in the tenant (409 with the existing id) but allows it in another tenant', async () => {
    const f = gatewayFixture();
    f.node('n1', ['/srv/a']);
    const first = await f.instance({ name: 'shop', nodeId: 'n1', tenant: 'acme', volumes: [{ name: 'd', hostPath: '/srv/a/1' }] });
    const dup = await rejection(f.instance({ name: 'shop', nodeId: 'n1', tenant: 'acme', volumes: [{ name: 'd', hostPath: '/srv/a/2' }] }));
    expect(dup).toMatchObject({ code: 'conflict', details: { instanceId: first.id } });
    await f.instance({ name: 'shop', nodeId: 'n1', tenant: 'other', volumes: [{ name: 'd', hostPath: '/srv/a/3' }] });
  });

  it('answers 409 when the database refuses a duplicate that raced past the check', async () => {
    const f = gatewayFixture();
    f.node('n1', ['/srv/a']);
    f.records.failNext('instances.create', new UniqueViolation(['tenantId', 'name']));
    const err = await rejection(f.instance({ name: 'shop', nodeId: 'n1' }));
    expect(err).toMatchObject({ code: 'conflict', message: 'an instance named shop already exists in this tenant' });
  });

  it('registers a member in its own tenant and forbids naming another one', async () => {
    const f = gatewayFixture();
    f.node('n1', ['/srv/a']);
    const acme = f.tenant('acme');
    const inst = await f.instance({ nodeId: 'n1' }, member(acme.id));
    expect(inst.tenantId).toBe(acme.id);
    await f.instance({ nodeId: 'n1', tenant: 'acme', volumes: [{ name: 'd', hostPath: '/srv/a/x' }] }, member(acme.id));
    const err = await rejection(f.instance({ nodeId: 'n1', tenant: 'other', volumes: [{ name: 'd', hostPath: '/srv/a/y' }] }, member(acme.id)));
    expect(err.code).toBe('forbidden');
    expect(await f.records.tenants.getByName('other')).toBeNull();
  });
});

describe('InstanceService: tenancy and listing', () => {
  it("answers 404 for another tenant's instance; the admin sees every tenant", async () => {
    const f = gatewayFixture();
    f.node('n1', ['/srv/a']);
    const acme = f.tenant('acme');
    const other = f.tenant('other');
    const inst = await f.instance({ nodeId: 'n1' }, member(acme.id));
    expect((await rejection(f.instances.get(member(other.id), inst.id))).code).toBe('not-found');
    expect((await rejection(f.instances.update(member(other.id), inst.id, { name: 'x' }))).code).toBe('not-found');
    expect((await rejection(f.instances.remove(member(other.id), inst.id, true))).code).toBe('not-found');
    expect((await f.instances.get(admin, inst.id)).id).toBe(inst.id);
  });

  it('pages newest first with a cursor, confined to the tenant and filtered by node and tenant name', async () => {
    const f = gatewayFixture();
    f.node('n1', ['/srv/a']);
    f.node('n2', ['/srv/a']);
    const acme = f.tenant('acme');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push((await f.instance({ nodeId: i < 3 ? 'n1' : 'n2', volumes: [{ name: 'd', hostPath: `/srv/a/${i}` }] }, member(acme.id))).id);
    await f.instance({ nodeId: 'n1', tenant: 'other', volumes: [{ name: 'd', hostPath: '/srv/a/other' }] });
    const newestFirst = [...ids].sort().reverse();

    const page1 = await f.instances.list(member(acme.id), { limit: 2 });
    expect(page1.items.map((i) => i.id)).toEqual(newestFirst.slice(0, 2));
    const page2 = await f.instances.list(member(acme.id), { limit: 2, cursor: page1.nextCursor! });
    const page3 = await f.instances.list(member(acme.id), { limit: 2, cursor: page2.nextCursor! });
    expect([...page2.items, ...page3.items].map((i) => i.id)).toEqual(newestFirst.slice(2));
    expect(page3.nextCursor).toBeNull();

    expect((await f.instances.list(member(acme.id), { limit: 10, node: 'n2' })).items).toHaveLength(2);
    expect((await f.instances.list(admin, { limit: 10 })).items).toHaveLength(6);
    expect((await f.instances.list(admin, { limit: 10, tenant: 'other' })).items.map((i) => i.tenant)).toEqual(['other']);
  });
});

describe('InstanceService: update', () => {
  it('renames and replaces the volumes, re-checking them against the node roots', async () => {
    const f = gatewayFixture();
    f.node('n1', ['/srv/a']);
    const inst = await f.instance({ name: 'shop', nodeId: 'n1' });
    f.clock.now = new Date(f.clock.now.getTime() + 1000);
    const updated = await f.instances.update(admin, inst.id, { name: 'store', volumes: [{ name: 'files', hostPath: '/srv/a/store/files' }] });
    expect(updated).toMatchObject({ name: 'store', volumes: [{ name: 'files', hostPath: '/srv/a/store/files', excludes: [] }] });
    expect(updated.updatedAt).toBe(f.clock.now.toISOString());
    const refused = await rejection(f.instances.update(admin, inst.id, { volumes: [{ name: 'x', hostPath: '/elsewhere/x' }] }));
    expect(refused.code).toBe('validation');
    expect((await f.instances.get(admin, inst.id)).volumes.map((v) => v.name)).toEqual(['files']);
  });

  it('moves to another node whose roots hold the volumes; an unknown node is 400', async () => {
    const f = gatewayFixture();
    f.node('n1', ['/srv/a']);
    f.node('n2', ['/srv']);
    const inst = await f.instance({ nodeId: 'n1' });
    expect((await f.instances.update(admin, inst.id, { nodeId: 'n2' })).nodeId).toBe('n2');
    expect((await rejection(f.instances.update(admin, inst.id, { nodeId: 'n3' }))).code).toBe('validation');
  });

  it('refuses a rename onto an existing name (409) and a layout change while a backup is queued (409 with the job id)', async () => {
    const f = gatewayFixture();
    f.node('n1', ['/srv/a']);
    f.node('n2', ['/srv/a']);
    const a = await f.instance({ name: 'a', nodeId: 'n1', volumes: [{ name: 'd', hostPath: '/srv/a/a' }] });
    const b = await f.instance({ name: 'b', nodeId: 'n1', volumes: [{ name: 'd', hostPath: '/srv/a/b' }] });
    expect(await rejection(f.instances.update(admin, b.id, { name: 'a' }))).toMatchObject({ code: 'conflict', details: { instanceId: a.id } });

    const { job } = await f.backups.start(admin, a.id, {});
    expect(await rejection(f.instances.update(admin, a.id, { nodeId: 'n2' }))).toMatchObject({ code: 'conflict', details: { jobId: job.id } });
    // A rename alone is not a layout change.
    expect((await f.instances.update(admin, a.id, { name: 'a2' })).name).toBe('a2');
  });
});

describe('InstanceService: remove', () => {
  it('refuses while backups exist, or a job is in flight, unless forced', async () => {
    const f = gatewayFixture();
    f.node('n1', ['/srv/a']);
    const inst = await f.instance({ nodeId: 'n1' });
    const { backup, job } = await f.backups.start(admin, inst.id, {});
    const refused = await rejection(f.instances.remove(admin, inst.id, false));
    expect(refused).toMatchObject({ code: 'conflict', details: { backups: 1 } });

    await f.records.backups.transition(backup.id, ['pending'], 'deleted');
    expect(await rejection(f.instances.remove(admin, inst.id, false))).toMatchObject({ code: 'conflict', details: { jobId: job.id } });
    expect(await f.records.instances.get(inst.id)).not.toBeNull();
  });

  it('removes an instance without backups', async () => {
    const f = gatewayFixture();
    f.node('n1', ['/srv/a']);
    const inst = await f.instance({ nodeId: 'n1' });
    expect(await f.instances.remove(admin, inst.id, false)).toEqual({ id: inst.id, deletedBackups: 0, cancelledJobs: [] });
    expect(await f.records.instances.get(inst.id)).toBeNull();
  });

  it('force: cancels its jobs, removes its schedules with their schedulers, its backup rows and their objects', async () => {
    const f = gatewayFixture();
    f.node('n1', ['/srv/a']);
    const inst = await f.instance({ nodeId: 'n1' });
    const keep = await f.instance({ nodeId: 'n1', volumes: [{ name: 'd', hostPath: '/srv/a/keep' }] });
    const done = await f.backups.start(admin, inst.id, {});
    await f.complete(done.backup.id, done.job.id);
    const running = await f.backups.start(admin, inst.id, {});
    const kept = await f.backups.start(admin, keep.id, {});
    const schedule = await f.records.schedules.create({
      id: newId(),
      instanceId: inst.id,
      cron: '0 3 * * *',
      timezone: 'UTC',
      volumes: [],
      retention: { keepLast: 1 },
      enabled: true,
    });
    await f.store.put(`${backupPrefix(inst.id, done.backup.id)}archive.tar.zst`, Buffer.from('archive'));
    await f.store.put(`${backupPrefix(inst.id, done.backup.id)}index.json.gz`, Buffer.from('index'));
    await f.store.put(`${backupPrefix(keep.id, kept.backup.id)}archive.tar.zst`, Buffer.from('other'));

    const result = await f.instances.remove(admin, inst.id, true);
    expect(result).toEqual({ id: inst.id, deletedBackups: 2, cancelledJobs: [running.job.id] });
    expect(f.queues.cancels).toEqual([{ queueName: 'node.n1', jobId: running.job.id, reason: `instance ${inst.id} deleted` }]);
    expect((await f.records.jobs.get(running.job.id))!.status).toBe('cancelled');
    expect(f.removedSchedulers).toEqual([schedule.id]);
    expect(await f.records.schedules.get(schedule.id)).toBeNull();
    expect(await f.records.backups.find({ instanceId: inst.id })).toEqual([]);
    expect(await f.records.instances.get(inst.id)).toBeNull();
    const left = [];
    for await (const o of f.store.listAll('')) left.push(o.key);
    expect(left).toEqual([`${backupPrefix(keep.id, kept.backup.id)}archive.tar.zst`]);
  });

  it('force with Redis down: 503 and nothing deleted', async () => {
    const f = gatewayFixture();
    f.node('n1', ['/srv/a']);
    const inst = await f.instance({ nodeId: 'n1' });
    const { job } = await f.backups.start(admin, inst.id, {});
    f.queues.down = true;
    expect((await rejection(f.instances.remove(admin, inst.id, true))).code).toBe('unavailable');
    expect(await f.records.instances.get(inst.id)).not.toBeNull();
    expect((await f.records.jobs.get(job.id))!.status).toBe('queued');
  });

  it('force: a scheduler that cannot be removed rolls the deletion back', async () => {
    const f = gatewayFixture();
    f.node('n1', ['/srv/a']);
    const inst = await f.instance({ nodeId: 'n1' });
    const done = await f.backups.start(admin, inst.id, {});
    await f.complete(done.backup.id, done.job.id);
    await f.records.schedules.create({ id: newId(), instanceId: inst.id, cron: '0 3 * * *', timezone: 'UTC', volumes: [], retention: {}, enabled: true });
    f.queues.down = true;
    expect((await rejection(f.instances.remove(admin, inst.id, true))).code).toBe('unavailable');
    expect(await f.records.instances.get(inst.id)).not.toBeNull();
    expect(await f.records.backups.count({ instanceId: inst.id })).toBe(1);
    expect(await f.records.schedules.find({ instanceId: inst.id })).toHaveLength(1);
  });
});

describe('InstanceService: coverage', () => {
  it('names covered and skipped volumes, the node state and the last backup', async () => {
    const f = gatewayFixture();
    f.node('n1', ['/srv/a']);
    const inst = await f.instance({
      nodeId: 'n1',
      volumes: [
        { name: 'in', hostPath: '/srv/a/in' },
        { name: 'in2', hostPath: '/srv/a/in2' },
      ],
    });
    const { backup } = await f.backups.start(admin, inst.id, { volumes: ['in'] });
    // The node's roots shrink after registration (the worker restarted with other VOLUME_ROOTS).
    f.node('n1', ['/srv/a/in'], 120_000);
    const cov = await f.instances.coverage(admin, inst.id);
    expect(cov.covered).toEqual(['in']);
    expect(cov.skipped).toEqual([{ name: 'in2', reason: '/srv/a/in2 is outside the volume roots of node n1 (/srv/a/in)' }]);
    expect(cov.volumes[0]).toMatchObject({ name: 'in', root: '/srv/a/in', freeBytes: 1e9, totalBytes: 2e9, covered: true });
    expect(cov.node).toEqual({
      known: true,
      online: false,
      lastHeartbeatAt: new Date(f.clock.now.getTime() - 120_000).toISOString(),
      heartbeatAgeSeconds: 120,
    });
    expect(cov.warnings).toEqual([expect.stringContaining('node n1 is offline (last heartbeat 120 s ago)')]);
    expect(cov.lastBackup).toMatchObject({ id: backup.id, status: 'pending', warnings: [] });
  });

  it('skips a volume the node reports missing, not a directory or unreadable, with what the node saw', async () => {
    const f = gatewayFixture();
    f.node('n1', ['/srv/a']);
    const inst = await f.instance({
      nodeId: 'n1',
      volumes: ['ok', 'gone', 'file', 'locked', 'unseen'].map((name) => ({ name, hostPath: `/srv/a/${name}` })),
    });
    const checkedAt = '2026-12-01T11:59:55.000Z';
    await f.records.nodes.heartbeat('n1', {
      volumeRoots: ['/srv/a'],
      version: 'test',
      lastHeartbeatAt: f.clock.now,
      capacity: { roots: { '/srv/a': { freeBytes: 1e9, totalBytes: 2e9 } } },
      volumeStates: {
        '/srv/a/ok': { state: 'exists', checkedAt },
        '/srv/a/gone': { state: 'missing', checkedAt },
        '/srv/a/file': { state: 'not-a-directory', checkedAt },
        '/srv/a/locked': { state: 'unreadable', checkedAt, error: 'EACCES' },
      },
    });
    const cov = await f.instances.coverage(admin, inst.id);
    expect(cov.covered).toEqual(['ok', 'unseen']);
    expect(cov.skipped).toEqual([
      { name: 'file', reason: `node n1 reports that /srv/a/file is not a directory (checked ${checkedAt})` },
      { name: 'gone', reason: `node n1 reports that /srv/a/gone does not exist (checked ${checkedAt})` },
      { name: 'locked', reason: `node n1 cannot read /srv/a/locked: EACCES (checked ${checkedAt})` },
    ]);
    expect(cov.volumes.map((v) => [v.name, v.state, v.stateCheckedAt])).toEqual([
      ['file', 'not-a-directory', checkedAt],
      ['gone', 'missing', checkedAt],
      ['locked', 'unreadable', checkedAt],
      ['ok', 'exists', checkedAt],
      ['unseen', null, null],
    ]);
  });
});

describe('InstanceService: the default tenant', () => {
  it("registers an admin's instance without a tenant into 'default', created on first use", async () => {
    const f = gatewayFixture();
    f.node('n1', ['/srv/a']);
    expect(await f.records.tenants.getByName('default')).toBeNull();
    const tenantless = { ...admin, tenantId: null };
    const first = await f.instances.register(tenantless, { name: 'one', nodeId: 'n1', volumes: [{ name: 'd', hostPath: '/srv/a/one' }] });
    const second = await f.instances.register(tenantless, { name: 'two', nodeId: 'n1', volumes: [{ name: 'd', hostPath: '/srv/a/two' }] });
    const tenant = await f.records.tenants.getByName('default');
    expect(first).toMatchObject({ tenant: 'default', tenantId: tenant!.id });
    expect(second.tenantId).toBe(tenant!.id);
    // An admin token with a tenant of its own still registers there.
    const own = await f.tenant('ops');
    const mine = await f.instances.register(
      { ...admin, tenantId: own.id },
      { name: 'three', nodeId: 'n1', volumes: [{ name: 'd', hostPath: '/srv/a/three' }] },
    );
    expect(mine.tenant).toBe('ops');
  });
});
