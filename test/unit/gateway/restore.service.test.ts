import { describe, expect, it } from 'vitest';
import { admin, gatewayFixture, member, rejection } from './gateway-fixture.ts';

async function setup() {
  const f = gatewayFixture();
  f.node('n1', ['/srv/a']);
  f.node('n2', ['/srv/b']);
  const acme = f.tenant('acme');
  const owner = member(acme.id);
  const source = await f.instance(
    {
      name: 'shop',
      nodeId: 'n1',
      volumes: [
        { name: 'db', hostPath: '/srv/a/shop/db' },
        { name: 'files', hostPath: '/srv/a/shop/files' },
      ],
    },
    owner,
  );
  const target = await f.instance({ name: 'copy', nodeId: 'n2', volumes: [{ name: 'files', hostPath: '/srv/b/copy/files' }] }, owner);
  const { backup, job } = await f.backups.start(owner, source.id, {});
  await f.complete(backup.id, job.id);
  const row = (await f.records.backups.get(backup.id))!;
  return { f, owner, source, target, backup: row };
}

describe('RestoreService', () => {
  it('writes a queued restore job for the target node and enqueues it there', async () => {
    const { f, owner, source, backup } = await setup();
    const job = await f.restores.start(owner, backup.id, {});
    expect(job).toMatchObject({ type: 'restore', status: 'queued', instanceId: source.id, backupId: backup.id, targetInstanceId: source.id, nodeId: 'n1' });
    expect((await f.records.jobs.get(job.id))!.params).toEqual({ volumes: ['db', 'files'], mode: 'replace' });
    expect(f.queues.nodeJobs.at(-1)).toEqual({ nodeId: 'n1', name: 'restore', payload: { jobId: job.id }, opts: undefined });
  });

  it('restores chosen volumes into another instance on its node', async () => {
    const { f, owner, target, backup } = await setup();
    const job = await f.restores.start(owner, backup.id, { targetInstanceId: target.id, volumes: ['files'], mode: 'merge' });
    expect(job).toMatchObject({ targetInstanceId: target.id, nodeId: 'n2' });
    expect((await f.records.jobs.get(job.id))!.params).toEqual({ volumes: ['files'], mode: 'merge' });
  });

  it('refuses volumes the backup or the target lacks (400, naming each)', async () => {
    const { f, owner, target, backup } = await setup();
    const notInBackup = await rejection(f.restores.start(owner, backup.id, { volumes: ['files', 'logs'] }));
    expect(notInBackup).toMatchObject({ code: 'validation', details: [{ path: 'volumes.1', message: expect.stringContaining('has no volume logs') }] });
    const notOnTarget = await rejection(f.restores.start(owner, backup.id, { targetInstanceId: target.id }));
    expect(notOnTarget.details).toEqual([{ path: 'targetInstanceId', message: 'target instance copy has no volume named db' }]);
    expect(await f.records.jobs.count({ type: 'restore' })).toBe(0);
  });

  it('refuses a backup that is not completed (409) and one of another tenant (404)', async () => {
    const { f, owner, source } = await setup();
    const { backup } = await f.backups.start(owner, source.id, {});
    expect(await rejection(f.restores.start(owner, backup.id, {}))).toMatchObject({ code: 'conflict', details: { status: 'pending' } });
    const stranger = member(f.tenant('other').id);
    expect((await rejection(f.restores.start(stranger, backup.id, {}))).code).toBe('not-found');
  });

  it('refuses a target of another tenant (404)', async () => {
    const { f, owner, backup } = await setup();
    f.node('n3', ['/srv/c']);
    const foreign = await f.instance({ nodeId: 'n3', tenant: 'other', volumes: [{ name: 'files', hostPath: '/srv/c/files' }] }, admin);
    expect((await rejection(f.restores.start(owner, backup.id, { targetInstanceId: foreign.id, volumes: ['files'] }))).code).toBe('not-found');
  });

  it('refuses a second restore into the same instance while one is queued (409), and a backup of it', async () => {
    const { f, owner, source, backup } = await setup();
    const first = await f.restores.start(owner, backup.id, {});
    expect(await rejection(f.restores.start(owner, backup.id, {}))).toMatchObject({ code: 'conflict', details: { jobId: first.id } });
    expect(await rejection(f.backups.start(owner, source.id, {}))).toMatchObject({ code: 'conflict', details: { jobId: first.id } });
  });

  it('refuses a backup that turned deleting after the checks (409 under the lock)', async () => {
    const { f, owner, backup } = await setup();
    f.queues.onReady = async () => {
      await f.records.backups.transition(backup.id, ['completed'], 'deleting');
    };
    const err = await rejection(f.restores.start(owner, backup.id, {}));
    expect(err).toMatchObject({ code: 'conflict', message: expect.stringContaining('is deleting'), details: { status: 'deleting' } });
    expect(await f.records.jobs.count({ type: 'restore' })).toBe(0);
  });

  it('checks restored paths against the index (400 naming each missing one)', async () => {
    const { f, owner, backup } = await setup();
    await f.storeArchive(backup, { db: { 'dump.sql': 'x' }, files: { 'a/one.txt': '1', 'b.txt': '2' } });
    const job = await f.restores.start(owner, backup.id, { paths: ['files/a', 'db/dump.sql'] });
    expect((await f.records.jobs.get(job.id))!.params).toEqual({ volumes: ['files', 'db'], paths: ['files/a', 'db/dump.sql'], mode: 'replace' });
    await f.records.jobs.transition(job.id, ['queued'], 'succeeded');

    const err = await rejection(f.restores.start(owner, backup.id, { paths: ['files/a/one.txt', 'files/nope', 'logs/x'] }));
    expect(err.details).toEqual([{ path: 'paths.2', message: expect.stringContaining('logs/x is not inside a volume of the backup') }]);
    const missing = await rejection(f.restores.start(owner, backup.id, { paths: ['files/a/one.txt', 'files/nope'] }));
    expect(missing.details).toEqual([{ path: 'paths.1', message: `files/nope is not in backup ${backup.id}` }]);
  });

  it('a lost enqueue marks the restore job failed and answers 503 with its id', async () => {
    const { f, owner, backup } = await setup();
    f.queues.loseEnqueues = true;
    const err = await rejection(f.restores.start(owner, backup.id, {}));
    expect(err.code).toBe('unavailable');
    const { jobId } = err.details as { jobId: string };
    expect(await f.records.jobs.get(jobId)).toMatchObject({
      type: 'restore',
      status: 'failed',
      errorCode: 'unavailable',
      error: expect.stringContaining('could not enqueue the restore'),
    });
    f.queues.loseEnqueues = false;
    expect((await f.restores.start(owner, backup.id, {})).status).toBe('queued');
  });

  it('with Redis down: 503 and no job written', async () => {
    const { f, owner, backup } = await setup();
    f.queues.down = true;
    expect((await rejection(f.restores.start(owner, backup.id, {}))).code).toBe('unavailable');
    expect(await f.records.jobs.count({ type: 'restore' })).toBe(0);
  });
});
