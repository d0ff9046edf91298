import { beforeEach, describe, expect, it } from 'vitest';
import { CONTROL_QUEUE, firingIds, MemoryRecords, ScheduleService, schedulerIdOf } from '@cairn/core';
import { captureLogger, FakeQueues, manualClock, seedBackup, seedInstance } from './support/fakes.ts';

/** ScheduleService over in-memory records and queues (job schedulers included). */
describe('ScheduleService', () => {
  let clock: ReturnType<typeof manualClock>;
  let records: MemoryRecords;
  let queues: FakeQueues;
  let log: ReturnType<typeof captureLogger>;
  let service: ScheduleService;
  let instanceId: string;
  let tenantId: string;
  let nodeId: string;

  beforeEach(async () => {
    clock = manualClock(new Date('2026-06-01T12:00:00Z'));
    records = new MemoryRecords({ clock: clock.now });
    queues = new FakeQueues(clock.now);
    log = captureLogger();
    service = new ScheduleService({ records, queues, config: { COMPRESSION: 'gzip' }, logger: log.logger, now: clock.now });
    ({ instanceId, tenantId, nodeId } = await seedInstance(records, { volumes: ['data', 'db'] }));
  });

  it('creates a schedule with its job scheduler and next run, and shows and lists it', async () => {
    const view = await service.create(instanceId, { cron: '30 2 * * *', timezone: 'Europe/Berlin', retention: { keepDaily: 7 }, volumes: ['db'] });

    expect(view).toMatchObject({
      instanceId,
      cron: '30 2 * * *',
      timezone: 'Europe/Berlin',
      volumes: ['db'],
      retention: { keepDaily: 7 },
      enabled: true,
      nextRunAt: '2026-06-02T00:30:00.000Z',
      lastFiredAt: null,
    });
    expect(queues.schedulers.get(schedulerIdOf(view.id))).toMatchObject({
      pattern: '30 2 * * *',
      tz: 'Europe/Berlin',
      name: 'schedule-fire',
      data: { scheduleId: view.id },
    });
    expect(await service.get(view.id)).toEqual(view);
    expect(await service.list(instanceId)).toEqual({ items: [view], nextCursor: null });
  });

  it('lists a page at a time', async () => {
    const views = [];
    for (let i = 0; i < 3; i++) views.push(await service.create(instanceId, { cron: `${i} * * * *`, retention: { keepLast: 1 } }));
    views.sort((a, b) => (a.id < b.id ? -1 : 1));

    const first = await service.list(instanceId, { limit: 2 });
    const second = await service.list(instanceId, { limit: 2, cursor: first.nextCursor! });

    expect(first.items.map((s) => s.id)).toEqual([views[0]!.id, views[1]!.id]);
    expect(first.nextCursor).toBe(views[1]!.id);
    expect(second).toEqual({ items: [views[2]], nextCursor: null });
  });

  it('refuses invalid fields with every problem listed, and writes nothing', async () => {
    const err = await service
      .create(instanceId, { cron: '61 * * * *', timezone: 'Mars/Base', retention: { keepLast: 0 }, volumes: ['data', 'nope'] })
      .catch((e: unknown) => e);

    expect(err).toMatchObject({ code: 'validation' });
    const paths = ((err as { details: { path: string }[] }).details ?? []).map((d) => d.path);
    expect(paths).toEqual(expect.arrayContaining(['timezone', 'volumes.1']));
    expect(paths.some((p) => p.startsWith('cron'))).toBe(true);
    expect(paths.some((p) => p.startsWith('retention'))).toBe(true);
    expect(await records.schedules.find({})).toEqual([]);
    expect(queues.schedulers.size).toBe(0);
  });

  it('confines members to their tenant (not found, not forbidden)', async () => {
    const theirs = await seedInstance(records);
    const view = await service.create(theirs.instanceId, { cron: '0 * * * *', retention: { keepLast: 1 } });

    await expect(service.create(theirs.instanceId, { cron: '0 * * * *', retention: { keepLast: 1 } }, { tenantId })).rejects.toMatchObject({
      code: 'not-found',
    });
    await expect(service.get(view.id, { tenantId })).rejects.toMatchObject({ code: 'not-found' });
    await expect(service.update(view.id, { enabled: false }, { tenantId })).rejects.toMatchObject({ code: 'not-found' });
    await expect(service.remove(view.id, { tenantId })).rejects.toMatchObject({ code: 'not-found' });
    await expect(service.runNow(view.id, 'token', { tenantId })).rejects.toMatchObject({ code: 'not-found' });
    expect((await service.get(view.id, { tenantId: theirs.tenantId })).id).toBe(view.id);
  });

  it('a scheduler that cannot be written leaves no schedule behind (one transaction)', async () => {
    queues.fail.scheduler = 1;

    await expect(service.create(instanceId, { cron: '0 * * * *', retention: { keepLast: 1 } })).rejects.toMatchObject({ code: 'unavailable' });

    expect(await records.schedules.find({})).toEqual([]);
  });

  it('update moves the scheduler, pauses and resumes it, and asks for retention when the policy changes', async () => {
    const view = await service.create(instanceId, { cron: '0 3 * * *', retention: { keepLast: 5 } });

    const moved = await service.update(view.id, { cron: '15 4 1 * *', timezone: 'America/New_York' });
    expect(moved).toMatchObject({ cron: '15 4 1 * *', timezone: 'America/New_York', retention: { keepLast: 5 }, enabled: true });
    expect(queues.schedulers.get(schedulerIdOf(view.id))).toMatchObject({ pattern: '15 4 1 * *', tz: 'America/New_York' });
    expect(queues.waiting(CONTROL_QUEUE)).toEqual([]);

    const paused = await service.update(view.id, { enabled: false });
    expect(paused).toMatchObject({ enabled: false, nextRunAt: null });
    expect(queues.schedulers.has(schedulerIdOf(view.id))).toBe(false);

    const resumed = await service.update(view.id, { enabled: true, retention: { keepDaily: 3 }, volumes: null });
    expect(resumed).toMatchObject({ enabled: true, retention: { keepDaily: 3 }, volumes: null });
    expect(resumed.nextRunAt).not.toBeNull();
    expect(queues.schedulers.has(schedulerIdOf(view.id))).toBe(true);
    expect(queues.waiting(CONTROL_QUEUE)).toEqual([
      expect.objectContaining({
        name: 'retention',
        payload: { scheduleId: view.id },
        opts: { deduplication: { id: `retention-${view.id}`, keepLastIfActive: true } },
      }),
    ]);
  });

  it('remove deletes the schedule and its scheduler; its backups stay, without an expiry', async () => {
    const view = await service.create(instanceId, { cron: '0 * * * *', retention: { keepLast: 5, maxAgeDays: 10 } });
    const kept = await seedBackup(records, instanceId, { scheduleId: view.id });
    const deleted = await seedBackup(records, instanceId, { scheduleId: view.id, status: 'deleted' });
    await records.backups.updateWhere({ id: kept }, { expiresAt: new Date('2026-07-01T00:00:00Z') });

    expect(await service.remove(view.id)).toEqual({ id: view.id, keptBackups: 1 });

    expect(await records.schedules.get(view.id)).toBeNull();
    expect(queues.schedulers.has(schedulerIdOf(view.id))).toBe(false);
    expect(await records.backups.get(kept)).toMatchObject({ status: 'completed', expiresAt: null, scheduleId: null });
    expect(await records.backups.get(deleted)).toMatchObject({ status: 'deleted', scheduleId: null });
    await expect(service.get(view.id)).rejects.toMatchObject({ code: 'not-found' });
  });

  it('runNow requests a scheduled backup like a firing; a busy instance is a conflict', async () => {
    const view = await service.create(instanceId, { cron: '0 * * * *', retention: { keepLast: 5 }, enabled: false });

    const { backup, job } = await service.runNow(view.id, 'token-1');

    const ids = firingIds(view.id, clock.now().getTime());
    expect(backup).toMatchObject({
      id: ids.backupId,
      status: 'pending',
      trigger: 'schedule',
      scheduleId: view.id,
      requestedBy: 'token-1',
      volumes: ['data', 'db'],
    });
    expect(job).toMatchObject({ id: ids.jobId, status: 'queued', nodeId });
    expect(queues.waiting(`node.${nodeId}`).map((j) => j.jobId)).toEqual([job.id]);

    clock.advance(1000);
    await expect(service.runNow(view.id, 'token-1')).rejects.toMatchObject({ code: 'conflict', details: { jobId: job.id } });
    expect(await records.jobs.count({ type: 'schedule_skip' })).toBe(0);
  });

  it('runNow with Redis down fails the rows it wrote and answers unavailable', async () => {
    const view = await service.create(instanceId, { cron: '0 * * * *', retention: { keepLast: 5 } });
    queues.fail.enqueueNode = 1;

    await expect(service.runNow(view.id, 'token-1')).rejects.toMatchObject({ code: 'unavailable', details: { stage: 'enqueue' } });

    const ids = firingIds(view.id, clock.now().getTime());
    expect(await records.jobs.get(ids.jobId)).toMatchObject({ status: 'failed', errorCode: 'unavailable', error: expect.stringContaining('fake redis') });
    expect(await records.backups.get(ids.backupId)).toMatchObject({ status: 'failed', error: expect.stringContaining('fake redis') });
    // The instance is free again.
    clock.advance(1000);
    await expect(service.runNow(view.id, 'token-1')).resolves.toMatchObject({ job: { status: 'queued' } });
  });

  it('runNow retries the failed-marking writes, and logs one that still fails with the job id and the enqueue error', async () => {
    const view = await service.create(instanceId, { cron: '0 * * * *', retention: { keepLast: 5 } });
    const ids = firingIds(view.id, clock.now().getTime());
    queues.fail.enqueueNode = 1;
    // The job's write fails on every try; the backup's fails once and then succeeds.
    for (let i = 0; i < 3; i++) records.failNext('jobs.transition', new Error('connection terminated'));
    records.failNext('backups.transition', new Error('connection terminated'));

    const err = await service.runNow(view.id, 'token-1').catch((e: unknown) => e);

    // The caller gets the enqueue error, not the database's.
    expect(err).toMatchObject({ code: 'unavailable', details: { stage: 'enqueue', jobId: ids.jobId } });
    expect((err as Error).message).toContain('fake redis');
    expect(await records.jobs.get(ids.jobId)).toMatchObject({ status: 'queued' });
    expect(await records.backups.get(ids.backupId)).toMatchObject({ status: 'failed' });
    const errors = log.lines.filter((l) => l.level === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({
      jobId: ids.jobId,
      backupId: ids.backupId,
      scheduleId: view.id,
      err: 'connection terminated',
      cause: expect.stringContaining('fake redis'),
    });
    expect(String(errors[0]!.msg)).toContain(`job ${ids.jobId}`);
  });

  it('previewRetention validates a policy and answers with the plan', async () => {
    const view = await service.create(instanceId, { cron: '0 * * * *', retention: { keepLast: 1 } });
    const older = await seedBackup(records, instanceId, { scheduleId: view.id });
    clock.advance(3600_000);
    const newer = await seedBackup(records, instanceId, { scheduleId: view.id });

    const own = await service.previewRetention(view.id);
    expect(own.keep.map((k) => k.backupId)).toEqual([newer]);
    expect(own.drop).toEqual([{ backupId: older, createdAt: '2026-06-01T12:00:00.000Z', reason: expect.any(String) }]);
    expect((await service.previewRetention(view.id, { keepLast: 2 })).drop).toEqual([]);
    await expect(service.previewRetention(view.id, { keepLast: 0 })).rejects.toMatchObject({ code: 'validation' });
  });
});
