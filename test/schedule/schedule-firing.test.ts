import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeTime } from 'ulid';
import { CONTROL_QUEUE, fireSchedule, firingIds, firingJobId, schedulerIdOf } from '@cairn/core';
import { sleep, startFakeNodeWorker, startScheduleStack, waitFor, type FakeNodeWorker, type ScheduleStack } from './support/schedule-stack.ts';

/**
 * Schedules against real BullMQ job schedulers, Postgres and a control worker. Node workers are
 * stand-ins (support/schedule-stack.ts) so that only the scheduling is under test.
 */
describe('schedule firing with real BullMQ', () => {
  let stack: ScheduleStack;
  const fakes: FakeNodeWorker[] = [];

  beforeAll(async () => {
    stack = await startScheduleStack();
  });
  afterAll(async () => {
    for (const f of fakes) await f.close();
    await stack?.close();
  });

  const backupsOf = (scheduleId: string) => stack.prisma.backup.findMany({ where: { scheduleId }, orderBy: { id: 'asc' } });
  /**
   * Whether the schedule fired after `since` (ms): more backups than `before`, or a firing recorded
   * as skipped. After a Redis flush, a backup that was queued lost its queue job and only a sweep
   * (off in these tests) enqueues it again; until then the instance is busy and firings are skips.
   */
  const firedSince = async (scheduleId: string, since: number, before: number): Promise<boolean> => {
    const row = await stack.prisma.schedule.findUniqueOrThrow({ where: { id: scheduleId } });
    const isAfter = (t: Date | null) => t !== null && t.getTime() > since;
    return (await backupsOf(scheduleId)).length > before || isAfter(row.lastFiredAt) || isAfter(row.lastSkippedAt);
  };

  it('fires scheduled backups, keeps the schedule row current, and applies retention after each', async () => {
    const { instanceId, nodeId } = await stack.seedInstance({ volumes: ['data', 'logs'] });
    fakes.push(startFakeNodeWorker(stack, nodeId));
    const control = await stack.startControl();
    try {
      const schedule = await stack.schedules.create(instanceId, { cron: '* * * * * *', timezone: 'UTC', retention: { keepLast: 2 }, volumes: ['data'] });
      expect(schedule.nextRunAt).not.toBeNull();
      expect(await stack.schedules.schedulers.exists(schedule.id)).toBe(true);

      await waitFor('4 scheduled backups', async () => (await backupsOf(schedule.id)).length >= 4, 15_000);
      const backups = await backupsOf(schedule.id);
      for (const b of backups) {
        expect(b).toMatchObject({ trigger: 'schedule', scheduleId: schedule.id, requestedBy: 'system', instanceId, volumes: ['data'] });
        // The id is derived from the fire time: a whole second for this pattern.
        expect(decodeTime(b.id) % 1000).toBe(0);
        expect(b.id).toBe(firingIds(schedule.id, decodeTime(b.id)).backupId);
      }
      const jobs = await stack.prisma.job.findMany({ where: { backupId: { in: backups.map((b) => b.id) }, type: 'backup' } });
      expect(jobs.every((j) => j.requestedBy === 'system' && j.nodeId === nodeId)).toBe(true);

      // Retention (keepLast 2) ran after the backups completed: older ones were soft-deleted and cleaned.
      await waitFor(
        'retention to delete older backups',
        async () => (await stack.prisma.backup.count({ where: { scheduleId: schedule.id, status: 'deleted' } })) >= 2,
        15_000,
      );
      const cleanups = await stack.prisma.job.findMany({ where: { type: 'cleanup', instanceId } });
      expect(cleanups.length).toBeGreaterThanOrEqual(2);
      expect(cleanups.every((c) => c.requestedBy === 'system' && (c.params as { reason?: string }).reason === 'retention')).toBe(true);

      await stack.schedules.update(schedule.id, { enabled: false });
      await sleep(300);
      const completed = await stack.prisma.backup.count({ where: { scheduleId: schedule.id, status: 'completed' } });
      const row = (await stack.prisma.schedule.findUnique({ where: { id: schedule.id } }))!;
      const newest = (await backupsOf(schedule.id)).at(-1)!;
      expect(row.lastBackupId).toBe(newest.id);
      expect(row.lastFiredAt?.getTime()).toBe(decodeTime(newest.id));
      expect(row.nextRunAt).toBeNull();
      // Retention may still be finishing its last run: at most the two kept plus the newest.
      expect(completed).toBeLessThanOrEqual(3);
    } finally {
      await control.close();
    }
  });

  it('skips a firing while a backup of the instance is running, and records the skip', async () => {
    const { instanceId, nodeId } = await stack.seedInstance();
    fakes.push(startFakeNodeWorker(stack, nodeId, { holdMs: 3500 }));
    const control = await stack.startControl();
    try {
      const schedule = await stack.schedules.create(instanceId, { cron: '* * * * * *', timezone: 'UTC', retention: { keepLast: 10 } });
      const skip = await waitFor('a recorded skip', () => stack.prisma.job.findFirst({ where: { type: 'schedule_skip', instanceId } }), 15_000);
      const backups = await backupsOf(schedule.id);
      expect(backups).toHaveLength(1);
      const running = await stack.prisma.job.findFirst({ where: { backupId: backups[0]!.id } });
      expect(skip).toMatchObject({ status: 'succeeded', requestedBy: 'system', instanceId });
      expect(skip.result).toMatchObject({
        reason: expect.stringMatching(new RegExp(`^instance busy: backup job ${running!.id} is (queued|running)$`)),
        activeJobId: running!.id,
        scheduleId: schedule.id,
      });
      expect(skip.id).toBe(firingIds(schedule.id, decodeTime(skip.id)).skipJobId);
      const row = (await stack.prisma.schedule.findUnique({ where: { id: schedule.id } }))!;
      expect(row.lastSkippedAt).not.toBeNull();
      expect(row.lastSkipReason).toMatch(/^instance busy: backup job \S+ is (queued|running)$/);
      await stack.schedules.update(schedule.id, { enabled: false });
    } finally {
      await control.close();
    }
  });

  it('disabling stops firing (scheduler removed), enabling resumes it', async () => {
    const { instanceId, nodeId } = await stack.seedInstance();
    fakes.push(startFakeNodeWorker(stack, nodeId));
    const control = await stack.startControl();
    try {
      const schedule = await stack.schedules.create(instanceId, { cron: '* * * * * *', timezone: 'UTC', retention: { keepLast: 50 } });
      await waitFor('a first backup', async () => (await backupsOf(schedule.id)).length >= 1, 10_000);
      const disabled = await stack.schedules.update(schedule.id, { enabled: false });
      expect(disabled).toMatchObject({ enabled: false, nextRunAt: null });
      expect(await stack.schedules.schedulers.exists(schedule.id)).toBe(false);
      await sleep(1200); // a firing already handed to the worker may still land
      const before = (await backupsOf(schedule.id)).length;
      await sleep(2500);
      expect((await backupsOf(schedule.id)).length).toBe(before);

      const enabled = await stack.schedules.update(schedule.id, { enabled: true });
      expect(enabled.nextRunAt).not.toBeNull();
      await waitFor('firing to resume', async () => (await backupsOf(schedule.id)).length > before, 10_000);
      await stack.schedules.update(schedule.id, { enabled: false });
    } finally {
      await control.close();
    }
  });

  it('deleting a schedule removes its scheduler and keeps its backups', async () => {
    const { instanceId, nodeId } = await stack.seedInstance();
    fakes.push(startFakeNodeWorker(stack, nodeId));
    const control = await stack.startControl();
    try {
      const schedule = await stack.schedules.create(instanceId, { cron: '* * * * * *', timezone: 'UTC', retention: { keepLast: 50, maxAgeDays: 30 } });
      // Generous bounds: under a loaded full run firings come late and some are skipped (instance busy).
      await waitFor('two backups', async () => (await stack.prisma.backup.count({ where: { scheduleId: schedule.id, status: 'completed' } })) >= 2, 30_000);
      await waitFor(
        'expiresAt set by retention',
        async () => (await stack.prisma.backup.count({ where: { scheduleId: schedule.id, expiresAt: { not: null } } })) >= 1,
        30_000,
      );
      const ids = (await backupsOf(schedule.id)).map((b) => b.id);
      const deleted = await stack.schedules.remove(schedule.id);
      expect(deleted.id).toBe(schedule.id);
      expect(deleted.keptBackups).toBeGreaterThanOrEqual(ids.length);
      expect(await stack.schedules.schedulers.exists(schedule.id)).toBe(false);
      expect(await stack.prisma.schedule.findUnique({ where: { id: schedule.id } })).toBeNull();
      await sleep(2000);
      const after = await stack.prisma.backup.findMany({ where: { instanceId }, orderBy: { id: 'asc' } });
      // Every backup is kept. Not "ids come first": a firing delivered late (its job ran after the
      // next second's) may land between the read above and the delete with an older fire time,
      // so its id sorts among them.
      expect(after.map((b) => b.id)).toEqual(expect.arrayContaining(ids));
      expect(after.every((b) => b.scheduleId === null && b.expiresAt === null && b.status !== 'deleting' && b.status !== 'deleted')).toBe(true);
      // Nothing fires any more (a firing already taken by the worker may add one, not more).
      expect(after.length).toBeLessThanOrEqual(deleted.keptBackups + 1);
      await expect(stack.schedules.get(schedule.id)).rejects.toMatchObject({ code: 'not-found' });
    } finally {
      await control.close();
    }
  });

  it('a flushed Redis loses nothing: restarting the control worker restores the schedulers', async () => {
    const { instanceId, nodeId } = await stack.seedInstance();
    fakes.push(startFakeNodeWorker(stack, nodeId));
    let control = await stack.startControl();
    try {
      const live = await stack.schedules.create(instanceId, { cron: '* * * * * *', timezone: 'UTC', retention: { keepLast: 50 } });
      const paused = await stack.schedules.create(instanceId, { cron: '0 3 * * *', timezone: 'Europe/Berlin', retention: { keepDaily: 7 }, enabled: false });
      await waitFor('a first backup', async () => (await backupsOf(live.id)).length >= 1, 10_000);
      // A scheduler whose schedule no longer exists (e.g. Redis restored from an old snapshot).
      await stack.queues
        .queue(CONTROL_QUEUE)
        .upsertJobScheduler(
          schedulerIdOf('01STRAYSCHEDULE00000000000'),
          { pattern: '0 0 1 1 *' },
          { name: 'schedule-fire', data: { scheduleId: '01STRAYSCHEDULE00000000000' } },
        );

      expect(await stack.flushRedis()).toBeGreaterThan(0);
      expect(await stack.schedules.schedulers.exists(live.id)).toBe(false);
      await sleep(1500);
      const before = (await backupsOf(live.id)).length;
      await sleep(2000);
      expect((await backupsOf(live.id)).length).toBe(before); // nothing fires without the scheduler

      await control.close();
      const restartedAt = Date.now();
      control = await stack.startControl();
      expect(await stack.schedules.schedulers.exists(live.id)).toBe(true);
      expect(await stack.schedules.schedulers.exists(paused.id)).toBe(false);
      expect(await stack.schedules.schedulers.scheduledIds()).toEqual([live.id]);
      await waitFor('firing after the restart', () => firedSince(live.id, restartedAt, before), 10_000);
      await stack.schedules.update(live.id, { enabled: false });
    } finally {
      await control.close();
    }
  });

  it('a running control worker notices a flushed Redis and restores the schedulers by itself', async () => {
    const { instanceId, nodeId } = await stack.seedInstance();
    fakes.push(startFakeNodeWorker(stack, nodeId));
    const control = await stack.startControl({ sweepEveryMs: 3600_000, retentionEveryMs: 3600_000, maintenanceCheckMs: 300 });
    try {
      const schedule = await stack.schedules.create(instanceId, { cron: '* * * * * *', timezone: 'UTC', retention: { keepLast: 50 } });
      await stack.flushRedis();
      await waitFor('the scheduler to come back', () => stack.schedules.schedulers.exists(schedule.id), 10_000);
      const back = Date.now();
      const before = (await backupsOf(schedule.id)).length;
      await waitFor('firing to resume', () => firedSince(schedule.id, back, before), 10_000);
      await stack.schedules.update(schedule.id, { enabled: false });
    } finally {
      await control.close();
    }
  });

  it('two control workers produce exactly one backup per firing', async () => {
    const { instanceId, nodeId } = await stack.seedInstance();
    fakes.push(startFakeNodeWorker(stack, nodeId));
    const a = await stack.startControl();
    const b = await stack.startControl();
    try {
      const schedule = await stack.schedules.create(instanceId, { cron: '* * * * * *', timezone: 'UTC', retention: { keepLast: 100 } });
      await waitFor('5 firings', async () => (await backupsOf(schedule.id)).length >= 5, 20_000);
      await stack.schedules.update(schedule.id, { enabled: false });
      await sleep(1500);

      const fired = (await stack.queues.queue(CONTROL_QUEUE).getJobs(['completed'], 0, -1))
        .filter((j) => j.name === 'schedule-fire' && (j.data as { scheduleId?: string }).scheduleId === schedule.id)
        .map((j) => j.returnvalue as { status: string; fireTime: number; backupId?: string })
        // A firing taken just before the schedule was disabled finds it disabled and records nothing.
        .filter((f) => f.status !== 'ignored');
      const backups = await backupsOf(schedule.id);
      const skips = await stack.prisma.job.findMany({ where: { type: 'schedule_skip', instanceId } });
      const fireTimes = [...new Set(fired.map((f) => f.fireTime))].sort();
      // One record (a backup or a recorded skip) per fire time, never two.
      const recorded = [...backups.map((x) => decodeTime(x.id)), ...skips.map((x) => decodeTime(x.id))].sort();
      expect(recorded).toEqual(fireTimes);
      expect(new Set(backups.map((x) => decodeTime(x.id))).size).toBe(backups.length);
      for (const f of fired.filter((x) => x.status === 'created')) expect(f.backupId).toBe(firingIds(schedule.id, f.fireTime).backupId);

      // Duplicate deliveries of one firing, four at once (replicas racing): one backup.
      // (The row is enabled again behind the scheduler's back: only these hand-made firings happen.)
      await stack.prisma.schedule.update({ where: { id: schedule.id }, data: { enabled: true } });
      await waitFor(
        'the instance to be idle',
        async () => (await stack.prisma.job.count({ where: { instanceId, type: 'backup', status: { in: ['queued', 'running'] } } })) === 0,
        10_000,
      );
      const fireTime = Date.now() + 3_600_000;
      const deps = { records: stack.records, queues: stack.queues, compression: 'gzip' as const };
      const outcomes = await Promise.all([1, 2, 3, 4].map(() => fireSchedule(deps, schedule.id, fireTime)));
      expect(outcomes.map((o) => o.status).sort()).toEqual(['created', 'duplicate', 'duplicate', 'duplicate']);
      expect(await stack.prisma.backup.count({ where: { id: firingIds(schedule.id, fireTime).backupId } })).toBe(1);

      // The same firing delivered again through the queue (a retry, a late replica): nothing new.
      const count = await stack.prisma.backup.count({ where: { scheduleId: schedule.id } });
      const again = await stack.queues
        .queue(CONTROL_QUEUE)
        .add('schedule-fire', { scheduleId: schedule.id, fireTime }, { jobId: firingJobId(schedule.id, fireTime) });
      expect(again.id).toBe(`schedule:${schedule.id}:${fireTime}`);
      await waitFor('the duplicate firing to be handled', async () => ((await again.getState()) === 'completed' ? true : null), 10_000);
      expect((await stack.queues.queue(CONTROL_QUEUE).getJob(again.id!))!.returnvalue).toMatchObject({
        status: 'duplicate',
        backupId: firingIds(schedule.id, fireTime).backupId,
      });
      expect(await stack.prisma.backup.count({ where: { scheduleId: schedule.id } })).toBe(count);
      await stack.prisma.schedule.update({ where: { id: schedule.id }, data: { enabled: false } });
    } finally {
      await a.close();
      await b.close();
    }
  });
});
