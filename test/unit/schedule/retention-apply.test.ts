import { beforeEach, describe, expect, it } from 'vitest';
import { applyAllRetention, applyRetention, CONTROL_QUEUE, MemoryRecords, newId, previewRetention, type RetentionPolicy } from '@cairn/core';
import { FakeQueues, manualClock, seedBackup, seedInstance } from './support/fakes.ts';

const HOUR = 3600_000;
const DAY = 24 * HOUR;

/** Retention applied over in-memory records and queues, with a clock moved by hand. */
describe('applyRetention', () => {
  let clock: ReturnType<typeof manualClock>;
  let records: MemoryRecords;
  let queues: FakeQueues;
  let instanceId: string;

  beforeEach(async () => {
    clock = manualClock(new Date('2026-03-01T00:30:00Z'));
    records = new MemoryRecords({ clock: clock.now });
    queues = new FakeQueues(clock.now);
    ({ instanceId } = await seedInstance(records));
  });

  async function scheduleWith(retention: RetentionPolicy, id = newId()): Promise<string> {
    await records.schedules.create({ id, instanceId, cron: '0 * * * *', timezone: 'UTC', volumes: [], retention, enabled: false });
    return id;
  }

  /** One backup an hour, oldest first, each created at its own time; the clock ends one hour after the last. */
  async function hourly(scheduleId: string | null, count: number, status: 'completed' | 'running' = 'completed'): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) {
      ids.push(await seedBackup(records, instanceId, { scheduleId, status }));
      clock.advance(HOUR);
    }
    return ids;
  }

  const deps = () => ({ records, queues, clock: clock.now });

  it('keeps the planned backups, soft-deletes the others through cleanup jobs, and sets expiresAt from maxAgeDays', async () => {
    const scheduleId = await scheduleWith({ keepLast: 2, maxAgeDays: 30 });
    const ids = await hourly(scheduleId, 5);
    const [running] = await hourly(scheduleId, 1, 'running');
    const [manual] = await hourly(null, 1);

    const report = await applyRetention(deps(), scheduleId);

    const dropped = ids.slice(0, 3);
    const kept = ids.slice(3);
    expect(report).toMatchObject({ scheduleId, status: 'applied', kept: 2, expiresUpdated: 2, failed: [] });
    expect([...report.deleted].sort()).toEqual([...dropped].sort());
    for (const id of dropped) expect(await records.backups.get(id)).toMatchObject({ status: 'deleting' });
    for (const id of kept) {
      const b = (await records.backups.get(id))!;
      expect(b.status).toBe('completed');
      expect(b.expiresAt).toEqual(new Date(b.createdAt.getTime() + 30 * DAY));
    }
    // Never touched: a running backup of the schedule, a backup of no schedule.
    expect(await records.backups.get(running!)).toMatchObject({ status: 'running', expiresAt: null });
    expect(await records.backups.get(manual!)).toMatchObject({ status: 'completed', expiresAt: null });

    const cleanups = await records.jobs.find({ type: 'cleanup' });
    expect(cleanups).toHaveLength(3);
    for (const c of cleanups) expect(c).toMatchObject({ status: 'queued', requestedBy: 'system', params: { reason: 'retention', scheduleId } });
    expect(
      queues
        .waiting(CONTROL_QUEUE)
        .map((j) => j.jobId)
        .sort(),
    ).toEqual(cleanups.map((c) => c.id).sort());

    // Applying it again changes nothing.
    const again = await applyRetention(deps(), scheduleId);
    expect(again).toMatchObject({ kept: 2, expiresUpdated: 0, deleted: [], failed: [] });
    expect(await records.jobs.count({ type: 'cleanup' })).toBe(3);
  });

  it('a backup being restored is not expired now, and is reported', async () => {
    const scheduleId = await scheduleWith({ keepLast: 1 });
    const [older, newer] = await hourly(scheduleId, 2);
    await records.jobs.create({ id: newId(), type: 'restore', status: 'running', backupId: older, instanceId, requestedBy: 'token' });

    const report = await applyRetention(deps(), scheduleId);

    expect(report.deleted).toEqual([]);
    expect(report.failed).toEqual([{ backupId: older, error: expect.stringContaining('is being read by restore job') }]);
    expect(await records.backups.get(older!)).toMatchObject({ status: 'completed' });
    expect(await records.backups.get(newer!)).toMatchObject({ status: 'completed' });
  });

  it('a schedule deleted while its retention runs gets no expiry set after the deletion', async () => {
    const scheduleId = await scheduleWith({ keepLast: 5, maxAgeDays: 30 });
    const ids = await hourly(scheduleId, 2);
    // The schedule is deleted (expiresAt cleared, as ScheduleService.remove does) right after the run read its backups.
    const find = records.backups.find;
    Object.assign(records.backups, {
      find: async (...args: Parameters<typeof find>) => {
        const rows = await find(...args);
        await records.backups.updateWhere({ scheduleId }, { expiresAt: null });
        await records.schedules.delete(scheduleId);
        return rows;
      },
    });

    const report = await applyRetention(deps(), scheduleId);

    expect(report).toMatchObject({ status: 'schedule-missing', expiresUpdated: 0, deleted: [] });
    for (const id of ids) expect(await records.backups.get(id)).toMatchObject({ scheduleId: null, expiresAt: null });
  });

  it('a missing schedule is reported, not thrown', async () => {
    expect(await applyRetention(deps(), 'gone')).toMatchObject({ scheduleId: 'gone', status: 'schedule-missing', deleted: [] });
  });

  it('the periodic run covers every schedule; one failing schedule does not stop the others', async () => {
    const a = await scheduleWith({ keepLast: 1 }, 'schedule-1');
    await hourly(a, 3);
    const b = await scheduleWith({ keepLast: 2 }, 'schedule-2');
    await hourly(b, 3);
    const c = await scheduleWith({ keepLast: 1 }, 'schedule-3');
    await hourly(c, 2);
    // The first schedule read fails: schedules are visited in id order, so that is `a`.
    records.failNext('schedules.get', new Error('connection reset'));

    const out = await applyAllRetention(deps());

    expect(out).toEqual({ schedules: 2, deleted: 2, failed: [{ scheduleId: a, error: 'connection reset' }] });
    expect(await records.backups.count({ scheduleId: a, status: 'completed' })).toBe(3);
    expect(await records.backups.count({ scheduleId: b, status: 'completed' })).toBe(2);
    expect(await records.backups.count({ scheduleId: c, status: 'completed' })).toBe(1);
  });

  it('the dry run says what a policy would keep and drop, counts the untouched, and changes nothing', async () => {
    const scheduleId = await scheduleWith({ keepLast: 1 });
    const ids = await hourly(scheduleId, 3);
    await hourly(scheduleId, 1, 'running');
    const schedule = (await records.schedules.get(scheduleId))!;

    const own = await previewRetention(records, schedule, undefined, clock.now);
    const wider = await previewRetention(records, schedule, { keepLast: 2 }, clock.now);

    expect(own.plan.keep.map((k) => k.id)).toEqual([ids[2]]);
    expect(own.plan.drop.map((d) => d.id).sort()).toEqual([ids[0], ids[1]].sort());
    expect(own).toMatchObject({ scheduleId, timezone: 'UTC', at: clock.now(), untouched: 1 });
    expect(wider.plan.keep.map((k) => k.id)).toEqual([ids[2], ids[1]]);
    expect(await records.backups.count({ scheduleId, status: 'completed' })).toBe(3);
    expect(await records.jobs.count({})).toBe(0);
  });
});
