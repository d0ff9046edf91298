import { describe, expect, it } from 'vitest';
import { newId } from '@cairn/core';
import { admin, gatewayFixture, rejection } from './gateway-fixture.ts';

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
    expect(await f.nodes.get('n1')).toMatchObject({ id: 'n1', status: 'online', runningJobs: 0, queuedJobs: 1 });
    expect((await rejection(f.nodes.get('n9'))).code).toBe('not-found');
  });
});
