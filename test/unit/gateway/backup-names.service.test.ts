import { describe, expect, it } from 'vitest';
import { applyManualRetention } from '@cairn/core';
import { InstancePolicyService } from '@cairn/gateway/services/instance-policy.service.ts';
import { gatewayFixture, member, rejection } from './gateway-fixture.ts';

/** Names, pins and the instance policy (issue 13) in the gateway's services, over in-memory records. */

const DAY = 86_400_000;

async function setup() {
  const f = gatewayFixture({ manualBackupLimit: 2 });
  f.node('n1', ['/srv/a']);
  const acme = f.tenant('acme');
  const owner = member(acme.id);
  const inst = await f.instance({ name: 'shop', nodeId: 'n1', volumes: [{ name: 'db', hostPath: '/srv/a/shop/db' }] }, owner);
  const policies = new InstancePolicyService({
    records: f.records,
    queues: f.queues,
    instances: f.instances,
    config: { MANUAL_BACKUP_LIMIT: 2 },
    logger: f.logger,
    now: () => f.clock.now,
  });
  /** Starts a backup and completes it as a worker would. */
  const take = async (body: Parameters<typeof f.backups.start>[2] = {}) => {
    const { backup, job } = await f.backups.start(owner, inst.id, body);
    await f.complete(backup.id, job.id);
    return backup.id;
  };
  return { f, owner, inst, policies, take };
}

describe('names', () => {
  it('a taken name is a conflict naming it, checked under the instance lock; a rename onto it too, and nothing changes', async () => {
    const { f, owner, inst, take } = await setup();
    const first = await take({ name: 'v1', note: 'first' });
    const err = await rejection(f.backups.start(owner, inst.id, { name: 'v1' }));
    expect(err).toMatchObject({ code: 'conflict', details: { name: 'v1', backupId: first } });
    expect(f.queues.nodeJobs).toHaveLength(1);

    const second = await take({ name: 'v2' });
    expect(await rejection(f.backups.update(owner, second, { name: 'v1' }))).toMatchObject({ code: 'conflict', details: { name: 'v1' } });
    expect((await f.records.backups.get(second))!.name).toBe('v2');
    expect(await f.backups.update(owner, second, { name: 'v3', note: 'second' })).toMatchObject({ name: 'v3', note: 'second', pinned: false });
  });
});

describe('pins', () => {
  it('a pinned backup refuses deletion, alone and in a batch; unpinned it goes', async () => {
    const { f, owner, take } = await setup();
    const pinned = await take({ pinned: true, name: 'gold' });
    const plain = await take();
    expect(await rejection(f.backups.remove(owner, pinned))).toMatchObject({ code: 'conflict', details: { backupId: pinned, pinned: true } });
    const batch = await f.backups.removeMany(owner, [pinned, plain]);
    expect(batch.results.map((r) => [r.id, r.ok, r.error?.code])).toEqual([
      [pinned, false, 'conflict'],
      [plain, true, undefined],
    ]);
    expect((await f.records.backups.get(pinned))!.status).toBe('completed');
    await f.backups.update(owner, pinned, { pinned: false });
    expect((await f.backups.remove(owner, pinned)).backup.status).toBe('deleting');
  });

  it('the manual limit counts unpinned backups only, from the instance policy when it has one', async () => {
    const { f, owner, inst, policies, take } = await setup();
    await take();
    await take();
    expect(await rejection(f.backups.start(owner, inst.id, {}))).toMatchObject({
      code: 'limit',
      details: { limit: 2, count: 2, source: 'MANUAL_BACKUP_LIMIT' },
    });
    await take({ pinned: true });
    await policies.update(owner, inst.id, { manualBackupLimit: 3 });
    const third = await take();
    expect(await rejection(f.backups.start(owner, inst.id, {}))).toMatchObject({ code: 'limit', details: { limit: 3, count: 3, source: 'instance policy' } });
    await f.backups.update(owner, third, { pinned: true });
    expect((await f.backups.start(owner, inst.id, {})).backup.pinned).toBe(false);
    expect(await policies.get(owner, inst.id)).toMatchObject({ effectiveManualBackupLimit: 3, manualBackups: { counted: 3, pinned: 2 } });
  });
});

describe('the manual retention policy', () => {
  it('a change asks for a retention run of the instance; Redis down refuses the change before anything is written', async () => {
    const { f, owner, inst, policies } = await setup();
    f.queues.down = true;
    expect(await rejection(policies.update(owner, inst.id, { manualRetention: { keepLast: 1 } }))).toMatchObject({ code: 'unavailable' });
    expect(await f.records.policies.get(inst.id)).toBeNull();
    f.queues.down = false;
    await policies.update(owner, inst.id, { manualRetention: { keepLast: 1 }, timezone: 'Europe/Berlin' });
    expect(f.queues.controlJobs).toEqual([
      {
        name: 'retention',
        payload: { instanceId: inst.id },
        jobId: expect.stringMatching(new RegExp(`^retention-manual:${inst.id}:`)),
        opts: { deduplication: { id: `retention-manual-${inst.id}`, keepLastIfActive: true } },
      },
    ]);
    // A limit alone asks for nothing.
    await policies.update(owner, inst.id, { manualBackupLimit: 5 });
    expect(f.queues.controlJobs).toHaveLength(1);
  });

  it('a backup pinned after the plan was made is refused by the delete under its lock, and reported', async () => {
    const { f, owner, inst, policies, take } = await setup();
    const old = await take();
    f.clock.now = new Date(f.clock.now.getTime() + DAY);
    const fresh = await take();
    await policies.update(owner, inst.id, { manualRetention: { keepLast: 1 } });
    // Between the plan and the delete's transaction (the delete checks Redis first), the user pins it.
    f.queues.onReady = async () => {
      f.queues.onReady = undefined;
      await f.backups.update(owner, old, { pinned: true });
    };
    const report = await applyManualRetention({ records: f.records, queues: f.queues, clock: () => f.clock.now }, inst.id);
    expect(report).toMatchObject({ status: 'applied', kept: 1, deleted: [], failed: [{ backupId: old, error: expect.stringContaining('is pinned') }] });
    expect((await f.records.backups.get(old))!.status).toBe('completed');
    expect((await f.records.backups.get(fresh))!.status).toBe('completed');
  });
});
