import { beforeEach, describe, expect, it } from 'vitest';
import { CairnError, CONTROL_QUEUE, MemoryRecords, newId, softDeleteBackup, softDeleteBackups } from '@cairn/core';
import { FakeQueues, manualClock, seedBackup, seedInstance } from './support/fakes.ts';

/** The one soft delete (SPEC §10) over in-memory records and queues. */
describe('softDeleteBackup', () => {
  let clock: ReturnType<typeof manualClock>;
  let records: MemoryRecords;
  let queues: FakeQueues;
  let instanceId: string;
  let tenantId: string;
  let nodeId: string;

  beforeEach(async () => {
    clock = manualClock();
    records = new MemoryRecords({ clock: clock.now });
    queues = new FakeQueues(clock.now);
    ({ instanceId, tenantId, nodeId } = await seedInstance(records));
  });

  const cleanupsOf = (backupId: string) => records.jobs.find({ backupId, type: 'cleanup' });

  it('marks the backup deleting, writes one cleanup job and enqueues it under its own id', async () => {
    const id = await seedBackup(records, instanceId);

    const deleted = await softDeleteBackup(records, queues, id, 'token-1', { now: clock.now, reason: 'user', params: { note: 'x' } });

    expect(deleted.backup).toMatchObject({ id, status: 'deleting', deletedAt: clock.now() });
    expect(deleted.cleanupJob).toMatchObject({
      type: 'cleanup',
      status: 'queued',
      backupId: id,
      instanceId,
      queue: CONTROL_QUEUE,
      requestedBy: 'token-1',
      params: { reason: 'user', note: 'x' },
    });
    expect(queues.waiting(CONTROL_QUEUE)).toEqual([
      expect.objectContaining({ name: 'cleanup', jobId: deleted.cleanupJob!.id, payload: { backupId: id, jobId: deleted.cleanupJob!.id } }),
    ]);
    expect(await records.backups.get(id)).toMatchObject({ status: 'deleting' });
  });

  it('repeating it reuses the active cleanup job; a deleted backup is left alone', async () => {
    const id = await seedBackup(records, instanceId);
    const first = await softDeleteBackup(records, queues, id, 'token-1');

    const again = await softDeleteBackup(records, queues, id, 'token-2');

    expect(again.cleanupJob?.id).toBe(first.cleanupJob!.id);
    expect(await cleanupsOf(id)).toHaveLength(1);
    expect(queues.waiting(CONTROL_QUEUE)).toHaveLength(1);

    await records.backups.transition(id, ['deleting'], 'deleted');
    const done = await softDeleteBackup(records, queues, id, 'token-3');
    expect(done).toMatchObject({ backup: { status: 'deleted' }, cleanupJob: null, cancelledJobs: [] });
    expect(await cleanupsOf(id)).toHaveLength(1);
  });

  it('refuses with conflict while a restore reads the backup, and changes nothing', async () => {
    const id = await seedBackup(records, instanceId);
    const restore = await records.jobs.create({ id: newId(), type: 'restore', status: 'running', backupId: id, instanceId, requestedBy: 'token' });

    const err = await softDeleteBackup(records, queues, id, 'token-1').catch((e: unknown) => e);

    expect(err).toBeInstanceOf(CairnError);
    expect(err).toMatchObject({ code: 'conflict', details: { jobId: restore.id } });
    expect((err as Error).message).toContain(`restore job ${restore.id}`);
    expect(await records.backups.get(id)).toMatchObject({ status: 'completed', deletedAt: null });
    expect(await cleanupsOf(id)).toHaveLength(0);
    expect(queues.enqueueCalls).toBe(0);

    // Once the restore is over, the delete goes through.
    await records.jobs.transition(restore.id, ['running'], 'succeeded');
    expect((await softDeleteBackup(records, queues, id, 'token-1')).backup.status).toBe('deleting');
  });

  it('answers not-found for an unknown backup or another tenant, conflict for a state outside `from`', async () => {
    const id = await seedBackup(records, instanceId);
    const running = await seedBackup(records, instanceId, { status: 'running' });

    await expect(softDeleteBackup(records, queues, 'nope', 'token')).rejects.toMatchObject({ code: 'not-found' });
    await expect(softDeleteBackup(records, queues, id, 'token', { tenantId: newId() })).rejects.toMatchObject({ code: 'not-found' });
    await expect(softDeleteBackup(records, queues, running, 'token', { from: ['completed'] })).rejects.toMatchObject({
      code: 'conflict',
      details: { status: 'running' },
    });
    expect(await records.backups.get(running)).toMatchObject({ status: 'running' });
    expect((await softDeleteBackup(records, queues, id, 'token', { tenantId })).backup.status).toBe('deleting');
  });

  it('changes nothing while Redis is down', async () => {
    const id = await seedBackup(records, instanceId);
    queues.down = true;

    await expect(softDeleteBackup(records, queues, id, 'token')).rejects.toMatchObject({ code: 'unavailable' });

    expect(await records.backups.get(id)).toMatchObject({ status: 'completed' });
    expect(await cleanupsOf(id)).toHaveLength(0);
  });

  it('an enqueue failure fails the cleanup job, keeps the backup deleting, answers unavailable; a repeat replaces the job', async () => {
    const id = await seedBackup(records, instanceId);
    queues.fail.enqueueControl = 1;

    const err = await softDeleteBackup(records, queues, id, 'token').catch((e: unknown) => e);

    expect(err).toMatchObject({ code: 'unavailable' });
    const [failed] = await cleanupsOf(id);
    expect(err).toMatchObject({ details: { backupId: id, jobId: failed!.id } });
    expect(failed).toMatchObject({ status: 'failed', errorCode: 'unavailable', error: 'could not enqueue the cleanup: fake redis: enqueue cleanup failed' });
    expect(failed!.finishedAt).not.toBeNull();
    expect(await records.backups.get(id)).toMatchObject({ status: 'deleting' });

    const again = await softDeleteBackup(records, queues, id, 'token');
    expect(again.cleanupJob).toMatchObject({ status: 'queued' });
    expect(again.cleanupJob!.id).not.toBe(failed!.id);
    expect(queues.waiting(CONTROL_QUEUE).map((j) => j.jobId)).toEqual([again.cleanupJob!.id]);
  });

  it('when marking the cleanup job failed fails too, both errors are reported', async () => {
    const id = await seedBackup(records, instanceId);
    queues.fail.enqueueControl = 1;
    records.failNext('jobs.transition', new Error('connection terminated'));

    const err = await softDeleteBackup(records, queues, id, 'token').catch((e: unknown) => e);

    expect(err).toMatchObject({ code: 'unavailable' });
    expect((err as Error).message).toContain('could not enqueue the cleanup: fake redis: enqueue cleanup failed');
    expect((err as Error).message).toContain('connection terminated');
    expect(((err as Error).cause as Error).message).toBe('fake redis: enqueue cleanup failed');
  });

  it('stops the backup being produced: a queued producer is removed and cancelled, a running one signalled', async () => {
    const id = await seedBackup(records, instanceId, { status: 'running' });
    const queued = await records.jobs.create({
      id: newId(),
      type: 'backup',
      status: 'queued',
      backupId: id,
      instanceId,
      queue: `node.${nodeId}`,
      requestedBy: 'token',
    });
    await queues.enqueueNode(nodeId, 'backup', { jobId: queued.id });

    const deleted = await softDeleteBackup(records, queues, id, 'token');

    expect(deleted.cancelledJobs).toEqual([queued.id]);
    expect(await records.jobs.get(queued.id)).toMatchObject({ status: 'cancelled', errorCode: 'cancelled', error: `backup ${id} deleted` });
    expect(queues.waiting(`node.${nodeId}`)).toHaveLength(0);
    // The backup is deleting, not cancelled: the cancel's backup change only applies to pending/running.
    expect(await records.backups.get(id)).toMatchObject({ status: 'deleting' });
  });

  it('the batch answers per id and classifies foreign errors', async () => {
    const ok = await seedBackup(records, instanceId);
    const busy = await seedBackup(records, instanceId);
    await records.jobs.create({ id: newId(), type: 'verify', status: 'queued', backupId: busy, instanceId, requestedBy: 'token' });
    const done = await seedBackup(records, instanceId, { status: 'deleted' });

    const results = await softDeleteBackups(records, queues, [ok, 'missing', busy, done], 'token');
    expect(results.map((r) => (r.ok ? r.backup.status : r.error.code))).toEqual(['deleting', 'not-found', 'conflict', 'deleted']);

    const another = await seedBackup(records, instanceId);
    records.failNext('backups.findFirst', new Error('boom'));
    const [byDefault] = await softDeleteBackups(records, queues, [another], 'token');
    expect(byDefault).toMatchObject({ ok: false, error: { code: 'unavailable', message: `could not delete backup ${another}: boom` } });
    records.failNext('backups.findFirst', new Error('boom'));
    const [classified] = await softDeleteBackups(records, queues, [another], 'token', {
      classifyError: (err, backupId) => new CairnError('internal', `${backupId}: ${(err as Error).message}`),
    });
    expect(classified).toMatchObject({ ok: false, error: { code: 'internal', message: `${another}: boom` } });
  });
});
