import { describe, expect, it } from 'vitest';
import { newId } from '@cairn/core';
import { admin, gatewayFixture, member, rejection } from './gateway-fixture.ts';

describe('NodeService', () => {
  it('lists nodes by id with online state, heartbeat age and running/queued job counts', async () => {
    const f = gatewayFixture();
    f.node('n2', ['/srv/b'], 5_000);
    f.node('n1', ['/srv/a'], 600_000);
    f.node('n3', ['/srv/c'], null);
    const a = await f.instance({ nodeId: 'n1', volumes: [{ name: 'd', hostPath: '/srv/a/x' }] });
    const b = await f.instance({ nodeId: 'n2', volumes: [{ name: 'd', hostPath: '/srv/b/x' }] });
    const c = await f.instance({ nodeId: 'n2', volumes: [{ name: 'd', hostPath: '/srv/b/y' }] });
    await f.backups.start(admin, a.id, {});
    const running = await f.backups.start(admin, b.id, {});
    await f.records.jobs.transition(running.job.id, ['queued'], 'running');
    await f.backups.start(admin, c.id, {});
    // Ended jobs and jobs of no node do not count.
    const ended = await f.records.jobs.create({ id: newId(), type: 'backup', status: 'succeeded', nodeId: 'n1', requestedBy: 'x' });
    await f.records.jobs.create({ id: newId(), type: 'sweep', status: 'running', requestedBy: 'system' });
    expect(ended.status).toBe('succeeded');

    const list = await f.nodes.list();
    expect(list.nextCursor).toBeNull();
    expect(list.items.map((n) => [n.id, n.status, n.runningJobs, n.queuedJobs])).toEqual([
      ['n1', 'offline', 0, 1],
      ['n2', 'online', 1, 1],
      ['n3', 'offline', 0, 0],
    ]);
    expect(list.items[0]).toMatchObject({ volumeRoots: ['/srv/a'], heartbeatAgeSeconds: 600, version: 'test' });
    expect(list.items[2]!.heartbeatAgeSeconds).toBeNull();
    expect(await f.nodes.ids()).toEqual(['n1', 'n2', 'n3']);
  });

  it('shows one node with its own counts; an unknown node is 404', async () => {
    const f = gatewayFixture();
    f.node('n1', ['/srv/a']);
    const a = await f.instance({ nodeId: 'n1', volumes: [{ name: 'd', hostPath: '/srv/a/x' }] });
    await f.backups.start(admin, a.id, {});
    expect(await f.nodes.get(admin, 'n1')).toMatchObject({ id: 'n1', status: 'online', runningJobs: 0, queuedJobs: 1 });
    expect((await rejection(f.nodes.get(admin, 'n9'))).code).toBe('not-found');
  });

  it("lists the node's active and recent jobs and its instances' schedules; a member sees only its tenant's", async () => {
    const f = gatewayFixture();
    f.node('n1', ['/srv/a']);
    f.node('n2', ['/srv/b']);
    const ours = await f.instance({ nodeId: 'n1', tenant: 'acme', volumes: [{ name: 'd', hostPath: '/srv/a/ours' }] });
    const theirs = await f.instance({ nodeId: 'n1', tenant: 'other', volumes: [{ name: 'd', hostPath: '/srv/a/theirs' }] });
    const elsewhere = await f.instance({ nodeId: 'n2', tenant: 'acme', volumes: [{ name: 'd', hostPath: '/srv/b/x' }] });
    const done = await f.backups.start(admin, ours.id, {});
    await f.complete(done.backup.id, done.job.id);
    const active = await f.backups.start(admin, ours.id, {});
    const other = await f.backups.start(admin, theirs.id, {});
    await f.backups.start(admin, elsewhere.id, {});
    const sweep = await f.records.jobs.create({ id: newId(), type: 'sweep', status: 'failed', nodeId: 'n1', requestedBy: 'system' });
    const schedule = (instanceId: string) =>
      f.records.schedules.create({ id: newId(), instanceId, cron: '0 * * * *', timezone: 'UTC', volumes: [], retention: { keepLast: 1 }, enabled: true });
    const s1 = await schedule(ours.id);
    const s2 = await schedule(theirs.id);
    await schedule(elsewhere.id);

    const all = await f.nodes.get(admin, 'n1');
    expect(all.activeJobs.map((j) => j.id).sort()).toEqual([active.job.id, other.job.id].sort());
    expect(all.recentJobs.map((j) => j.id).sort()).toEqual([done.job.id, sweep.id].sort());
    expect(all.schedules.map((s) => s.id)).toEqual([s1.id, s2.id].sort());

    const acme = (await f.records.tenants.getByName('acme'))!;
    const mine = await f.nodes.get(member(acme.id), 'n1');
    expect(mine.activeJobs.map((j) => j.id)).toEqual([active.job.id]);
    expect(mine.recentJobs.map((j) => j.id)).toEqual([done.job.id]);
    expect(mine.schedules.map((s) => s.id)).toEqual([s1.id]);
  });
});
