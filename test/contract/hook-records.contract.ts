/**
 * The hook records' part of the Records contract (issue 13): run by records.contract.ts inside
 * each implementation's suite. Every test makes its own tenant, node, instance and jobs (the
 * Postgres run shares its database with other files) and scopes its assertions to them.
 */
import { type HookFailureCount, newId, type Records } from '@cairn/core';
import { describe, expect } from 'vitest';

type Test = (title: string, fn: () => Promise<void>) => void;

const WINDOW_COLUMNS = [
  'attempt',
  'closedAt',
  'id',
  'instanceId',
  'jobId',
  'nodeId',
  'openedAt',
  'outcome',
  'post',
  'postStatus',
  'pre',
  'preStatus',
  'quiescedMs',
  'specs',
  'stage',
  'status',
  'thawedBy',
];

async function world(r: Records) {
  const tag = newId();
  const tenant = await r.tenants.ensure(`tenant-${tag}`, newId());
  const nodeId = `node-${tag}`;
  await r.nodes.heartbeat(nodeId, { volumeRoots: ['/srv/a'], version: '1', lastHeartbeatAt: new Date(), capacity: {} });
  const instance = await r.instances.create({
    id: newId(),
    tenantId: tenant.id,
    name: `app-${tag}`,
    nodeId,
    volumes: [{ id: newId(), name: 'data', hostPath: '/srv/a/data', excludes: [] }],
  });
  const job = await r.jobs.create({ id: newId(), type: 'backup', requestedBy: 'contract', instanceId: instance.id, nodeId });
  return { tag, tenant, nodeId, instance, job };
}

const specs = {
  pre: { type: 'command', name: 'freeze', timeoutSeconds: 5, onError: 'fail' },
  post: { type: 'webhook', url: 'http://x/y', timeoutSeconds: 30, onError: 'continue' },
};

function failures(counts: HookFailureCount[], stage: string, phase: string, status: string): number {
  return counts.find((c) => c.stage === stage && c.phase === phase && c.status === status)?.count ?? 0;
}

export function hookRecordsContract(records: () => Records, test: Test): void {
  describe('hooks', () => {
    test('instance hooks: set creates, get returns, a set without secret keeps it, null clears it, configs filters', async () => {
      const r = records();
      const w = await world(r);
      expect(await r.hooks.getConfig(w.instance.id)).toBeNull();
      const created = await r.hooks.setConfig(w.instance.id, { hooks: { preBackup: specs.pre }, secret: 'whsec_1' });
      expect(created).toMatchObject({ instanceId: w.instance.id, hooks: { preBackup: specs.pre }, secret: 'whsec_1' });
      expect(Object.keys(created).sort()).toEqual(['createdAt', 'hooks', 'instanceId', 'secret', 'updatedAt']);
      await r.hooks.setConfig(w.instance.id, { hooks: { postBackup: specs.post } });
      expect(await r.hooks.getConfig(w.instance.id)).toMatchObject({ hooks: { postBackup: specs.post }, secret: 'whsec_1' });
      await r.hooks.setConfig(w.instance.id, { hooks: {}, secret: null });
      expect(await r.hooks.getConfig(w.instance.id)).toMatchObject({ hooks: {}, secret: null });

      const other = await world(r);
      await r.hooks.setConfig(other.instance.id, { hooks: { preRestore: specs.pre }, secret: 's' });
      const ids = [w.instance.id, other.instance.id].sort();
      expect((await r.hooks.configs([...ids, newId()])).map((c) => c.instanceId)).toEqual(ids);
      expect(await r.hooks.configs([other.instance.id])).toHaveLength(1);
      expect(await r.hooks.configs([])).toEqual([]);
    });

    test('instance hooks of an instance that does not exist are refused; they go with their instance', async () => {
      const r = records();
      await expect(r.hooks.setConfig(newId(), { hooks: {} })).rejects.toBeTruthy();
      const w = await world(r);
      await r.hooks.setConfig(w.instance.id, { hooks: { preBackup: specs.pre }, secret: 's' });
      await r.instances.delete(w.instance.id);
      expect(await r.hooks.getConfig(w.instance.id)).toBeNull();
    });

    test('windows: open fills the defaults; a window of a job that does not exist is refused', async () => {
      const r = records();
      const w = await world(r);
      const id = newId();
      const row = await r.hooks.openWindow({ id, jobId: w.job.id, instanceId: w.instance.id, nodeId: w.nodeId, stage: 'backup', attempt: 1, specs });
      expect(Object.keys(row).sort()).toEqual(WINDOW_COLUMNS);
      expect(row).toMatchObject({
        id,
        status: 'open',
        specs,
        pre: null,
        post: null,
        preStatus: null,
        postStatus: null,
        outcome: null,
        quiescedMs: null,
        thawedBy: null,
        closedAt: null,
      });
      expect(row.openedAt).toBeInstanceOf(Date);
      expect(await r.hooks.getWindow(id)).toEqual(row);
      const withPre = await r.hooks.openWindow({
        id: newId(),
        jobId: w.job.id,
        instanceId: w.instance.id,
        nodeId: w.nodeId,
        stage: 'restore',
        attempt: 2,
        specs,
        pre: { status: 'running' },
        preStatus: 'running',
      });
      expect(withPre).toMatchObject({ stage: 'restore', attempt: 2, pre: { status: 'running' }, preStatus: 'running' });
      await expect(
        r.hooks.openWindow({ id: newId(), jobId: newId(), instanceId: w.instance.id, nodeId: w.nodeId, stage: 'backup', attempt: 1, specs }),
      ).rejects.toBeTruthy();
      expect(await r.hooks.getWindow(newId())).toBeNull();
    });

    test('windows: transitions are conditional (the claim of a post hook happens once), updates are not', async () => {
      const r = records();
      const w = await world(r);
      const { id } = await r.hooks.openWindow({
        id: newId(),
        jobId: w.job.id,
        instanceId: w.instance.id,
        nodeId: w.nodeId,
        stage: 'backup',
        attempt: 1,
        specs,
      });
      await r.hooks.updateWindow(id, { pre: { status: 'succeeded', exitCode: 0 }, preStatus: 'succeeded' });
      expect(await r.hooks.transitionWindow(id, ['open'], 'thawing', { postStatus: 'running' })).toBe(true);
      expect(await r.hooks.transitionWindow(id, ['open'], 'thawing', { thawedBy: 'sweep' })).toBe(false);
      const closedAt = new Date('2026-01-02T03:04:05.000Z');
      expect(
        await r.hooks.transitionWindow(id, ['thawing'], 'closed', {
          post: { status: 'succeeded' },
          postStatus: 'succeeded',
          outcome: 'succeeded',
          quiescedMs: 1234,
          closedAt,
        }),
      ).toBe(true);
      expect(await r.hooks.getWindow(id)).toMatchObject({
        status: 'closed',
        pre: { status: 'succeeded', exitCode: 0 },
        preStatus: 'succeeded',
        post: { status: 'succeeded' },
        postStatus: 'succeeded',
        outcome: 'succeeded',
        quiescedMs: 1234,
        thawedBy: null,
        closedAt,
      });
      expect(await r.hooks.transitionWindow(newId(), ['open'], 'closed')).toBe(false);
      await r.hooks.updateWindow(newId(), { outcome: 'x' }); // a missing window: nothing happens
    });

    test('windows: filters by job, node, status and opening time; pages by id', async () => {
      const r = records();
      const w = await world(r);
      const job2 = await r.jobs.create({ id: newId(), type: 'restore', requestedBy: 'contract', nodeId: w.nodeId });
      const open = (jobId: string) =>
        r.hooks.openWindow({ id: newId(), jobId, instanceId: w.instance.id, nodeId: w.nodeId, stage: 'backup', attempt: 1, specs });
      const a = await open(w.job.id);
      const b = await open(w.job.id);
      const c = await open(job2.id);
      await r.hooks.transitionWindow(b.id, ['open'], 'closed');
      const ids = (rows: { id: string }[]) => rows.map((x) => x.id);
      // Ids made in one millisecond are not ordered: expectations are sorted like the results.
      const sorted = (...list: string[]) => list.sort();
      const all = sorted(a.id, b.id, c.id);
      expect(ids(await r.hooks.windows({ jobId: w.job.id }))).toEqual(sorted(a.id, b.id));
      expect(ids(await r.hooks.windows({ nodeId: w.nodeId }))).toEqual(all);
      expect(ids(await r.hooks.windows({ nodeId: w.nodeId, status: 'open' }))).toEqual(sorted(a.id, c.id));
      expect(ids(await r.hooks.windows({ nodeId: w.nodeId, status: ['closed', 'thawing'] }))).toEqual([b.id]);
      expect(ids(await r.hooks.windows({ nodeId: w.nodeId }, { order: 'desc', take: 2 }))).toEqual([all[2], all[1]]);
      expect(ids(await r.hooks.windows({ nodeId: w.nodeId }, { after: all[0] }))).toEqual(all.slice(1));
      expect(ids(await r.hooks.windows({ id: b.id }))).toEqual([b.id]);
      expect(await r.hooks.windows({ nodeId: w.nodeId, openedBefore: new Date(Date.now() - 3600_000) })).toEqual([]);
      expect(ids(await r.hooks.windows({ nodeId: w.nodeId, openedBefore: new Date(Date.now() + 3600_000) }))).toEqual(all);
    });

    test("the job's hook summary is stored on the job; a missing job is ignored", async () => {
      const r = records();
      const w = await world(r);
      expect((await r.jobs.get(w.job.id))?.hooks).toBeNull();
      const summary = { windows: [{ id: 'w1', quiescedMs: 12 }], quiescedMs: 12 };
      await r.hooks.setJobHooks(w.job.id, summary);
      summary.quiescedMs = 0;
      expect((await r.jobs.get(w.job.id))?.hooks).toEqual({ windows: [{ id: 'w1', quiescedMs: 12 }], quiescedMs: 12 });
      await r.hooks.setJobHooks(newId(), summary);
    });

    test('failures are counted by stage, phase and status (failed and timeout only)', async () => {
      const r = records();
      const w = await world(r);
      const before = await r.hooks.countFailures();
      const window = async (stage: 'backup' | 'restore', pre: string | null, post: string | null) => {
        const { id } = await r.hooks.openWindow({ id: newId(), jobId: w.job.id, instanceId: w.instance.id, nodeId: w.nodeId, stage, attempt: 1, specs });
        await r.hooks.updateWindow(id, { preStatus: pre as never, postStatus: post as never });
      };
      await window('backup', 'failed', 'succeeded');
      await window('backup', 'timeout', 'failed');
      await window('backup', 'failed', null);
      await window('restore', 'succeeded', 'timeout');
      await window('restore', 'cancelled', 'skipped');
      const after = await r.hooks.countFailures();
      const delta = (stage: string, phase: string, status: string) => failures(after, stage, phase, status) - failures(before, stage, phase, status);
      expect(delta('backup', 'pre', 'failed')).toBe(2);
      expect(delta('backup', 'pre', 'timeout')).toBe(1);
      expect(delta('backup', 'post', 'failed')).toBe(1);
      expect(delta('restore', 'post', 'timeout')).toBe(1);
      expect(delta('restore', 'pre', 'cancelled')).toBe(0);
      expect(after.every((c) => c.status === 'failed' || c.status === 'timeout')).toBe(true);
    });

    test("a node's hook commands: stored from a heartbeat, kept by one that does not give them", async () => {
      const r = records();
      const nodeId = `node-${newId()}`;
      const beat = { volumeRoots: ['/srv/a'], version: '1', lastHeartbeatAt: new Date(), capacity: {} };
      await r.nodes.heartbeat(nodeId, beat);
      expect((await r.nodes.get(nodeId))?.hookCommands).toEqual([]);
      await r.nodes.heartbeat(nodeId, { ...beat, hookCommands: ['freeze', 'thaw'] });
      expect((await r.nodes.get(nodeId))?.hookCommands).toEqual(['freeze', 'thaw']);
      await r.nodes.heartbeat(nodeId, beat);
      expect((await r.nodes.get(nodeId))?.hookCommands).toEqual(['freeze', 'thaw']);
      await r.nodes.heartbeat(nodeId, { ...beat, hookCommands: [] });
      expect((await r.nodes.get(nodeId))?.hookCommands).toEqual([]);
    });

    test('hook writes inside a transaction that fails are undone', async () => {
      const r = records();
      const w = await world(r);
      await expect(
        r.transaction(async (tx) => {
          await tx.hooks.setConfig(w.instance.id, { hooks: { preBackup: specs.pre }, secret: 's' });
          await tx.hooks.openWindow({ id: newId(), jobId: w.job.id, instanceId: w.instance.id, nodeId: w.nodeId, stage: 'backup', attempt: 1, specs });
          throw new Error('roll back');
        }),
      ).rejects.toThrow('roll back');
      expect(await r.hooks.getConfig(w.instance.id)).toBeNull();
      expect(await r.hooks.windows({ jobId: w.job.id })).toEqual([]);
    });
  });
}
