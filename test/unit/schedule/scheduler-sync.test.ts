import type { Queue } from 'bullmq';
import { beforeEach, describe, expect, it } from 'vitest';
import { MemoryRecords, newId, reconcileSchedulers, SchedulerSync, schedulerIdOf } from '@cairn/core';
import { FakeQueues, manualClock, seedInstance } from './support/fakes.ts';

/** The schedule table is the truth; SchedulerSync makes the control queue's job schedulers follow it. */
describe('SchedulerSync', () => {
  let clock: ReturnType<typeof manualClock>;
  let records: MemoryRecords;
  let queues: FakeQueues;
  let sync: SchedulerSync;
  let instanceId: string;

  beforeEach(async () => {
    clock = manualClock(new Date('2026-06-01T12:00:00Z'));
    records = new MemoryRecords({ clock: clock.now });
    queues = new FakeQueues(clock.now);
    sync = new SchedulerSync(records, queues, { now: clock.now });
    ({ instanceId } = await seedInstance(records));
  });

  async function schedule(id: string, enabled: boolean, nextRunAt: Date | null = null): Promise<string> {
    await records.schedules.create({ id, instanceId, cron: '0 * * * *', timezone: 'UTC', volumes: [], retention: { keepLast: 1 }, enabled, nextRunAt });
    return id;
  }

  it('reconcile upserts every enabled schedule and removes the schedulers of disabled and deleted ones', async () => {
    const live = await schedule('schedule-a', true);
    const paused = await schedule('schedule-b', false, new Date('2026-06-01T13:00:00Z'));
    // Left in Redis by a crash: one for the paused schedule, one for a schedule that no longer exists.
    await sync.apply({ id: paused, cron: '0 * * * *', timezone: 'UTC', enabled: true });
    await sync.apply({ id: 'schedule-gone', cron: '0 * * * *', timezone: 'UTC', enabled: true });

    const report = await reconcileSchedulers(records, queues, { now: clock.now });

    expect(report).toEqual({ upserted: 1, removed: 2, failed: [] });
    expect(await sync.scheduledIds()).toEqual([live]);
    expect(await records.schedules.get(live)).toMatchObject({ nextRunAt: new Date('2026-06-01T13:00:00Z') });
    expect(await records.schedules.get(paused)).toMatchObject({ nextRunAt: null });
  });

  it('one schedule that cannot be synced is reported; the others are', async () => {
    await schedule('schedule-a', true);
    await schedule('schedule-b', true);
    // Reading the first schedule (in id order) fails.
    records.failNext('schedules.get', new Error('connection reset'));

    const report = await sync.reconcile();

    expect(report).toEqual({ upserted: 1, removed: 0, failed: [{ scheduleId: 'schedule-a', error: 'connection reset' }] });
    expect(await sync.exists('schedule-a')).toBe(false);
    expect(await sync.exists('schedule-b')).toBe(true);
  });

  it('a Redis call that gets no answer fails with unavailable after the bound, and the row is left as it was', async () => {
    const id = await schedule(newId(), false);
    const hanging = {
      queue: () =>
        ({
          upsertJobScheduler: () => new Promise(() => {}),
          removeJobScheduler: () => new Promise(() => {}),
          getJobScheduler: () => new Promise(() => {}),
        }) as unknown as Queue,
    };
    const slow = new SchedulerSync(records, hanging, { redisTimeoutMs: 50 });
    await records.schedules.update(id, { enabled: true });

    await expect(slow.syncOne(id)).rejects.toMatchObject({ code: 'unavailable', message: expect.stringContaining('got no answer within 50 ms') });

    expect(await records.schedules.get(id)).toMatchObject({ nextRunAt: null });
    expect(queues.schedulers.has(schedulerIdOf(id))).toBe(false);
  });
});
