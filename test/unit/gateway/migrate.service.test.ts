import { describe, expect, it } from 'vitest';
import { newId, type JobStatus, type JobType } from '@cairn/core';
import { MigrateService } from '@cairn/gateway/services/migrate.service.ts';
import { migrateRequest, migrateStage } from '@cairn/cli/migrate.command.ts';
import { admin, gatewayFixture, member, rejection } from './gateway-fixture.ts';

async function setup() {
  const f = gatewayFixture();
  f.node('n1', ['/srv/a']);
  f.node('n2', ['/srv/b']);
  f.node('down', ['/srv/c'], 5 * 60_000);
  const acme = f.tenant('acme');
  const owner = member(acme.id);
  const migrations = new MigrateService({
    records: f.records,
    queues: f.queues,
    instances: f.instances,
    backups: f.backups,
    files: f.files,
    logger: f.logger,
    now: () => new Date(f.clock.now),
  });
  const source = await f.instance({ name: 'src', nodeId: 'n1', volumes: [{ name: 'data', hostPath: '/srv/a/src/data' }] }, owner);
  const target = await f.instance({ name: 'dst', nodeId: 'n2', volumes: [{ name: 'data', hostPath: '/srv/b/dst/data' }] }, owner);
  return { f, owner, migrations, source, target };
}

describe('MigrateService', () => {
  it('writes one queued migrate Job on control and enqueues it as "migrate" with its id', async () => {
    const { f, owner, migrations, source } = await setup();
    const job = await migrations.fromInstance(owner, source.id, { targetNodeId: 'n2', hostPaths: { data: '/srv/b/src/data' } });
    expect(job).toMatchObject({
      type: 'migrate',
      status: 'queued',
      queue: 'control',
      nodeId: null,
      instanceId: source.id,
      targetInstanceId: source.id,
      params: { mode: 'move', sourceInstanceId: source.id, targetNodeId: 'n2', hostPaths: { data: '/srv/b/src/data' } },
      children: [],
    });
    expect(f.queues.controlJobs).toEqual([{ name: 'migrate', payload: { jobId: job.id }, jobId: job.id, opts: undefined }]);
  });

  it('marks the Job failed and answers 503 when the enqueue is lost', async () => {
    const { f, owner, migrations, source, target } = await setup();
    f.queues.loseEnqueues = true;
    const err = await rejection(migrations.fromInstance(owner, source.id, { targetInstanceId: target.id }));
    expect(err.code).toBe('unavailable');
    const jobId = (err.details as { jobId: string }).jobId;
    expect(await f.records.jobs.get(jobId)).toMatchObject({ type: 'migrate', status: 'failed', errorCode: 'unavailable' });
  });

  it('re-checks under the lock: an instance claiming the host path between the check and the write wins', async () => {
    const { f, owner, migrations, source } = await setup();
    f.queues.onReady = async () => {
      f.queues.onReady = undefined;
      await f.instance({ name: 'late', nodeId: 'n2', volumes: [{ name: 'data', hostPath: '/srv/b/src/data' }] }, owner);
    };
    const err = await rejection(migrations.fromInstance(owner, source.id, { targetNodeId: 'n2', hostPaths: { data: '/srv/b/src/data' } }));
    expect(err.code).toBe('conflict');
    expect(err.message).toMatch(/volume data of instance late/);
    expect(await f.records.jobs.count({ type: 'migrate' })).toBe(0);
  });

  it('refuses an offline node and a copy across tenants by an admin', async () => {
    const { f, owner, migrations, source } = await setup();
    expect((await rejection(migrations.fromInstance(owner, source.id, { targetNodeId: 'down' }))).message).toMatch(/node down is offline/);
    const other = await f.instance({ name: 'x', nodeId: 'n2', tenant: 'other', volumes: [{ name: 'data', hostPath: '/srv/b/x/data' }] }, admin);
    const err = await rejection(migrations.fromInstance(admin, source.id, { targetInstanceId: other.id }));
    expect(err.code).toBe('validation');
    expect(err.message).toMatch(/a copy stays within one tenant/);
  });
});

describe('cancelling a migrate job', () => {
  async function withChildren() {
    const { f, owner, migrations, source, target } = await setup();
    const parent = await migrations.fromInstance(owner, source.id, { targetInstanceId: target.id });
    let step = 0;
    /** A child as the handler makes them: `<parent>-<step>` ids (not in age order), created a second apart. */
    const child = async (type: JobType, status: JobStatus, nodeId: string) => {
      f.clock.now = new Date(f.clock.now.getTime() + 1000);
      const id = `${parent.id}-${['z', 'a'][step++ % 2]}${step}`;
      await f.records.jobs.create({ id, type, status, nodeId, queue: `node.${nodeId}`, instanceId: source.id, requestedBy: 'system', parentJobId: parent.id });
      return id;
    };
    return { f, owner, parent, child };
  }

  it('cancels its queued children with it; ended ones are left alone', async () => {
    const { f, owner, parent, child } = await withChildren();
    const done = await child('backup', 'succeeded', 'n1');
    const queued = await child('restore', 'queued', 'n2');
    const { outcome, job } = await f.jobs.cancel(owner, parent.id);
    expect(outcome).toBe('done');
    expect(job.status).toBe('cancelled');
    expect(job.children?.map((c) => [c.id, c.status])).toEqual([
      [done, 'succeeded'],
      [queued, 'cancelled'],
    ]);
    expect(f.queues.cancels.map((c) => c.jobId)).toEqual([parent.id, queued]);
  });

  it('signals a running parent and its running children alike', async () => {
    const { f, owner, parent, child } = await withChildren();
    await f.records.jobs.transition(parent.id, ['queued'], 'running');
    const running = await child('backup', 'running', 'n1');
    f.queues.cancelOutcome = 'signalled';
    const { outcome, job } = await f.jobs.cancel(owner, parent.id);
    expect(outcome).toBe('signalled');
    expect(job.status).toBe('running');
    expect(f.queues.cancels).toEqual([
      { queueName: 'control', jobId: parent.id, reason: expect.any(String) },
      { queueName: 'node.n1', jobId: running, reason: expect.any(String) },
    ]);
  });

  it('leaves the children of other job types alone', async () => {
    const { f, owner } = await setup();
    const src = (await f.instances.list(owner, { limit: 10 })).items.find((i) => i.name === 'src')!;
    const { job } = await f.backups.start(owner, src.id, {});
    await f.records.jobs.create({ id: newId(), type: 'cleanup', status: 'queued', queue: 'control', requestedBy: 'system', parentJobId: job.id });
    await f.jobs.cancel(owner, job.id);
    expect(f.queues.cancels.map((c) => c.jobId)).toEqual([job.id]);
  });
});

describe('cairn migrate (request and stage)', () => {
  const usage = (m: string) => new Error(`usage: ${m}`);

  it('builds a move, a copy and a migrate from a backup', () => {
    expect(migrateRequest({ instance: 'i1', toNode: 'n2', path: ['data=/srv/b/data'], wait: true }, usage)).toEqual({
      route: '/v1/instances/i1/migrate',
      body: { targetNodeId: 'n2', hostPaths: { data: '/srv/b/data' } },
    });
    expect(migrateRequest({ instance: 'i1', toInstance: 'i2', volumes: 'a, b', paths: 'a/x,b/y', wait: true }, usage)).toEqual({
      route: '/v1/instances/i1/migrate',
      body: { targetInstanceId: 'i2', volumes: ['a', 'b'], paths: ['a/x', 'b/y'] },
    });
    expect(migrateRequest({ fromBackup: 'b1', toNode: 'n2', wait: true }, usage)).toEqual({ route: '/v1/backups/b1/migrate', body: { targetNodeId: 'n2' } });
  });

  it.each([
    [{ instance: 'i', wait: true }, /exactly one of --to-node/],
    [{ instance: 'i', toNode: 'n', toInstance: 'j', wait: true }, /exactly one of --to-node/],
    [{ toNode: 'n', wait: true }, /missing instance id/],
    [{ instance: 'i', toNode: 'n', path: ['data=relative'], wait: true }, /--path must be volume=\/absolute\/path/],
    [{ instance: 'i', toNode: 'n', path: ['d=/a', 'd=/b'], wait: true }, /names volume d twice/],
    [{ instance: 'i', toNode: 'n', volumes: 'a', wait: true }, /go with --to-instance/],
    [{ instance: 'i', toInstance: 'j', path: ['d=/a'], wait: true }, /goes with --to-node/],
    [{ instance: 'i', toInstance: 'j', volumes: ',', wait: true }, /at least one volume/],
  ])('refuses %j', (args, message) => {
    expect(() => migrateRequest(args, usage)).toThrow(message);
  });

  it('shows the step of the child at work, else the migrate’s stage', () => {
    expect(migrateStage({ id: 'm', status: 'queued', progress: null })).toBe('queued');
    const children = [
      { id: 'm-bulk-backup', type: 'backup', status: 'succeeded', nodeId: 'n1' },
      { id: 'm-bulk-restore', type: 'restore', status: 'running', nodeId: 'n2' },
    ];
    expect(migrateStage({ id: 'm', status: 'running', progress: { stage: 'bulk-backup' }, children })).toBe('bulk-restore (restore running on n2)');
    expect(migrateStage({ id: 'x', status: 'running', progress: { stage: 'bulk-backup' }, children })).toBe('restore (restore running on n2)');
    children[1]!.status = 'succeeded';
    expect(migrateStage({ id: 'm', status: 'running', progress: { stage: 'switch' }, children })).toBe('switch');
  });
});
