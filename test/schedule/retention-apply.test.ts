import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CONTROL_QUEUE,
  applyAllRetention,
  applyRetention,
  archiveKey,
  indexKey,
  newId,
  planRetention,
  type BackupStatus,
  type BackupTrigger,
  type RetentionPolicy,
} from '@cairn/core';
import { startScheduleStack, type ScheduleStack } from './support/schedule-stack.ts';

const HOUR = 3600_000;

/** Retention applied to synthetic histories in Postgres, with a fixed clock (no control worker: rows stay `deleting`). */
describe('applying retention', () => {
  let stack: ScheduleStack;

  beforeAll(async () => {
    stack = await startScheduleStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  async function scheduleWith(instanceId: string, retention: RetentionPolicy, timezone = 'UTC'): Promise<string> {
    const id = newId();
    await stack.prisma.schedule.create({ data: { id, instanceId, cron: '0 * * * *', timezone, retention: retention as object, enabled: false } });
    return id;
  }

  async function insertBackup(
    instanceId: string,
    createdAt: Date,
    options: { scheduleId?: string | null; status?: BackupStatus; trigger?: BackupTrigger } = {},
  ) {
    const id = newId();
    await stack.prisma.backup.create({
      data: {
        id,
        instanceId,
        status: options.status ?? 'completed',
        trigger: options.trigger ?? 'schedule',
        scheduleId: options.scheduleId ?? null,
        volumes: ['data'],
        storageKey: archiveKey(instanceId, id, 'gzip'),
        indexKey: indexKey(instanceId, id),
        compression: 'gzip',
        requestedBy: 'system',
        createdAt,
        ...(options.status === undefined || options.status === 'completed' ? { completedAt: createdAt } : {}),
      },
    });
    return id;
  }

  it('keeps exactly the planned set across a DST change, and only ever expires completed backups of the schedule', async () => {
    const { instanceId } = await stack.seedInstance();
    const scheduleId = await scheduleWith(instanceId, { keepHourly: 3, keepDaily: 2, maxAgeDays: 30 }, 'Europe/Berlin');
    const otherSchedule = await scheduleWith(instanceId, { keepLast: 1 });
    // Every 30 min across the Berlin fall-back (2024-10-27 03:00 CEST → 02:00 CET), plus the day before.
    const start = Date.parse('2024-10-26T08:00:00Z');
    const completed: { id: string; createdAt: Date }[] = [];
    for (let t = start; t <= Date.parse('2024-10-27T02:30:00Z'); t += 30 * 60_000) {
      const createdAt = new Date(t);
      completed.push({ id: await insertBackup(instanceId, createdAt, { scheduleId }), createdAt });
    }
    const old = await insertBackup(instanceId, new Date('2024-09-01T00:00:00Z'), { scheduleId });
    completed.push({ id: old, createdAt: new Date('2024-09-01T00:00:00Z') });
    // Never touched: a running backup older than everything, a failed one, manual ones, another schedule's.
    const running = await insertBackup(instanceId, new Date('2024-08-01T00:00:00Z'), { scheduleId, status: 'running' });
    const failed = await insertBackup(instanceId, new Date('2024-08-02T00:00:00Z'), { scheduleId, status: 'failed' });
    const manual = await insertBackup(instanceId, new Date('2024-08-03T00:00:00Z'), { trigger: 'manual' });
    const others = [
      await insertBackup(instanceId, new Date('2024-08-04T00:00:00Z'), { scheduleId: otherSchedule }),
      await insertBackup(instanceId, new Date('2024-08-05T00:00:00Z'), { scheduleId: otherSchedule }),
    ];

    const clock = () => new Date('2024-10-27T06:00:00Z');
    const report = await applyRetention({ records: stack.records, queues: stack.queues, clock }, scheduleId);

    // Hourly: 03:30 CET, 02:30 CET, 02:30 CEST (the repeated hour is two hours); daily: the newest of 10-27 and of 10-26.
    const expectedKeep = ['2024-10-27T02:30:00Z', '2024-10-27T01:30:00Z', '2024-10-27T00:30:00Z', '2024-10-26T21:30:00Z'].map((s) => new Date(s).getTime());
    const kept = await stack.prisma.backup.findMany({ where: { scheduleId, status: 'completed' }, orderBy: { createdAt: 'desc' } });
    expect(kept.map((b) => b.createdAt.getTime())).toEqual(expectedKeep);
    // maxAgeDays 30 drops the September backup and sets expiresAt on the kept ones.
    expect(kept.every((b) => b.expiresAt?.getTime() === b.createdAt.getTime() + 30 * 24 * HOUR)).toBe(true);
    expect(await stack.prisma.backup.findUnique({ where: { id: old } })).toMatchObject({ status: 'deleting' });

    const dropped = completed.filter((c) => !expectedKeep.includes(c.createdAt.getTime())).map((c) => c.id);
    expect([...report.deleted].sort()).toEqual([...dropped].sort());
    expect(report).toMatchObject({ status: 'applied', kept: 4, expiresUpdated: 4, failed: [] });
    const deleting = await stack.prisma.backup.findMany({ where: { id: { in: dropped } } });
    expect(deleting.every((b) => b.status === 'deleting' && b.deletedAt !== null)).toBe(true);
    // Each through the normal soft delete: a cleanup Job and a cleanup control job.
    const cleanups = await stack.prisma.job.findMany({ where: { type: 'cleanup', backupId: { in: dropped } } });
    expect(cleanups).toHaveLength(dropped.length);
    expect(cleanups.every((c) => c.status === 'queued' && c.requestedBy === 'system' && c.queue === CONTROL_QUEUE)).toBe(true);
    expect(cleanups[0]!.params).toEqual({ reason: 'retention', scheduleId });
    const queued = await stack.queues.queue(CONTROL_QUEUE).getJob(cleanups[0]!.id);
    expect(queued?.name).toBe('cleanup');
    expect(queued?.data).toEqual({ backupId: cleanups[0]!.backupId, jobId: cleanups[0]!.id });

    for (const id of [running, failed, manual, ...others]) {
      const b = await stack.prisma.backup.findUnique({ where: { id } });
      expect(b!.status, id).not.toBe('deleting');
      expect(b!.expiresAt).toBeNull();
    }

    // Applying again changes nothing.
    const again = await applyRetention({ records: stack.records, queues: stack.queues, clock }, scheduleId);
    expect(again).toMatchObject({ kept: 4, expiresUpdated: 0, deleted: [], failed: [] });
  });

  it('the dry run reports what a policy would keep and drop, with reasons, and changes nothing', async () => {
    const { instanceId } = await stack.seedInstance();
    const view = await stack.schedules.create(instanceId, { cron: '0 * * * *', timezone: 'UTC', retention: { keepLast: 1 }, enabled: false });
    const ids: string[] = [];
    for (let h = 0; h < 6; h++) ids.push(await insertBackup(instanceId, new Date(Date.now() - (6 - h) * HOUR), { scheduleId: view.id }));
    await insertBackup(instanceId, new Date(Date.now() - 9 * HOUR), { scheduleId: view.id, status: 'running' });

    const own = await stack.schedules.previewRetention(view.id);
    expect(own.keep.map((k) => k.backupId)).toEqual([ids[5]]);
    expect(own.keep[0]!.reasons).toEqual([{ rule: 'last', bucket: '#1' }]);
    expect(own.drop.map((d) => d.backupId)).toEqual(ids.slice(0, 5).reverse());
    expect(own.drop[0]!.reason).toMatch(/not kept by any rule/);
    expect(own.untouched).toBe(1);

    const other = await stack.schedules.previewRetention(view.id, { keepLast: 2, keepHourly: 4 });
    expect(other.keep.map((k) => k.backupId)).toEqual(ids.slice(2).reverse());
    expect(other.keep[0]!.reasons.map((r) => r.rule)).toEqual(['last', 'hourly']);
    expect(other.keep[1]!.reasons.map((r) => r.rule)).toEqual(['last', 'hourly']);
    expect(other.keep[2]!.reasons.map((r) => r.rule)).toEqual(['hourly']);

    await expect(stack.schedules.previewRetention(view.id, { keepLast: 0 })).rejects.toMatchObject({ code: 'validation' });
    expect(await stack.prisma.backup.count({ where: { scheduleId: view.id, status: 'completed' } })).toBe(6);
    // And the plan matches what the pure function says for the same rows.
    const rows = await stack.prisma.backup.findMany({ where: { scheduleId: view.id, status: 'completed' } });
    expect(planRetention(rows, { keepLast: 1 }, { timezone: 'UTC' }).keep.map((k) => k.id)).toEqual([ids[5]]);
  });

  it('a backup being restored is not expired now, and is reported', async () => {
    const { instanceId } = await stack.seedInstance();
    const scheduleId = await scheduleWith(instanceId, { keepLast: 1 });
    const older = await insertBackup(instanceId, new Date(Date.now() - 2 * HOUR), { scheduleId });
    await insertBackup(instanceId, new Date(Date.now() - HOUR), { scheduleId });
    await stack.prisma.job.create({
      data: { id: newId(), type: 'restore', status: 'running', instanceId, backupId: older, targetInstanceId: instanceId, requestedBy: 'test' },
    });
    const report = await applyRetention({ records: stack.records, queues: stack.queues }, scheduleId);
    expect(report.deleted).toEqual([]);
    expect(report.failed).toEqual([{ backupId: older, error: expect.stringMatching(/being read by restore job/) }]);
    expect((await stack.prisma.backup.findUnique({ where: { id: older } }))!.status).toBe('completed');
  });

  it('the periodic run covers every schedule', async () => {
    const { instanceId } = await stack.seedInstance();
    const a = await scheduleWith(instanceId, { keepLast: 1 });
    const b = await scheduleWith(instanceId, { keepLast: 2 });
    for (const s of [a, b]) for (let i = 3; i > 0; i--) await insertBackup(instanceId, new Date(Date.now() - i * HOUR), { scheduleId: s });
    const out = await applyAllRetention({ records: stack.records, queues: stack.queues });
    expect(out.failed.filter((f) => f.scheduleId === a || f.scheduleId === b)).toEqual([]);
    expect(out.schedules).toBeGreaterThanOrEqual(2);
    expect(await stack.prisma.backup.count({ where: { scheduleId: a, status: 'completed' } })).toBe(1);
    expect(await stack.prisma.backup.count({ where: { scheduleId: b, status: 'completed' } })).toBe(2);
  });
});
