import { describe, expect, it, vi } from 'vitest';
import { admin, gatewayFixture, member, rejection } from './gateway-fixture.ts';

async function setup(options: { manualBackupLimit?: number } = {}) {
  const f = gatewayFixture(options);
  f.node('n1', ['/srv/a']);
  const acme = f.tenant('acme');
  const inst = await f.instance(
    {
      name: 'shop',
      nodeId: 'n1',
      volumes: [
        { name: 'db', hostPath: '/srv/a/shop/db' },
        { name: 'files', hostPath: '/srv/a/shop/files' },
      ],
    },
    member(acme.id),
  );
  return { f, acme, inst, owner: member(acme.id) };
}

describe('BackupService.start', () => {
  it('writes a pending backup and a queued job, and enqueues the job on the node queue under its id', async () => {
    const { f, inst, owner } = await setup();
    const { backup, job } = await f.backups.start(owner, inst.id, {});
    expect(backup).toMatchObject({ instanceId: inst.id, status: 'pending', trigger: 'manual', kind: 'full', volumes: ['db', 'files'] });
    expect(job).toMatchObject({ type: 'backup', status: 'queued', instanceId: inst.id, backupId: backup.id, nodeId: 'n1' });
    expect(f.queues.nodeJobs).toEqual([{ nodeId: 'n1', name: 'backup', payload: { jobId: job.id }, opts: undefined }]);
    const row = await f.records.backups.get(backup.id);
    expect(row).toMatchObject({ compression: 'gzip', requestedBy: owner.tokenId });
    expect(row!.storageKey).toContain(backup.id);
    expect((await f.records.jobs.get(job.id))!.params).toEqual({ volumes: ['db', 'files'] });
  });

  it('backs up only the chosen volumes; unknown ones are 400 naming each', async () => {
    const { f, inst, owner } = await setup();
    expect((await f.backups.start(owner, inst.id, { volumes: ['files'] })).backup.volumes).toEqual(['files']);
    const err = await rejection(f.backups.start(owner, inst.id, { volumes: ['db', 'logs'] }));
    expect(err).toMatchObject({ code: 'validation', details: [{ path: 'volumes.1', message: expect.stringContaining('has no volume logs') }] });
  });

  it('answers 422 when no chosen volume lies in the node roots, or the node is not registered', async () => {
    const { f, inst, owner } = await setup();
    f.node('n1', ['/srv/b']);
    expect((await rejection(f.backups.start(owner, inst.id, {}))).code).toBe('no-data');
    expect(await f.records.backups.count({ instanceId: inst.id })).toBe(0);
  });

  it('refuses a second backup while one is queued (409 with the job id); only one of concurrent requests passes', async () => {
    const { f, inst, owner } = await setup();
    const first = await f.backups.start(owner, inst.id, {});
    expect(await rejection(f.backups.start(owner, inst.id, {}))).toMatchObject({ code: 'conflict', details: { jobId: first.job.id } });

    const other = await f.instance({ nodeId: 'n1', volumes: [{ name: 'd', hostPath: '/srv/a/other' }] }, owner);
    const results = await Promise.allSettled([1, 2, 3, 4].map(() => f.backups.start(owner, other.id, {})));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason.code)).toEqual(['conflict', 'conflict', 'conflict']);
  });

  it('answers 429 past the manual backup limit; deleted ones do not count', async () => {
    const { f, inst, owner } = await setup({ manualBackupLimit: 2 });
    for (let i = 0; i < 2; i++) {
      const { backup, job } = await f.backups.start(owner, inst.id, {});
      await f.complete(backup.id, job.id);
    }
    const err = await rejection(f.backups.start(owner, inst.id, {}));
    expect(err).toMatchObject({ code: 'limit', details: { limit: 2, count: 2 } });
    const [oldest] = await f.records.backups.find({ instanceId: inst.id });
    await f.records.backups.transition(oldest!.id, ['completed'], 'deleted');
    expect((await f.backups.start(owner, inst.id, {})).backup.status).toBe('pending');
  });

  it('with Redis down: 503 before anything is written', async () => {
    const { f, inst, owner } = await setup();
    f.queues.down = true;
    expect((await rejection(f.backups.start(owner, inst.id, {}))).code).toBe('unavailable');
    expect(await f.records.backups.count({ instanceId: inst.id })).toBe(0);
    expect(await f.records.jobs.count({ instanceId: inst.id })).toBe(0);
  });

  it('a lost enqueue marks the backup and job failed and answers 503 with their ids; the next request passes', async () => {
    const { f, inst, owner } = await setup();
    f.queues.loseEnqueues = true;
    const err = await rejection(f.backups.start(owner, inst.id, {}));
    expect(err.code).toBe('unavailable');
    const { backupId, jobId } = err.details as { backupId: string; jobId: string };
    expect(await f.records.backups.get(backupId)).toMatchObject({ status: 'failed', error: expect.stringContaining('could not enqueue the backup') });
    expect(await f.records.jobs.get(jobId)).toMatchObject({ status: 'failed', errorCode: 'unavailable', finishedAt: f.clock.now });
    f.queues.loseEnqueues = false;
    expect((await f.backups.start(owner, inst.id, {})).job.status).toBe('queued');
  });

  it('retries marking the rows failed through a database blip', async () => {
    const { f, inst, owner } = await setup();
    f.queues.loseEnqueues = true;
    f.records.failNext('jobs.transition');
    f.records.failNext('backups.transition');
    const err = await rejection(f.backups.start(owner, inst.id, {}));
    const { backupId, jobId } = err.details as { backupId: string; jobId: string };
    expect(err.code).toBe('unavailable');
    expect((await f.records.jobs.get(jobId))!.status).toBe('failed');
    expect((await f.records.backups.get(backupId))!.status).toBe('failed');
  });

  it('logs a failed-write that keeps failing with the ids and the enqueue error, and still answers 503', async () => {
    const { f, inst, owner } = await setup();
    const logged = vi.spyOn(f.logger, 'error');
    f.queues.loseEnqueues = true;
    for (let i = 0; i < 3; i++) f.records.failNext('jobs.transition', new Error('database gone'));
    const err = await rejection(f.backups.start(owner, inst.id, {}));
    const { backupId, jobId } = err.details as { backupId: string; jobId: string };
    expect(err.code).toBe('unavailable');
    expect(logged).toHaveBeenCalledWith(
      { jobId, backupId, err: 'database gone', cause: expect.stringContaining('could not enqueue the backup') },
      `could not mark job ${jobId} failed after its enqueue failed; the sweep will close it`,
    );
    expect((await f.records.jobs.get(jobId))!.status).toBe('queued');
    expect((await f.records.backups.get(backupId))!.status).toBe('failed');
  });

  it("answers 404 for another tenant's instance", async () => {
    const { f, inst } = await setup();
    const stranger = member(f.tenant('other').id);
    expect((await rejection(f.backups.start(stranger, inst.id, {}))).code).toBe('not-found');
  });
});

describe('BackupService.list and get', () => {
  it('pages newest first, hides deleted backups unless asked, filters by status and trigger', async () => {
    const { f, inst, owner } = await setup({ manualBackupLimit: 10 });
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { backup, job } = await f.backups.start(owner, inst.id, {});
      await f.complete(backup.id, job.id);
      ids.push(backup.id);
    }
    await f.records.backups.transition(ids[0]!, ['completed'], 'deleted');
    const visible = ids.slice(1).sort().reverse();

    const page1 = await f.backups.list(owner, inst.id, { limit: 2 });
    expect(page1.items.map((b) => b.id)).toEqual(visible.slice(0, 2));
    const page2 = await f.backups.list(owner, inst.id, { limit: 2, cursor: page1.nextCursor! });
    expect(page2.items.map((b) => b.id)).toEqual(visible.slice(2));
    expect(page2.nextCursor).toBeNull();

    expect((await f.backups.list(owner, inst.id, { limit: 10, status: ['deleted'] })).items.map((b) => b.id)).toEqual([ids[0]]);
    expect((await f.backups.list(owner, inst.id, { limit: 10, trigger: ['schedule'] })).items).toEqual([]);
  });

  it("hides another tenant's backups (404)", async () => {
    const { f, inst, owner } = await setup();
    const { backup } = await f.backups.start(owner, inst.id, {});
    const stranger = member(f.tenant('other').id);
    expect((await rejection(f.backups.get(stranger, backup.id))).code).toBe('not-found');
    expect((await rejection(f.backups.list(stranger, inst.id, { limit: 10 }))).code).toBe('not-found');
    expect((await f.backups.get(admin, backup.id)).id).toBe(backup.id);
  });
});

describe('BackupService.remove', () => {
  it('turns a completed backup deleting and enqueues a cleanup control job', async () => {
    const { f, inst, owner } = await setup();
    const { backup, job } = await f.backups.start(owner, inst.id, {});
    await f.complete(backup.id, job.id);
    const res = await f.backups.remove(owner, backup.id);
    expect(res.backup).toMatchObject({ id: backup.id, status: 'deleting' });
    expect(res.job).toMatchObject({ type: 'cleanup', status: 'queued', backupId: backup.id });
    expect(f.queues.controlJobs).toEqual([{ name: 'cleanup', payload: { backupId: backup.id, jobId: res.job!.id }, jobId: res.job!.id, opts: undefined }]);
    // Repeating reuses the active cleanup job.
    expect((await f.backups.remove(owner, backup.id)).job!.id).toBe(res.job!.id);
  });

  it('cancels the job still producing the backup', async () => {
    const { f, inst, owner } = await setup();
    const { backup, job } = await f.backups.start(owner, inst.id, {});
    await f.backups.remove(owner, backup.id);
    expect(f.queues.cancels).toEqual([{ queueName: 'node.n1', jobId: job.id, reason: `backup ${backup.id} deleted` }]);
    expect((await f.records.jobs.get(job.id))!.status).toBe('cancelled');
    expect((await f.records.backups.get(backup.id))!.status).toBe('deleting');
  });

  it('refuses while a restore reads the backup (409), and for another tenant (404)', async () => {
    const { f, inst, owner } = await setup();
    const { backup, job } = await f.backups.start(owner, inst.id, {});
    await f.complete(backup.id, job.id);
    const restore = await f.restores.start(owner, backup.id, {});
    expect(await rejection(f.backups.remove(owner, backup.id))).toMatchObject({ code: 'conflict', details: { jobId: restore.id } });
    expect((await rejection(f.backups.remove(member(f.tenant('other').id), backup.id))).code).toBe('not-found');
  });

  it('a lost cleanup enqueue fails the cleanup job (503) and a repeat starts a new one', async () => {
    const { f, inst, owner } = await setup();
    const { backup, job } = await f.backups.start(owner, inst.id, {});
    await f.complete(backup.id, job.id);
    f.queues.loseEnqueues = true;
    const err = await rejection(f.backups.remove(owner, backup.id));
    expect(err).toMatchObject({ code: 'unavailable', details: { backupId: backup.id } });
    const lost = (err.details as { jobId: string }).jobId;
    expect(await f.records.jobs.get(lost)).toMatchObject({ type: 'cleanup', status: 'failed', errorCode: 'unavailable' });
    f.queues.loseEnqueues = false;
    const again = await f.backups.remove(owner, backup.id);
    expect(again.job!.id).not.toBe(lost);
    expect(f.queues.controlJobs.map((j) => j.jobId)).toEqual([again.job!.id]);
  });

  it('batch: one result per id in request order', async () => {
    const { f, inst, owner } = await setup();
    const { backup, job } = await f.backups.start(owner, inst.id, {});
    await f.complete(backup.id, job.id);
    const res = await f.backups.removeMany(owner, [backup.id, 'missing', backup.id]);
    expect(res.results).toEqual([
      { id: backup.id, ok: true, status: 'deleting', jobId: expect.any(String) },
      { id: 'missing', ok: false, error: { code: 'not-found', message: 'backup missing not found' } },
      { id: backup.id, ok: true, status: 'deleting', jobId: res.results[0]!.ok ? res.results[0]!.jobId : null },
    ]);
    expect(f.queues.controlJobs.every((j) => j.name === 'cleanup')).toBe(true);
  });

  it('batch: a database failure on one id is reported for that id only', async () => {
    const { f, inst, owner } = await setup();
    const { backup, job } = await f.backups.start(owner, inst.id, {});
    await f.complete(backup.id, job.id);
    f.records.failNext('backups.findFirst', Object.assign(new Error('connection lost'), { code: 'P1001' }));
    const res = await f.backups.removeMany(owner, ['first', backup.id]);
    expect(res.results[0]).toEqual({ id: 'first', ok: false, error: { code: 'unavailable', message: 'database unavailable' } });
    expect(res.results[1]).toMatchObject({ id: backup.id, ok: true, status: 'deleting' });
  });
});
