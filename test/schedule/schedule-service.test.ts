import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CONTROL_QUEUE,
  CairnError,
  ScheduleService,
  archiveKey,
  indexKey,
  newId,
  schedulerIdOf,
  softDeleteBackup,
  softDeleteBackups,
  type BackupStatus,
  type DeletionQueues,
} from '@cairn/core';
import { startScheduleStack, type ScheduleStack } from './support/schedule-stack.ts';

/** The service layer the schedule routes call, against real Postgres and BullMQ (no control worker). */
describe('ScheduleService', () => {
  let stack: ScheduleStack;
  let api: ScheduleService; // the API flavour: 5-field expressions only

  beforeAll(async () => {
    stack = await startScheduleStack();
    api = new ScheduleService({ records: stack.records, queues: stack.queues, config: stack.config, logger: stack.logger });
  });
  afterAll(async () => {
    await stack?.close();
  });

  const error = async (p: Promise<unknown>): Promise<CairnError> => {
    try {
      await p;
    } catch (err) {
      expect(err).toBeInstanceOf(CairnError);
      return err as CairnError;
    }
    throw new Error('expected a CairnError');
  };

  it('creates a schedule with its job scheduler and next run, and shows and lists it', async () => {
    const { instanceId } = await stack.seedInstance({ volumes: ['data', 'db'] });
    const s = await api.create(instanceId, {
      cron: '30 2 * * mon-fri',
      timezone: 'europe/berlin',
      retention: { keepDaily: 7, keepWeekly: 4 },
      volumes: ['db'],
    });
    expect(s).toMatchObject({
      instanceId,
      cron: '30 2 * * mon-fri',
      timezone: 'Europe/Berlin',
      volumes: ['db'],
      retention: { keepDaily: 7, keepWeekly: 4 },
      enabled: true,
      lastFiredAt: null,
    });
    const scheduler = await stack.queues.queue(CONTROL_QUEUE).getJobScheduler(schedulerIdOf(s.id));
    expect(scheduler).toMatchObject({ pattern: '30 2 * * 1-5', tz: 'Europe/Berlin', name: 'schedule-fire', template: { data: { scheduleId: s.id } } });
    expect(s.nextRunAt).toBe(new Date(scheduler!.next!).toISOString());
    // 02:30 in Berlin is 00:30 or 01:30 UTC.
    expect(new Date(s.nextRunAt!).getUTCMinutes()).toBe(30);

    expect(await api.get(s.id)).toEqual(s);
    const second = await api.create(instanceId, { cron: '@daily', timezone: 'UTC', retention: { maxAgeDays: 14 } });
    expect(second.volumes).toBeNull();
    const page1 = await api.list(instanceId, { limit: 1 });
    expect(page1.items.map((i) => i.id)).toEqual([s.id]);
    const page2 = await api.list(instanceId, { limit: 1, cursor: page1.nextCursor! });
    expect(page2).toEqual({ items: [second], nextCursor: null });
  });

  it('refuses bad fields, naming each one (and the cron field at fault)', async () => {
    const { instanceId } = await stack.seedInstance({ volumes: ['data'] });
    const e = await error(api.create(instanceId, { cron: '0 0 * * 8', timezone: 'Nowhere/City', retention: { keepDaily: -1 }, volumes: ['data', 'nope'] }));
    expect(e.code).toBe('validation');
    expect(e.details).toEqual([
      { path: 'cron', message: expect.stringMatching(/day-of-week field "8": 8 is out of range 0-7/) },
      { path: 'timezone', message: expect.stringMatching(/not an IANA time zone/) },
      { path: 'retention.keepDaily', message: expect.stringMatching(/≥ 0/) },
      { path: 'volumes.1', message: 'the instance has no volume nope (it has data)' },
    ]);
    expect((await error(api.create(instanceId, { cron: '*/5 * * * * *', timezone: 'UTC', retention: { keepLast: 1 } }))).message).toMatch(/expected 5 fields/);
    expect((await error(api.create(instanceId, { cron: '@daily', timezone: 'UTC', retention: {} }))).details).toEqual([
      { path: 'retention', message: expect.stringMatching(/at least one rule/) },
    ]);
    expect(await stack.prisma.schedule.count({ where: { instanceId } })).toBe(0);
  });

  it('confines members to their tenant (not found, not forbidden)', async () => {
    const mine = await stack.seedInstance();
    const theirs = await stack.seedInstance();
    const s = await api.create(mine.instanceId, { cron: '@hourly', timezone: 'UTC', retention: { keepLast: 3 } });
    expect((await error(api.get(s.id, { tenantId: theirs.tenantId }))).code).toBe('not-found');
    expect((await error(api.update(s.id, { enabled: false }, { tenantId: theirs.tenantId }))).code).toBe('not-found');
    expect((await error(api.remove(s.id, { tenantId: theirs.tenantId }))).code).toBe('not-found');
    expect((await error(api.runNow(s.id, 'tok', { tenantId: theirs.tenantId }))).code).toBe('not-found');
    expect((await error(api.list(mine.instanceId, {}, { tenantId: theirs.tenantId }))).code).toBe('not-found');
    expect(
      (await error(api.create(mine.instanceId, { cron: '@hourly', timezone: 'UTC', retention: { keepLast: 3 } }, { tenantId: theirs.tenantId }))).code,
    ).toBe('not-found');
    expect((await api.get(s.id, { tenantId: mine.tenantId })).id).toBe(s.id);
  });

  it('update moves the scheduler to the new cron and time zone, pauses and resumes it', async () => {
    const { instanceId } = await stack.seedInstance({ volumes: ['a', 'b'] });
    const s = await api.create(instanceId, { cron: '0 3 * * *', timezone: 'UTC', retention: { keepLast: 3 }, volumes: ['a'] });
    const changed = await api.update(s.id, { cron: '15 4 1 * *', timezone: 'America/New_York', volumes: null, retention: { keepMonthly: 12 } });
    expect(changed).toMatchObject({ cron: '15 4 1 * *', timezone: 'America/New_York', volumes: null, retention: { keepMonthly: 12 } });
    expect(await stack.queues.queue(CONTROL_QUEUE).getJobScheduler(schedulerIdOf(s.id))).toMatchObject({ pattern: '15 4 1 * *', tz: 'America/New_York' });
    // A new policy is applied right away by a retention job.
    const retention = (await stack.queues.queue(CONTROL_QUEUE).getJobs(['waiting', 'prioritized', 'delayed'])).filter((j) => j.name === 'retention');
    expect(retention.map((j) => j.data)).toContainEqual({ scheduleId: s.id });

    const paused = await api.update(s.id, { enabled: false });
    expect(paused).toMatchObject({ enabled: false, nextRunAt: null });
    expect(await stack.queues.queue(CONTROL_QUEUE).getJobScheduler(schedulerIdOf(s.id))).toBeFalsy();
    const resumed = await api.update(s.id, { enabled: true });
    expect(resumed.nextRunAt).not.toBeNull();
    expect((await error(api.update(s.id, { cron: '1 2 3 4 5 6' }))).code).toBe('validation');
    expect((await api.get(s.id)).cron).toBe('15 4 1 * *');
  });

  it('run now: a scheduled backup requested by the caller, even while paused; a busy instance is a 409', async () => {
    const { instanceId, nodeId } = await stack.seedInstance({ volumes: ['data', 'logs'] });
    const s = await api.create(instanceId, { cron: '0 0 1 1 *', timezone: 'UTC', retention: { keepLast: 3 }, volumes: ['logs'], enabled: false });
    const { backup, job } = await api.runNow(s.id, 'token-1');
    expect(backup).toMatchObject({ status: 'pending', trigger: 'schedule', scheduleId: s.id, requestedBy: 'token-1', volumes: ['logs'], instanceId });
    expect(job).toMatchObject({ type: 'backup', status: 'queued', backupId: backup.id, nodeId, requestedBy: 'token-1' });
    expect(await stack.queues.nodeQueue(nodeId).getJob(job.id)).toMatchObject({ name: 'backup', data: { jobId: job.id } });
    expect((await api.get(s.id)).lastBackupId).toBe(backup.id);

    const busy = await error(api.runNow(s.id, 'token-1'));
    expect(busy.code).toBe('conflict');
    expect(busy.details).toEqual({ jobId: job.id });
    expect(await stack.prisma.job.count({ where: { type: 'schedule_skip', instanceId } })).toBe(0);
  });

  it('delete keeps the backups and says how many', async () => {
    const { instanceId } = await stack.seedInstance();
    const s = await api.create(instanceId, { cron: '@daily', timezone: 'UTC', retention: { keepLast: 3 } });
    const { backup } = await api.runNow(s.id, 'token-2');
    const out = await api.remove(s.id);
    expect(out).toEqual({ id: s.id, keptBackups: 1 });
    expect(await stack.prisma.backup.findUnique({ where: { id: backup.id } })).toMatchObject({ scheduleId: null, status: 'pending' });
    expect(await stack.queues.queue(CONTROL_QUEUE).getJobScheduler(schedulerIdOf(s.id))).toBeFalsy();
    expect((await error(api.remove(s.id))).code).toBe('not-found');
  });
});

describe('softDeleteBackups (shared with DELETE /backups/:id)', () => {
  let stack: ScheduleStack;

  beforeAll(async () => {
    stack = await startScheduleStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  async function backupRow(instanceId: string, status: BackupStatus) {
    const id = newId();
    return stack.prisma.backup.create({
      data: {
        id,
        instanceId,
        status,
        trigger: 'manual',
        volumes: ['data'],
        storageKey: archiveKey(instanceId, id, 'gzip'),
        indexKey: indexKey(instanceId, id),
        compression: 'gzip',
        requestedBy: 'test',
      },
    });
  }

  it('marks deleting, writes and enqueues one cleanup job, and is safe to repeat', async () => {
    const { instanceId, tenantId } = await stack.seedInstance();
    const b = await backupRow(instanceId, 'completed');
    const [first] = await softDeleteBackups(stack.records, stack.queues, [b.id], 'token-9', { tenantId });
    expect(first).toMatchObject({
      id: b.id,
      ok: true,
      backup: { status: 'deleting' },
      cleanupJob: { type: 'cleanup', status: 'queued', requestedBy: 'token-9', backupId: b.id },
    });
    const cleanupId = first!.ok ? first!.cleanupJob!.id : '';
    expect(await stack.queues.queue(CONTROL_QUEUE).getJob(cleanupId)).toMatchObject({ name: 'cleanup', data: { backupId: b.id, jobId: cleanupId } });
    const [again] = await softDeleteBackups(stack.records, stack.queues, [b.id], 'token-9');
    expect(again!.ok && again!.cleanupJob!.id).toBe(cleanupId);
    expect(await stack.prisma.job.count({ where: { backupId: b.id, type: 'cleanup' } })).toBe(1);
  });

  it('reports per id: unknown, other tenant, wrong state, deleted, and cancels a queued producer', async () => {
    const { instanceId, nodeId } = await stack.seedInstance();
    const other = await stack.seedInstance();
    const running = await backupRow(instanceId, 'running');
    const deleted = await backupRow(instanceId, 'deleted');
    const pending = await backupRow(instanceId, 'pending');
    const producer = newId();
    await stack.prisma.job.create({
      data: { id: producer, type: 'backup', status: 'queued', instanceId, backupId: pending.id, nodeId, queue: `node.${nodeId}`, requestedBy: 'test' },
    });
    await stack.queues.enqueueNode(nodeId, 'backup', { jobId: producer });

    const results = await softDeleteBackups(stack.records, stack.queues, ['01UNKNOWN00000000000000000', running.id, deleted.id, pending.id], 'system', {
      from: ['completed', 'pending'],
    });
    expect(results.map((r) => (r.ok ? 'ok' : r.error.code))).toEqual(['not-found', 'conflict', 'ok', 'ok']);
    expect(results[1]!.ok ? '' : results[1]!.error.message).toMatch(/is running; it can be deleted only when completed, pending/);
    expect(results[2]).toMatchObject({ ok: true, cleanupJob: null, backup: { status: 'deleted' } });
    expect(results[3]).toMatchObject({ ok: true, cancelledJobs: [producer] });
    expect(await stack.prisma.job.findUnique({ where: { id: producer } })).toMatchObject({ status: 'cancelled' });
    expect(await stack.queues.nodeQueue(nodeId).getJob(producer)).toBeUndefined();
    expect((await stack.prisma.backup.findUnique({ where: { id: running.id } }))!.status).toBe('running');

    const hidden = await backupRow(other.instanceId, 'completed');
    const [scoped] = await softDeleteBackups(stack.records, stack.queues, [hidden.id], 'token', {
      tenantId: (await stack.prisma.instance.findUnique({ where: { id: instanceId } }))!.tenantId,
    });
    expect(scoped!.ok ? '' : scoped!.error.code).toBe('not-found');
  });

  it('refuses a backup read by a restore (conflict with its job id), changing nothing', async () => {
    const { instanceId, nodeId } = await stack.seedInstance();
    const b = await backupRow(instanceId, 'completed');
    const restore = newId();
    await stack.prisma.job.create({
      data: { id: restore, type: 'restore', status: 'running', instanceId, backupId: b.id, targetInstanceId: instanceId, nodeId, requestedBy: 'test' },
    });
    const e = await softDeleteBackup(stack.records, stack.queues, b.id, 'token').then(
      () => null,
      (err: CairnError) => err,
    );
    expect(e).toMatchObject({ code: 'conflict', details: { jobId: restore } });
    expect((await stack.prisma.backup.findUnique({ where: { id: b.id } }))!.status).toBe('completed');
    expect(await stack.prisma.job.count({ where: { backupId: b.id, type: 'cleanup' } })).toBe(0);
  });

  it('changes nothing while Redis is down; a failed enqueue fails the cleanup job, and a repeat replaces it', async () => {
    const { instanceId } = await stack.seedInstance();
    const b = await backupRow(instanceId, 'completed');
    const down = () => Promise.reject(new CairnError('unavailable', 'redis unavailable: connection lost'));
    const live: DeletionQueues = { enqueueControl: (...a) => stack.queues.enqueueControl(...a), cancel: (...a) => stack.queues.cancel(...a) };

    const [refused] = await softDeleteBackups(stack.records, { ...live, ready: down }, [b.id], 'token');
    expect(refused).toMatchObject({ id: b.id, ok: false, error: { code: 'unavailable' } });
    expect((await stack.prisma.backup.findUnique({ where: { id: b.id } }))!.status).toBe('completed');
    expect(await stack.prisma.job.count({ where: { backupId: b.id, type: 'cleanup' } })).toBe(0);

    const [lost] = await softDeleteBackups(stack.records, { ...live, enqueueControl: down, ready: async () => {} }, [b.id], 'token');
    expect(lost!.ok).toBe(false);
    const error = lost!.ok ? null : lost!.error;
    expect(error).toMatchObject({
      code: 'unavailable',
      message: expect.stringMatching(/could not enqueue the cleanup: .*repeat the delete to retry/),
      details: { backupId: b.id },
    });
    const failedId = (error!.details as { jobId: string }).jobId;
    expect(await stack.prisma.job.findUnique({ where: { id: failedId } })).toMatchObject({ type: 'cleanup', status: 'failed', errorCode: 'unavailable' });
    expect((await stack.prisma.backup.findUnique({ where: { id: b.id } }))!.status).toBe('deleting');

    const again = await softDeleteBackup(stack.records, live, b.id, 'token');
    expect(again.cleanupJob).toMatchObject({ type: 'cleanup', status: 'queued' });
    expect(again.cleanupJob!.id).not.toBe(failedId);
    expect(await stack.queues.queue(CONTROL_QUEUE).getJob(again.cleanupJob!.id)).toMatchObject({ name: 'cleanup' });
  });

  it('turns unexpected errors into per-id errors: unavailable by default, or as classifyError says', async () => {
    const { instanceId } = await stack.seedInstance();
    const b = await backupRow(instanceId, 'completed');
    const broken: DeletionQueues = { enqueueControl: async () => {}, cancel: async () => 'gone', ready: () => Promise.reject(new Error('boom')) };
    const [byDefault] = await softDeleteBackups(stack.records, broken, [b.id], 'token');
    expect(byDefault).toMatchObject({ ok: false, error: { code: 'unavailable', message: `could not delete backup ${b.id}: boom` } });
    const [classified] = await softDeleteBackups(stack.records, broken, [b.id], 'token', {
      classifyError: (err, id) => new CairnError('internal', `${id}: ${(err as Error).message}`),
    });
    expect(classified).toMatchObject({ ok: false, error: { code: 'internal', message: `${b.id}: boom` } });
    await expect(softDeleteBackup(stack.records, broken, b.id, 'token')).rejects.toThrow('boom');
  });
});
