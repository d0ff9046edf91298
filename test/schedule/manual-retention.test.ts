import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveKey, enqueueManualRetention, indexKey, newId, type BackupStatus, type BackupTrigger } from '@cairn/core';
import { startScheduleStack, waitFor, type ScheduleStack } from './support/schedule-stack.ts';

const DAY = 86_400_000;

/**
 * Retention of manual backups under an instance policy (issue 13), run by a real control worker
 * over Postgres and BullMQ: the periodic run and a run asked for by a policy change. Pinned backups
 * survive both, and the schedule retention of the same periodic run leaves them alone too.
 */
describe('manual retention in the control worker', () => {
  let stack: ScheduleStack;

  beforeAll(async () => {
    stack = await startScheduleStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  async function insertBackup(
    instanceId: string,
    daysAgo: number,
    options: { status?: BackupStatus; trigger?: BackupTrigger; pinned?: boolean; scheduleId?: string } = {},
  ): Promise<string> {
    const id = newId();
    // Counted back from today's noon (UTC), so that backups a few hours apart fall on the same day whenever the test runs.
    const noon = Math.floor(Date.now() / DAY) * DAY + DAY / 2;
    const createdAt = new Date(noon - daysAgo * DAY);
    const status = options.status ?? 'completed';
    await stack.prisma.backup.create({
      data: {
        id,
        instanceId,
        status,
        trigger: options.trigger ?? 'manual',
        scheduleId: options.scheduleId ?? null,
        volumes: ['data'],
        storageKey: archiveKey(instanceId, id, 'gzip'),
        indexKey: indexKey(instanceId, id),
        compression: 'gzip',
        requestedBy: 'test',
        createdAt,
        completedAt: status === 'completed' ? createdAt : null,
        pinned: options.pinned ?? false,
      },
    });
    return id;
  }

  const statuses = async (ids: string[]) => {
    const rows = await stack.prisma.backup.findMany({ where: { id: { in: ids } }, select: { id: true, status: true } });
    return Object.fromEntries(rows.map((r) => [r.id, r.status]));
  };

  it('the periodic run expires unpinned manual backups by the instance policy (keep rules and maxAgeDays); pinned ones stay', async () => {
    const { instanceId } = await stack.seedInstance();
    await stack.records.policies.upsert(instanceId, { manualRetention: { keepDaily: 2, maxAgeDays: 60 } });
    const day1 = await insertBackup(instanceId, 1);
    const day1older = await insertBackup(instanceId, 1 + 1 / 24);
    const day2 = await insertBackup(instanceId, 2);
    const day3 = await insertBackup(instanceId, 3);
    const pinnedOld = await insertBackup(instanceId, 3.5, { pinned: true });
    const pinnedAncient = await insertBackup(instanceId, 100, { pinned: true });
    const ancient = await insertBackup(instanceId, 100);
    const failed = await insertBackup(instanceId, 200, { status: 'failed' });
    // A schedule with a keepLast of 1 whose second backup is pinned: the same periodic run keeps it.
    const scheduleId = newId();
    await stack.prisma.schedule.create({
      data: { id: scheduleId, instanceId, cron: '0 * * * *', timezone: 'UTC', retention: { keepLast: 1 }, enabled: false },
    });
    const sNew = await insertBackup(instanceId, 1, { trigger: 'schedule', scheduleId });
    const sPinned = await insertBackup(instanceId, 2, { trigger: 'schedule', scheduleId, pinned: true });
    const sOld = await insertBackup(instanceId, 3, { trigger: 'schedule', scheduleId });
    // Another instance without a manual policy: its manual backups are kept until deleted.
    const other = await stack.seedInstance();
    const otherOld = await insertBackup(other.instanceId, 500);

    const control = await stack.startControl({ retentionEveryMs: 300 });
    try {
      const dropped = [day1older, day3, ancient, sOld];
      await waitFor('the periodic retention and the cleanups', async () => Object.values(await statuses(dropped)).every((s) => s === 'deleted'), 20_000);
      expect(await statuses([day1, day2, pinnedOld, pinnedAncient, failed, sNew, sPinned, otherOld])).toEqual({
        [day1]: 'completed',
        [day2]: 'completed',
        [pinnedOld]: 'completed',
        [pinnedAncient]: 'completed',
        [failed]: 'failed',
        [sNew]: 'completed',
        [sPinned]: 'completed',
        [otherOld]: 'completed',
      });
      const kept = await stack.prisma.backup.findMany({ where: { id: { in: [day1, day2, pinnedOld, pinnedAncient] } } });
      for (const b of kept) expect(b.expiresAt, b.id).toEqual(b.pinned ? null : new Date(b.createdAt.getTime() + 60 * DAY));
      const cleanups = await stack.prisma.job.findMany({ where: { instanceId, type: 'cleanup' } });
      expect(cleanups.map((j) => j.backupId).sort()).toEqual([...dropped].sort());
      expect(cleanups.filter((j) => j.backupId !== sOld).every((j) => (j.params as { policy?: string }).policy === 'manual')).toBe(true);
    } finally {
      await control.close();
    }
  });

  it('a run asked for one instance (after its policy changed) applies that instance’s policy only', async () => {
    const a = await stack.seedInstance();
    const b = await stack.seedInstance();
    for (const { instanceId } of [a, b]) await stack.records.policies.upsert(instanceId, { manualRetention: { keepLast: 1 } });
    const aNew = await insertBackup(a.instanceId, 1);
    const aOld = await insertBackup(a.instanceId, 2);
    const aPinned = await insertBackup(a.instanceId, 3, { pinned: true });
    const bOld = [await insertBackup(b.instanceId, 1), await insertBackup(b.instanceId, 2)];

    // No periodic run here: the job scheduler an earlier test's worker left in Redis would run every policy.
    await stack.flushRedis();
    const control = await stack.startControl();
    try {
      await enqueueManualRetention(stack.queues, a.instanceId);
      await waitFor('the instance retention', async () => (await statuses([aOld]))[aOld] === 'deleted', 15_000);
      expect(await statuses([aNew, aPinned, ...bOld])).toEqual({
        [aNew]: 'completed',
        [aPinned]: 'completed',
        [bOld[0]!]: 'completed',
        [bOld[1]!]: 'completed',
      });
    } finally {
      await control.close();
    }
  });
});
