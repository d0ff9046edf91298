import { beforeEach, describe, expect, it } from 'vitest';
import { cancelJob, cancelJobs, type Job, MemoryRecords, newId } from '@cairn/core';
import { FakeQueues, seedBackup, seedInstance } from './support/fakes.ts';

/** cancelJob (SPEC §4) over in-memory records and queues. */
describe('cancelJob', () => {
  let records: MemoryRecords;
  let queues: FakeQueues;
  let instanceId: string;
  let nodeId: string;

  beforeEach(async () => {
    records = new MemoryRecords();
    queues = new FakeQueues();
    ({ instanceId, nodeId } = await seedInstance(records));
  });

  async function backupJob(status: 'queued' | 'running', options: { enqueue?: boolean; active?: boolean; queue?: string | null } = {}) {
    const backupId = await seedBackup(records, instanceId, { status: status === 'queued' ? 'pending' : 'running', trigger: 'manual' });
    const job = await records.jobs.create({
      id: newId(),
      type: 'backup',
      status,
      backupId,
      instanceId,
      nodeId,
      queue: options.queue === undefined ? `node.${nodeId}` : options.queue,
      requestedBy: 'token',
    });
    if (options.enqueue ?? true) await queues.enqueueNode(nodeId, 'backup', { jobId: job.id });
    if (options.active) queues.active.add(job.id);
    return { job, backupId };
  }

  it('a waiting job is removed from its queue and cancelled with its backup', async () => {
    const { job, backupId } = await backupJob('queued');

    expect(await cancelJob(records, queues, job, 'stop')).toBe('cancelled');

    const row = (await records.jobs.get(job.id))!;
    expect(row).toMatchObject({ status: 'cancelled', error: 'stop', errorCode: 'cancelled' });
    expect(row.finishedAt).toBeInstanceOf(Date);
    expect(await records.backups.get(backupId)).toMatchObject({ status: 'cancelled', error: 'stop' });
    expect(queues.waiting(`node.${nodeId}`)).toHaveLength(0);
  });

  it('a job a worker holds is only signalled: its worker writes the outcome', async () => {
    const { job, backupId } = await backupJob('running', { active: true });

    expect(await cancelJob(records, queues, job, 'stop')).toBe('signalled');

    expect(queues.signalled).toEqual([{ queue: `node.${nodeId}`, jobId: job.id, reason: 'stop' }]);
    expect(await records.jobs.get(job.id)).toMatchObject({ status: 'running' });
    expect(await records.backups.get(backupId)).toMatchObject({ status: 'running' });
  });

  it('a job gone from its queue is cancelled only while still queued', async () => {
    const queued = await backupJob('queued', { enqueue: false });
    const running = await backupJob('running', { enqueue: false });
    const unqueued = await backupJob('queued', { enqueue: false, queue: null });

    expect(await cancelJob(records, queues, queued.job, 'stop')).toBe('cancelled');
    expect(await cancelJob(records, queues, running.job, 'stop')).toBe('unchanged');
    expect(await cancelJob(records, queues, unqueued.job, 'stop')).toBe('cancelled');

    expect(await records.jobs.get(running.job.id)).toMatchObject({ status: 'running' });
    expect(await records.backups.get(running.backupId)).toMatchObject({ status: 'running' });
  });

  it('a job that finished meanwhile is left as it is (the conditional write loses)', async () => {
    const { job, backupId } = await backupJob('queued');
    await records.jobs.transition(job.id, ['queued'], 'succeeded');
    await records.backups.transition(backupId, ['pending'], 'completed');

    expect(await cancelJob(records, queues, job, 'stop')).toBe('unchanged');

    expect(await records.jobs.get(job.id)).toMatchObject({ status: 'succeeded', error: null });
    expect(await records.backups.get(backupId)).toMatchObject({ status: 'completed' });
  });

  it('cancelJobs returns the jobs cancelled or signalled', async () => {
    const a = await backupJob('queued');
    const b = await backupJob('running', { active: true });
    const c = await backupJob('running', { enqueue: false });
    const jobs: Job[] = [a.job, b.job, c.job];

    expect(await cancelJobs(records, queues, jobs, 'instance deleted')).toEqual([a.job.id, b.job.id]);
  });

  it('a failing state write is not swallowed', async () => {
    const { job } = await backupJob('queued');
    records.failNext('jobs.transition', new Error('connection lost'));

    await expect(cancelJob(records, queues, job, 'stop')).rejects.toThrow('connection lost');
  });
});
