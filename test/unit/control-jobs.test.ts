import type { Job as BullJob } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { CONTROL_JOB_NAMES, MemoryObjectStore, MemoryRecords, archiveKey, createLogger, indexKey, newId, type JobQueues } from '@cairn/core';
import { runCleanup } from '@cairn/worker/control/cleanup.handler.ts';
import type { ControlContext } from '@cairn/worker/control/control-context.ts';
import { runOrphanSweep } from '@cairn/worker/control/orphan-sweep.service.ts';
import { runSweep } from '@cairn/worker/control/sweep.handler.ts';
import { checkHandlers } from '@cairn/worker/job-handlers.ts';
import { JobLifecycle } from '@cairn/worker/job-lifecycle.ts';

const logger = createLogger({ level: 'silent', name: 'test' });

/** Queues whose BullMQ jobs are the given ones (by id); enqueues and cancels are recorded. */
function fakeQueues(jobs: Record<string, { state: string; failedReason?: string }> = {}) {
  const calls: string[] = [];
  const queues = {
    queue: () => ({
      getJob: async (id: string) => {
        const j = jobs[id];
        return j ? ({ id, failedReason: j.failedReason, getState: async () => j.state } as unknown as BullJob) : undefined;
      },
    }),
    enqueueControl: async (name: string, _payload: unknown, jobId: string) => void calls.push(`enqueue ${name} ${jobId}`),
    cancel: async (_queue: string, jobId: string) => {
      calls.push(`cancel ${jobId}`);
      return 'gone' as const;
    },
  };
  return { queues: queues as unknown as JobQueues, calls };
}

async function world() {
  const records = new MemoryRecords();
  records.seedNode({ id: 'n1', lastHeartbeatAt: new Date() });
  records.seedTenant({ id: 't1', name: 'acme' });
  const instanceId = newId();
  await records.instances.create({ id: instanceId, tenantId: 't1', name: 'app', nodeId: 'n1', volumes: [] });
  const store = new MemoryObjectStore();
  return { records, store, instanceId };
}

function context(records: MemoryRecords, store: MemoryObjectStore, queues: JobQueues): ControlContext {
  return { records, store, logger, queues, schedulers: {} as ControlContext['schedulers'], compression: 'zstd', sweep: {} };
}

describe('control jobs', () => {
  it('cleanup removes every object of a deleting backup, marks it deleted and records the job', async () => {
    const { records, store, instanceId } = await world();
    const backupId = newId();
    const storageKey = archiveKey(instanceId, backupId, 'zstd');
    await records.backups.create({
      id: backupId,
      instanceId,
      trigger: 'manual',
      volumes: [],
      storageKey,
      indexKey: indexKey(instanceId, backupId),
      compression: 'zstd',
      requestedBy: 't',
    });
    await records.backups.transition(backupId, ['pending'], 'deleting', { deletedAt: new Date() });
    await store.put(storageKey, Buffer.from('archive'));
    await store.put(indexKey(instanceId, backupId), Buffer.from('index'));
    await store.put('instances/other/backups/x/archive.tar.zst', Buffer.from('not ours'));
    const jobId = newId();
    await records.jobs.create({ id: jobId, type: 'cleanup', backupId, queue: 'control', requestedBy: 't' });
    const { record, work } = runCleanup(context(records, store, fakeQueues().queues), { backupId, jobId }, {} as BullJob);
    const outcome = await new JobLifecycle({ jobs: records.jobs, logger }).execute(
      { name: 'cleanup', record, attempt: 1, attempts: 3, signal: new AbortController().signal },
      work,
    );
    expect(outcome).toMatchObject({ status: 'succeeded', result: { deletedObjects: 2 } });
    expect((await records.backups.get(backupId))?.status).toBe('deleted');
    expect(await records.jobs.get(jobId)).toMatchObject({ status: 'succeeded', result: { deletedObjects: 2 } });
    expect(await store.head('instances/other/backups/x/archive.tar.zst')).not.toBeNull();
  });

  it('cleanup refuses a backup that is not being deleted (permanent: no retry)', async () => {
    const { records, store, instanceId } = await world();
    const backupId = newId();
    await records.backups.create({
      id: backupId,
      instanceId,
      trigger: 'manual',
      volumes: [],
      storageKey: 'k/a',
      indexKey: 'k/i',
      compression: 'zstd',
      requestedBy: 't',
    });
    const jobId = newId();
    await records.jobs.create({ id: jobId, type: 'cleanup', backupId, queue: 'control', requestedBy: 't' });
    const { record, work } = runCleanup(context(records, store, fakeQueues().queues), { backupId, jobId }, {} as BullJob);
    await expect(
      new JobLifecycle({ jobs: records.jobs, logger }).execute(
        { name: 'cleanup', record, attempt: 1, attempts: 3, signal: new AbortController().signal },
        work,
      ),
    ).rejects.toThrow(/conflict: backup .* is pending, not deleting/);
    expect(await records.jobs.get(jobId)).toMatchObject({ status: 'failed', errorCode: 'conflict' });
    expect((await records.backups.get(backupId))?.status).toBe('pending');
  });

  it('a sweep records itself as a sweep Job with what it did', async () => {
    const { records, store } = await world();
    const { record, work } = runSweep(context(records, store, fakeQueues().queues), {}, {} as BullJob);
    const outcome = await new JobLifecycle({ jobs: records.jobs, logger }).execute(
      { name: 'sweep', record, attempt: 1, attempts: 1, signal: new AbortController().signal },
      work,
    );
    expect(outcome.status).toBe('succeeded');
    const [sweep] = await records.jobs.find({ type: 'sweep' });
    expect(sweep).toMatchObject({ status: 'succeeded', params: { kind: 'orphans' }, result: { summary: { interruptedJobs: 0 } } });
    expect((outcome as { returnValue: { sweepJobId: string } }).returnValue.sweepJobId).toBe(sweep!.id);
  });

  it('the sweep closes a job whose worker could not record its failure with the error BullMQ kept', async () => {
    const { records, store, instanceId } = await world();
    const jobId = newId();
    await records.jobs.create({ id: jobId, type: 'restore', status: 'running', instanceId, nodeId: 'n1', queue: 'node.n1', requestedBy: 't' });
    const { queues } = fakeQueues({ [jobId]: { state: 'failed', failedReason: 'insufficient-space: need 2.0 GiB, available 1.0 GiB' } });
    const report = await runOrphanSweep({ records, store, queues, logger, clock: () => new Date(Date.now() + 1000) }, { lostJobGraceMs: 0 });
    expect(report.interruptedJobs.map((j) => j.jobId)).toEqual([jobId]);
    const row = await records.jobs.get(jobId);
    expect(row).toMatchObject({ status: 'interrupted', errorCode: 'interrupted' });
    expect(row?.error).toContain('insufficient-space: need 2.0 GiB, available 1.0 GiB');
  });
});

describe('handler registry', () => {
  it('refuses to start a worker with a job name that has no handler, or a handler for an undeclared name', () => {
    const ok = () => async () => {};
    expect(() => checkHandlers('control', ['cleanup', 'sweep'] as const, { cleanup: ok(), sweep: ok() })).not.toThrow();
    expect(() => checkHandlers('control', ['cleanup', 'sweep', 'verify'] as const, { cleanup: ok(), sweep: ok() } as never)).toThrow(
      'control worker: no handler for verify',
    );
    expect(() => checkHandlers('control', ['cleanup'] as const, { cleanup: ok(), migrate: ok() } as never)).toThrow('handlers for undeclared jobs migrate');
  });

  it('every declared control job name has a handler', () => {
    expect([...CONTROL_JOB_NAMES].sort()).toEqual(['cleanup', 'migrate', 'retention', 'schedule-fire', 'sweep', 'verify']);
  });
});
