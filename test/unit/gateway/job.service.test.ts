import { describe, expect, it } from 'vitest';
import { newId } from '@cairn/core';
import type { JobEvent } from '@cairn/gateway/services/job.service.ts';
import { admin, gatewayFixture, member, rejection } from './gateway-fixture.ts';

async function setup() {
  const f = gatewayFixture();
  f.node('n1', ['/srv/a']);
  f.node('n2', ['/srv/b']);
  const acme = f.tenant('acme');
  const other = f.tenant('other');
  const owner = member(acme.id);
  const stranger = member(other.id);
  const mine = await f.instance({ name: 'mine', nodeId: 'n1', volumes: [{ name: 'd', hostPath: '/srv/a/mine' }] }, owner);
  const theirs = await f.instance({ name: 'theirs', nodeId: 'n2', volumes: [{ name: 'd', hostPath: '/srv/b/theirs' }] }, stranger);
  return { f, owner, stranger, mine, theirs };
}

describe('JobService: visibility and listing', () => {
  it('shows a member the jobs acting on its instances only; sweeps and other tenants are 404', async () => {
    const { f, owner, stranger, mine, theirs } = await setup();
    const own = (await f.backups.start(owner, mine.id, {})).job;
    const foreign = (await f.backups.start(stranger, theirs.id, {})).job;
    const sweep = await f.records.jobs.create({ id: newId(), type: 'sweep', requestedBy: 'system', queue: 'control' });

    expect((await f.jobs.get(owner, own.id)).id).toBe(own.id);
    expect((await rejection(f.jobs.get(owner, foreign.id))).code).toBe('not-found');
    expect((await rejection(f.jobs.get(owner, sweep.id))).code).toBe('not-found');
    expect((await f.jobs.get(admin, sweep.id)).type).toBe('sweep');
    expect((await f.jobs.list(owner, { limit: 10 })).items.map((j) => j.id)).toEqual([own.id]);
    expect((await f.jobs.list(admin, { limit: 10 })).items).toHaveLength(3);
  });

  it("shows a restore into the member's instance from another tenant's backup, also when filtered by that backup's instance", async () => {
    const { f, owner, stranger, mine, theirs } = await setup();
    const { backup, job } = await f.backups.start(stranger, theirs.id, {});
    await f.complete(backup.id, job.id);
    // An admin restores tenant other's backup into acme's instance.
    const restore = await f.restores.start(admin, backup.id, { targetInstanceId: mine.id });
    expect((await f.jobs.get(owner, restore.id)).targetInstanceId).toBe(mine.id);
    expect((await f.jobs.list(owner, { limit: 10, instance: theirs.id })).items.map((j) => j.id)).toEqual([restore.id]);
    expect((await f.jobs.list(owner, { limit: 10, instance: mine.id })).items.map((j) => j.id)).toEqual([restore.id]);
    expect((await f.jobs.list(stranger, { limit: 10, instance: theirs.id })).items.map((j) => j.id).sort()).toEqual([job.id, restore.id].sort());
  });

  it('filters by type, status and node, and pages newest first', async () => {
    const { f, owner, mine } = await setup();
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { backup, job } = await f.backups.start(owner, mine.id, {});
      await f.complete(backup.id, job.id);
      ids.push(job.id);
      await f.backups.remove(owner, backup.id);
    }
    const backupsNewestFirst = [...ids].sort().reverse();
    const page1 = await f.jobs.list(owner, { limit: 3, type: ['backup'] });
    expect(page1.items.map((j) => j.id)).toEqual(backupsNewestFirst.slice(0, 3));
    const page2 = await f.jobs.list(owner, { limit: 3, type: ['backup'], cursor: page1.nextCursor! });
    expect(page2).toEqual({ items: [expect.objectContaining({ id: backupsNewestFirst[3] })], nextCursor: null });

    expect((await f.jobs.list(owner, { limit: 10, type: ['cleanup'], status: ['queued'] })).items).toHaveLength(4);
    expect((await f.jobs.list(owner, { limit: 10, status: ['succeeded'] })).items).toHaveLength(4);
    expect((await f.jobs.list(owner, { limit: 10, node: 'n1' })).items).toHaveLength(4);
    expect((await f.jobs.list(owner, { limit: 10, node: 'n2' })).items).toHaveLength(0);
  });
});

describe('JobService.cancel', () => {
  it('removes a queued backup job from its queue and cancels it and its pending backup', async () => {
    const { f, owner, mine } = await setup();
    const { backup, job } = await f.backups.start(owner, mine.id, {});
    const res = await f.jobs.cancel(owner, job.id);
    expect(res.outcome).toBe('done');
    expect(res.job).toMatchObject({ id: job.id, status: 'cancelled', error: `cancelled by token ${owner.tokenId}` });
    expect((await f.records.jobs.get(job.id))!.errorCode).toBe('cancelled');
    expect(f.queues.cancels).toEqual([{ queueName: 'node.n1', jobId: job.id, reason: `cancelled by token ${owner.tokenId}` }]);
    expect((await f.records.backups.get(backup.id))!.status).toBe('cancelled');
    expect(await rejection(f.jobs.cancel(owner, job.id))).toMatchObject({ code: 'conflict', details: { status: 'cancelled' } });
  });

  it('signals a running job and leaves its state to the worker', async () => {
    const { f, owner, mine } = await setup();
    const { job } = await f.backups.start(owner, mine.id, {});
    await f.records.jobs.transition(job.id, ['queued'], 'running', { startedAt: f.clock.now });
    f.queues.cancelOutcome = 'signalled';
    const res = await f.jobs.cancel(owner, job.id);
    expect(res).toMatchObject({ outcome: 'signalled', job: { status: 'running' } });
  });

  it('answers 409 when the job ended before the cancel landed', async () => {
    const { f, owner, mine } = await setup();
    const { job } = await f.backups.start(owner, mine.id, {});
    f.queues.cancelOutcome = 'gone';
    // The worker finished it between the read and the cancel.
    const cancel = f.queues.cancel.bind(f.queues);
    f.queues.cancel = async (q, id, reason) => {
      await f.records.jobs.transition(id, ['queued'], 'succeeded');
      return cancel(q, id, reason);
    };
    expect(await rejection(f.jobs.cancel(owner, job.id))).toMatchObject({ code: 'conflict', details: { status: 'succeeded' } });
  });

  it("answers 404 for another tenant's job and 503 with Redis down (nothing changed)", async () => {
    const { f, owner, stranger, mine } = await setup();
    const { job } = await f.backups.start(owner, mine.id, {});
    expect((await rejection(f.jobs.cancel(stranger, job.id))).code).toBe('not-found');
    f.queues.down = true;
    expect((await rejection(f.jobs.cancel(owner, job.id))).code).toBe('unavailable');
    expect((await f.records.jobs.get(job.id))!.status).toBe('queued');
  });
});

describe('JobService.watch', () => {
  it('yields the current state, each progress change and the final state, then ends', async () => {
    const { f, owner, mine } = await setup();
    const { job } = await f.backups.start(owner, mine.id, {});
    const events: JobEvent[] = [];
    const watching = (async () => {
      for await (const e of f.jobs.watch(owner, job.id, new AbortController().signal)) events.push(e);
    })();
    await expect.poll(() => events.length).toBe(1);
    await f.records.jobs.transition(job.id, ['queued'], 'running', { startedAt: f.clock.now });
    await expect.poll(() => events.length).toBe(2);
    await f.records.jobs.setProgress(job.id, { phase: 'packing', bytesDone: 10, bytesTotal: 100 });
    await expect.poll(() => events.length).toBe(3);
    await f.records.jobs.transition(job.id, ['running'], 'succeeded');
    await watching;
    expect(events.map((e) => [e.event, e.job.status])).toEqual([
      ['state', 'queued'],
      ['state', 'running'],
      ['progress', 'running'],
      ['state', 'succeeded'],
    ]);
  });

  it('stops when the client goes away', async () => {
    const { f, owner, mine } = await setup();
    const { job } = await f.backups.start(owner, mine.id, {});
    const abort = new AbortController();
    const events: JobEvent[] = [];
    const watching = (async () => {
      for await (const e of f.jobs.watch(owner, job.id, abort.signal)) events.push(e);
    })();
    await expect.poll(() => events.length).toBe(1);
    abort.abort();
    await watching;
    expect(events).toHaveLength(1);
  });
});
