import { beforeEach, describe, expect, it } from 'vitest';
import { activeInstanceJob, CairnError, fireSchedule, firingIds, isEnqueueFailure, MemoryRecords, newId, type FiringDeps } from '@cairn/core';
import { FakeQueues, manualClock, seedInstance } from './support/fakes.ts';

/** fireSchedule over in-memory records and queues: idempotent ids, skips, ignored schedules. */
describe('fireSchedule', () => {
  const HOUR = 3600_000;
  let clock: ReturnType<typeof manualClock>;
  let records: MemoryRecords;
  let queues: FakeQueues;
  let removed: string[];
  let deps: FiringDeps;
  let instanceId: string;
  let nodeId: string;

  async function schedule(options: { enabled?: boolean; volumes?: string[]; cron?: string } = {}): Promise<string> {
    const id = newId();
    await records.schedules.create({
      id,
      instanceId,
      cron: options.cron ?? '0 * * * *',
      timezone: 'UTC',
      volumes: options.volumes ?? [],
      retention: { keepLast: 3 },
      enabled: options.enabled ?? true,
    });
    return id;
  }

  beforeEach(async () => {
    clock = manualClock();
    records = new MemoryRecords({ clock: clock.now });
    queues = new FakeQueues(clock.now);
    removed = [];
    deps = {
      records,
      queues,
      compression: 'gzip',
      now: clock.now,
      removeScheduler: async (id) => {
        removed.push(id);
      },
    };
    ({ instanceId, nodeId } = await seedInstance(records, { volumes: ['logs', 'data'] }));
  });

  it('creates one backup and one job with ids derived from the schedule and fire time, and enqueues it on the node', async () => {
    const id = await schedule();
    const fireTime = clock.now().getTime();
    const ids = firingIds(id, fireTime);

    const outcome = await fireSchedule(deps, id, fireTime);

    expect(outcome.status).toBe('created');
    if (outcome.status !== 'created') return;
    expect(outcome.backup).toMatchObject({ id: ids.backupId, status: 'pending', trigger: 'schedule', scheduleId: id, volumes: ['data', 'logs'] });
    expect(outcome.backup.storageKey).toContain(ids.backupId);
    expect(outcome.job).toMatchObject({ id: ids.jobId, type: 'backup', status: 'queued', nodeId, queue: `node.${nodeId}`, requestedBy: 'system' });
    expect(outcome.job.params).toMatchObject({ scheduleId: id, fireTime: new Date(fireTime).toISOString(), volumes: ['data', 'logs'] });
    expect(queues.waiting(`node.${nodeId}`)).toEqual([expect.objectContaining({ name: 'backup', jobId: ids.jobId })]);
    const row = (await records.schedules.get(id))!;
    expect(row.lastFiredAt).toEqual(new Date(fireTime));
    expect(row.lastBackupId).toBe(ids.backupId);
    expect(row.nextRunAt).toEqual(new Date('2026-06-01T13:00:00Z'));
  });

  it('a duplicate delivery of the same firing creates nothing new and re-enqueues the same job id', async () => {
    const id = await schedule();
    const fireTime = clock.now().getTime();

    const outcomes = await Promise.all([1, 2, 3].map(() => fireSchedule(deps, id, fireTime)));

    expect(outcomes.map((o) => o.status).sort()).toEqual(['created', 'duplicate', 'duplicate']);
    expect(await records.backups.count({ scheduleId: id })).toBe(1);
    expect(await records.jobs.count({ instanceId, type: 'backup' })).toBe(1);
    const duplicate = outcomes.find((o) => o.status === 'duplicate');
    expect(duplicate).toMatchObject({ backup: { id: firingIds(id, fireTime).backupId }, job: { id: firingIds(id, fireTime).jobId } });
    // Every delivery enqueues (a crash may have lost the first), but the queue holds one job.
    expect(queues.enqueueCalls).toBe(3);
    expect(queues.waiting(`node.${nodeId}`)).toHaveLength(1);
  });

  it('a late delivery of an older firing does not move lastFiredAt back', async () => {
    const id = await schedule();
    const newer = clock.now().getTime();
    await fireSchedule(deps, id, newer);
    // The newer firing's backup finished; the older firing arrives late.
    await records.jobs.transition(firingIds(id, newer).jobId, ['queued'], 'succeeded');

    const late = await fireSchedule(deps, id, newer - HOUR);

    expect(late.status).toBe('created');
    const row = (await records.schedules.get(id))!;
    expect(row.lastFiredAt).toEqual(new Date(newer));
    expect(row.lastBackupId).toBe(firingIds(id, newer).backupId);
  });

  it('skips when the instance has a backup queued or running, records the skip once, and never queues behind it', async () => {
    const id = await schedule();
    const busy = await records.jobs.create({ id: newId(), type: 'backup', status: 'running', instanceId, requestedBy: 'token' });
    const fireTime = clock.now().getTime();

    const first = await fireSchedule(deps, id, fireTime);
    const again = await fireSchedule(deps, id, fireTime);

    expect(first).toMatchObject({ status: 'skipped', activeJobId: busy.id, duplicate: false });
    expect(again).toMatchObject({ status: 'skipped', activeJobId: busy.id, duplicate: true });
    if (first.status !== 'skipped') return;
    expect(first.reason).toBe(`instance busy: backup job ${busy.id} is running`);
    expect(first.skipJob).toMatchObject({
      id: firingIds(id, fireTime).skipJobId,
      type: 'schedule_skip',
      status: 'succeeded',
      result: { reason: first.reason, activeJobId: busy.id, scheduleId: id },
      startedAt: clock.now(),
      finishedAt: clock.now(),
    });
    expect(await records.jobs.count({ type: 'schedule_skip' })).toBe(1);
    expect(await records.backups.count({ scheduleId: id })).toBe(0);
    expect(queues.enqueueCalls).toBe(0);
    expect(await records.schedules.get(id)).toMatchObject({ lastSkippedAt: clock.now(), lastSkipReason: first.reason, lastFiredAt: null });
  });

  it('a restore into the instance makes it busy too; a manual run answers conflict instead of recording a skip', async () => {
    const id = await schedule();
    const other = await seedInstance(records);
    const restore = await records.jobs.create({
      id: newId(),
      type: 'restore',
      status: 'queued',
      instanceId: other.instanceId,
      targetInstanceId: instanceId,
      requestedBy: 'token',
    });

    const manual = fireSchedule(deps, id, clock.now().getTime(), { manual: true, requestedBy: 'token-1' });

    await expect(manual).rejects.toMatchObject({ code: 'conflict', details: { jobId: restore.id } });
    expect(await records.jobs.count({ type: 'schedule_skip' })).toBe(0);
    expect((await records.schedules.get(id))!.lastSkippedAt).toBeNull();
  });

  it('skips with no-data when none of the schedule volumes exist on the instance', async () => {
    const id = await schedule({ volumes: ['gone'] });

    const outcome = await fireSchedule(deps, id, clock.now().getTime());

    expect(outcome).toMatchObject({ status: 'skipped', activeJobId: null, reason: "none of the schedule's volumes (gone) exist on the instance" });
  });

  it('ignores a disabled or deleted schedule and removes its stray scheduler; a manual run fires a disabled one', async () => {
    const disabled = await schedule({ enabled: false });

    expect(await fireSchedule(deps, disabled, clock.now().getTime())).toEqual({ status: 'ignored', reason: 'schedule-disabled' });
    expect(await fireSchedule(deps, 'missing-schedule', clock.now().getTime())).toEqual({ status: 'ignored', reason: 'schedule-missing' });
    expect(removed).toEqual([disabled, 'missing-schedule']);
    expect(await records.backups.count({})).toBe(0);
    expect(await records.jobs.count({})).toBe(0);

    const manual = await fireSchedule(deps, disabled, clock.now().getTime(), { manual: true, requestedBy: 'token-1' });
    expect(manual).toMatchObject({ status: 'created', backup: { requestedBy: 'token-1' } });
    // A disabled schedule has no next run.
    expect((await records.schedules.get(disabled))!.nextRunAt).toBeNull();
    await expect(fireSchedule(deps, 'missing-schedule', 0, { manual: true })).rejects.toMatchObject({ code: 'not-found' });
  });

  it('an enqueue failure after the commit is reported as such, with the rows kept for a retry', async () => {
    const id = await schedule();
    const fireTime = clock.now().getTime();
    queues.fail.enqueueNode = 1;

    const err = await fireSchedule(deps, id, fireTime).catch((e: unknown) => e);

    expect(isEnqueueFailure(err)).toBe(true);
    expect(err).toBeInstanceOf(CairnError);
    const { backupId, jobId } = firingIds(id, fireTime);
    expect((err as CairnError).details).toEqual({ stage: 'enqueue', backupId, jobId });
    expect(await records.jobs.get(firingIds(id, fireTime).jobId)).toMatchObject({ status: 'queued' });
    // The retry of the same firing enqueues it.
    expect(await fireSchedule(deps, id, fireTime)).toMatchObject({ status: 'duplicate' });
    expect(queues.waiting(`node.${nodeId}`)).toHaveLength(1);
  });

  it('a database failure inside the firing leaves nothing behind', async () => {
    const id = await schedule();
    records.failNext('jobs.create');

    await expect(fireSchedule(deps, id, clock.now().getTime())).rejects.toThrow('injected failure of jobs.create');

    expect(await records.backups.count({})).toBe(0);
    expect((await records.schedules.get(id))!.lastFiredAt).toBeNull();
    expect(queues.enqueueCalls).toBe(0);
  });
});

describe('activeInstanceJob', () => {
  it('finds the oldest queued or running backup of the instance or restore into it, inside or outside a transaction', async () => {
    const records = new MemoryRecords();
    const { instanceId } = await seedInstance(records);
    const other = await seedInstance(records);
    // Ids that sort in creation order (ULIDs made in one millisecond need not).
    let n = 0;
    const job = (type: 'backup' | 'restore', status: 'queued' | 'running' | 'succeeded', source: string, target?: string) =>
      records.jobs.create({
        id: `job-${String(++n).padStart(3, '0')}`,
        type,
        status,
        instanceId: source,
        targetInstanceId: target ?? null,
        requestedBy: 'token',
      });

    await job('backup', 'succeeded', instanceId);
    await job('restore', 'running', instanceId, other.instanceId); // a restore from it into another instance
    await job('backup', 'running', other.instanceId);
    expect(await activeInstanceJob(records, instanceId)).toBeNull();

    const restoreInto = await job('restore', 'queued', other.instanceId, instanceId);
    const backup = await job('backup', 'queued', instanceId);
    expect((await activeInstanceJob(records, instanceId))?.id).toBe(restoreInto.id);
    expect(
      await records.transaction(async (tx) => {
        await tx.lock('instance', instanceId);
        return (await activeInstanceJob(tx, instanceId))?.id;
      }),
    ).toBe(restoreInto.id);

    await records.jobs.transition(restoreInto.id, ['queued'], 'cancelled');
    expect((await activeInstanceJob(records, instanceId))?.id).toBe(backup.id);
  });
});
