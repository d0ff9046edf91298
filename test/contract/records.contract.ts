/**
 * The one behaviour every `Records` implementation must have: MemoryRecords (the unit-test fake)
 * and PrismaRecords (Postgres) run this same suite, so a unit test over MemoryRecords can trust it
 * behaves like the database. Each implementation's test file calls recordsContract() with a factory.
 *
 * The Postgres run shares its database with other test files running at the same time: every test
 * creates its own tenants, nodes and instances (fresh ids) and scopes each assertion to its rows.
 */
import {
  type Job,
  type JobStatus,
  type NewBackup,
  type NewJob,
  type NewVolume,
  newId,
  type RecordSet,
  type Records,
  TERMINAL_JOB_STATUSES,
  UniqueViolation,
} from '@cairn/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hookRecordsContract } from './hook-records.contract.ts';

export interface RecordsContractTarget {
  records: Records;
  close(): Promise<void>;
}

export interface RecordsContractOptions {
  /**
   * Tests this implementation is known to fail, by title, each with what differs. They run as
   * `it.fails`: the suite stays green while the divergence is reported, and turns red once it is
   * fixed, so the entry gets removed.
   */
  knownDivergences?: Record<string, string>;
}

const JOB_COLUMNS = [
  'attempts',
  'backupId',
  'createdAt',
  'error',
  'errorCode',
  'finishedAt',
  'hooks',
  'id',
  'instanceId',
  'nodeId',
  'params',
  'parentJobId',
  'progress',
  'queue',
  'requestedBy',
  'result',
  'startedAt',
  'status',
  'targetInstanceId',
  'targetTenantId',
  'tenantId',
  'type',
];
const BACKUP_COLUMNS = [
  'completedAt',
  'compression',
  'createdAt',
  'deletedAt',
  'encryption',
  'error',
  'expiresAt',
  'fileCount',
  'format',
  'id',
  'indexKey',
  'instanceId',
  'kind',
  'logicalBytes',
  'name',
  'note',
  'parentId',
  'pinned',
  'requestedBy',
  'reusedBytes',
  'scheduleId',
  'sha256',
  'sizeBytes',
  'startedAt',
  'status',
  'storageKey',
  'trigger',
  'verifiedAt',
  'verifyError',
  'verifyLevel',
  'verifyStatus',
  'volumes',
  'warnings',
];
const INSTANCE_COLUMNS = ['createdAt', 'id', 'name', 'nodeId', 'tenant', 'tenantId', 'updatedAt', 'volumes'];
const VOLUME_COLUMNS = ['excludes', 'hostPath', 'id', 'instanceId', 'name'];
const NODE_COLUMNS = ['capacity', 'createdAt', 'hookCommands', 'id', 'labels', 'lastHeartbeatAt', 'version', 'volumeRoots', 'volumeStates'];
const SCHEDULE_COLUMNS = [
  'createdAt',
  'cron',
  'enabled',
  'id',
  'instanceId',
  'lastBackupId',
  'lastFiredAt',
  'lastSkipReason',
  'lastSkippedAt',
  'nextRunAt',
  'retention',
  'timezone',
  'updatedAt',
  'volumes',
];
const TOKEN_COLUMNS = ['createdAt', 'id', 'lastUsedAt', 'name', 'revokedAt', 'role', 'tenant', 'tenantId', 'tokenHash'];
const TENANT_COLUMNS = ['createdAt', 'id', 'name'];

const keys = (row: object | null | undefined) => Object.keys(row ?? {}).sort();
const idsOf = (rows: readonly { id: string }[]) => rows.map((r) => r.id);
const sorted = (ids: readonly string[]) => [...ids].sort();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection, but the promise resolved');
}

/** Expects a UniqueViolation (the fields it names are checked by a test of their own). */
async function expectUniqueViolation(promise: Promise<unknown>): Promise<UniqueViolation> {
  const err = await rejection(promise);
  expect(err).toBeInstanceOf(UniqueViolation);
  return err as UniqueViolation;
}

const beat = (volumeRoots = ['/srv/a'], version = '1.0.0') => ({ volumeRoots, version, lastHeartbeatAt: new Date(), capacity: { concurrency: 2 } });
const vol = (name: string, excludes: string[] = []): NewVolume => ({ id: newId(), name, hostPath: `/srv/a/${name}`, excludes });

/** A tenant, a node and one instance (one volume) of this test's own. */
async function world(r: RecordSet) {
  const tag = newId();
  const tenant = await r.tenants.ensure(`tenant-${tag}`, newId());
  const nodeId = `node-${tag}`;
  await r.nodes.heartbeat(nodeId, beat());
  const instance = await r.instances.create({ id: newId(), tenantId: tenant.id, name: `app-${tag}`, nodeId, volumes: [vol('data')] });
  return { tag, tenant, nodeId, instance };
}

const newBackup = (instanceId: string, extra: Partial<NewBackup> = {}): NewBackup => ({
  id: newId(),
  instanceId,
  trigger: 'manual',
  volumes: ['data'],
  storageKey: `instances/${instanceId}/archive`,
  indexKey: `instances/${instanceId}/index`,
  compression: 'zstd',
  requestedBy: 'contract',
  ...extra,
});

const newJob = (extra: Partial<NewJob> = {}): NewJob => ({ id: newId(), type: 'backup', requestedBy: 'contract', ...extra });

const retention = { keepLast: 3, keepDaily: 7 };

export function recordsContract(name: string, open: () => Promise<RecordsContractTarget>, options: RecordsContractOptions = {}): void {
  describe(`Records contract: ${name}`, () => {
    let target: RecordsContractTarget | undefined;
    let r: Records;
    beforeAll(async () => {
      target = await open();
      r = target.records;
    });
    afterAll(async () => {
      await target?.close();
    });

    const unknown = new Set(Object.keys(options.knownDivergences ?? {}));
    const test = (title: string, fn: () => Promise<void>) => {
      unknown.delete(title);
      (options.knownDivergences?.[title] ? it.fails : it)(title, fn);
    };

    // ----- jobs -----

    describe('jobs', () => {
      test('create fills the defaults, get returns the row, a duplicate id is a UniqueViolation', async () => {
        const id = newId();
        const job = await r.jobs.create({ id, type: 'backup', requestedBy: 'contract' });
        expect(keys(job)).toEqual(JOB_COLUMNS);
        expect(job).toMatchObject({
          id,
          type: 'backup',
          status: 'queued',
          instanceId: null,
          backupId: null,
          targetInstanceId: null,
          nodeId: null,
          queue: null,
          params: {},
          progress: null,
          result: null,
          attempts: 0,
          error: null,
          errorCode: null,
          startedAt: null,
          finishedAt: null,
          parentJobId: null,
          requestedBy: 'contract',
        });
        expect(job.createdAt).toBeInstanceOf(Date);
        expect(await r.jobs.get(id)).toEqual(job);
        expect(await r.jobs.get(newId())).toBeNull();

        await expectUniqueViolation(r.jobs.create({ id, type: 'restore', requestedBy: 'someone else' }));
        expect(await r.jobs.get(id)).toEqual(job);
      });

      test('create records a job already finished (a schedule skip) with its status, result and end', async () => {
        const finishedAt = new Date('2024-05-01T10:00:00.123Z');
        const startedAt = new Date('2024-05-01T09:59:00.000Z');
        const instanceId = newId();
        const job = await r.jobs.create(
          newJob({
            type: 'schedule_skip',
            status: 'cancelled',
            instanceId,
            queue: 'control',
            params: { scheduleId: 's1', volumes: ['a', 'b'] },
            startedAt,
            finishedAt,
            result: { skipped: true, reason: 'busy' },
          }),
        );
        expect(job).toMatchObject({ type: 'schedule_skip', status: 'cancelled', instanceId, queue: 'control', startedAt, finishedAt });
        expect(job.params).toEqual({ scheduleId: 's1', volumes: ['a', 'b'] });
        expect(job.result).toEqual({ skipped: true, reason: 'busy' });
        expect(await r.jobs.get(job.id)).toEqual(job);
      });

      test('transition changes the status only from a listed one; a mismatch or an unknown id returns false and changes nothing', async () => {
        const job = await r.jobs.create(newJob());
        expect(await r.jobs.transition(job.id, ['running'], 'succeeded', { error: 'late writer' })).toBe(false);
        expect(await r.jobs.transition(job.id, [], 'running')).toBe(false);
        expect(await r.jobs.get(job.id)).toEqual(job);

        expect(await r.jobs.transition(job.id, ['queued', 'running'], 'running', { attempts: 1 })).toBe(true);
        const running = await r.jobs.get(job.id);
        expect(running).toMatchObject({ status: 'running', attempts: 1, finishedAt: null });

        expect(await r.jobs.transition(job.id, ['queued'], 'cancelled')).toBe(false);
        expect(await r.jobs.get(job.id)).toEqual(running);
        expect(await r.jobs.transition(newId(), ['queued'], 'running')).toBe(false);
      });

      test('a transition to a terminal status stamps finishedAt unless the changes set it', async () => {
        for (const to of TERMINAL_JOB_STATUSES) {
          const job = await r.jobs.create(newJob({ status: 'running' }));
          const before = Date.now();
          expect(await r.jobs.transition(job.id, ['running'], to)).toBe(true);
          const after = Date.now();
          const done = (await r.jobs.get(job.id))!;
          expect(done.status).toBe(to);
          expect(done.finishedAt).toBeInstanceOf(Date);
          expect(done.finishedAt!.getTime()).toBeGreaterThanOrEqual(before);
          expect(done.finishedAt!.getTime()).toBeLessThanOrEqual(after);
        }
        const given = new Date('2023-01-02T03:04:05.006Z');
        const job = await r.jobs.create(newJob());
        expect(await r.jobs.transition(job.id, ['queued'], 'failed', { finishedAt: given })).toBe(true);
        expect((await r.jobs.get(job.id))?.finishedAt).toEqual(given);

        for (const to of ['queued', 'running'] as JobStatus[]) {
          const other = await r.jobs.create(newJob({ status: to === 'queued' ? 'running' : 'queued' }));
          expect(await r.jobs.transition(other.id, ['queued', 'running'], to)).toBe(true);
          expect(await r.jobs.get(other.id)).toMatchObject({ status: to, finishedAt: null });
        }
      });

      test('transition applies every change; null clears a column, undefined leaves it', async () => {
        const job = await r.jobs.create(newJob({ status: 'running', nodeId: 'n-old' }));
        const startedAt = new Date('2024-01-01T00:00:00.500Z');
        expect(
          await r.jobs.transition(job.id, ['running'], 'failed', {
            startedAt,
            attempts: 3,
            nodeId: 'n-new',
            error: 'disk full',
            errorCode: 'no-space',
            result: { partial: true, files: [1, 2] },
            progress: { phase: 'pack', bytes: 10 },
          }),
        ).toBe(true);
        const failed = (await r.jobs.get(job.id))!;
        expect(failed).toMatchObject({ status: 'failed', startedAt, attempts: 3, nodeId: 'n-new', error: 'disk full', errorCode: 'no-space' });
        expect(failed.result).toEqual({ partial: true, files: [1, 2] });
        expect(failed.progress).toEqual({ phase: 'pack', bytes: 10 });

        expect(
          await r.jobs.transition(job.id, ['failed'], 'queued', {
            startedAt: null,
            finishedAt: null,
            nodeId: null,
            error: null,
            errorCode: null,
            result: null,
            progress: null,
            attempts: undefined,
          }),
        ).toBe(true);
        expect(await r.jobs.get(job.id)).toMatchObject({
          status: 'queued',
          startedAt: null,
          finishedAt: null,
          nodeId: null,
          error: null,
          errorCode: null,
          result: null,
          progress: null,
          attempts: 3,
        });
      });

      test('setProgress replaces the progress whatever the status; an unknown id is a no-op', async () => {
        const job = await r.jobs.create(newJob({ status: 'succeeded' }));
        await r.jobs.setProgress(job.id, { phase: 'upload', done: 1, total: 4 });
        expect((await r.jobs.get(job.id))?.progress).toEqual({ phase: 'upload', done: 1, total: 4 });
        await r.jobs.setProgress(job.id, { phase: 'done' });
        const got = (await r.jobs.get(job.id))!;
        expect(got.progress).toEqual({ phase: 'done' });
        expect(got.status).toBe('succeeded');
        await r.jobs.setProgress(newId(), { phase: 'ghost' });
      });

      describe('filters', () => {
        let w: Awaited<ReturnType<typeof world>>;
        let i2: string;
        let node2: string;
        let backupId: string;
        let a: Job;
        let b: Job;
        let c: Job;
        let d: Job;
        let all: string[];
        beforeAll(async () => {
          w = await world(r);
          node2 = `node2-${w.tag}`;
          await r.nodes.heartbeat(node2, beat());
          i2 = (await r.instances.create({ id: newId(), tenantId: w.tenant.id, name: `second-${w.tag}`, nodeId: node2, volumes: [] })).id;
          backupId = (await r.backups.create(newBackup(w.instance.id))).id;
          a = await r.jobs.create(newJob({ type: 'backup', instanceId: w.instance.id, backupId, queue: `node.${w.nodeId}` }));
          b = await r.jobs.create(newJob({ type: 'restore', status: 'running', instanceId: w.instance.id, backupId, targetInstanceId: i2, nodeId: node2 }));
          c = await r.jobs.create(newJob({ type: 'verify', status: 'succeeded', instanceId: i2, nodeId: w.nodeId, parentJobId: a.id }));
          await sleep(15);
          d = await r.jobs.create(newJob({ type: 'migrate', status: 'failed', instanceId: i2, queue: 'control' }));
          all = [a.id, b.id, c.id, d.id];
        });

        const expectJobs = async (filter: Parameters<Records['jobs']['find']>[0], expected: Job[]) => {
          expect(idsOf(await r.jobs.find(filter))).toEqual(sorted(idsOf(expected)));
          expect(await r.jobs.count(filter)).toBe(expected.length);
        };

        test('id, ids, type and status (one or many)', async () => {
          await expectJobs({ ids: all }, [a, b, c, d]);
          await expectJobs({ id: b.id }, [b]);
          await expectJobs({ ids: [a.id, d.id] }, [a, d]);
          await expectJobs({ ids: [] }, []);
          await expectJobs({ id: a.id, ids: [b.id] }, []);
          await expectJobs({ ids: all, type: 'restore' }, [b]);
          await expectJobs({ ids: all, type: ['backup', 'migrate'] }, [a, d]);
          await expectJobs({ ids: all, status: 'queued' }, [a]);
          await expectJobs({ ids: all, status: ['running', 'succeeded'] }, [b, c]);
          await expectJobs({ ids: all, status: [] }, []);
        });

        test('backupId, instanceId, targetInstanceId, nodeId, queue (null too) and parentJobId', async () => {
          await expectJobs({ backupId }, [a, b]);
          await expectJobs({ instanceId: w.instance.id }, [a, b]);
          await expectJobs({ instanceId: i2 }, [c, d]);
          await expectJobs({ targetInstanceId: i2 }, [b]);
          await expectJobs({ nodeId: w.nodeId }, [c]);
          await expectJobs({ nodeId: node2 }, [b]);
          await expectJobs({ ids: all, queue: null }, [b, c]);
          await expectJobs({ ids: all, queue: 'control' }, [d]);
          await expectJobs({ queue: `node.${w.nodeId}` }, [a]);
          await expectJobs({ parentJobId: a.id }, [c]);
          await expectJobs({ instanceId: w.instance.id, status: 'running', type: 'restore', nodeId: node2 }, [b]);
          await expectJobs({ instanceId: w.instance.id, status: 'queued', type: 'restore' }, []);
        });

        test('touchesTenant matches jobs whose instance or restore target is of the tenant, until that instance is removed', async () => {
          // Worlds of this test's own: the other filter tests count the jobs of `w`.
          const mine = await world(r);
          const other = await world(r);
          const own = await r.jobs.create(newJob({ instanceId: other.instance.id }));
          const outgoing = await r.jobs.create(newJob({ type: 'restore', instanceId: mine.instance.id, targetInstanceId: other.instance.id }));
          await sleep(15); // ids made in the same millisecond do not sort by creation
          const incoming = await r.jobs.create(newJob({ type: 'restore', instanceId: other.instance.id, targetInstanceId: mine.instance.id }));
          const sweep = await r.jobs.create(newJob({ type: 'sweep', queue: 'control' }));
          const orphan = await r.jobs.create(newJob({ instanceId: `gone-${other.tag}` }));
          const created = idsOf([own, outgoing, incoming, sweep, orphan]);
          await expectJobs({ touchesTenant: other.tenant.id }, [own, outgoing, incoming]);
          await expectJobs({ ids: created, touchesTenant: mine.tenant.id }, [outgoing, incoming]);
          await expectJobs({ touchesTenant: other.tenant.id, type: 'restore' }, [outgoing, incoming]);
          await expectJobs({ touchesTenant: other.tenant.id, touchesInstance: other.instance.id, targetInstanceId: mine.instance.id }, [incoming]);
          expect(await r.jobs.findFirst({ touchesTenant: other.tenant.id }, { order: 'desc' })).toMatchObject({ id: incoming.id });
          await r.instances.delete(other.instance.id);
          await expectJobs({ touchesTenant: other.tenant.id }, []);
          await expectJobs({ ids: created, touchesTenant: mine.tenant.id }, [outgoing, incoming]);
        });

        test('touchesInstances and touchesInstance match the source or the restore target, and combine', async () => {
          await expectJobs({ touchesInstances: [w.instance.id] }, [a, b]);
          await expectJobs({ touchesInstances: [i2] }, [b, c, d]);
          await expectJobs({ touchesInstances: [w.instance.id, i2] }, [a, b, c, d]);
          await expectJobs({ ids: all, touchesInstances: [] }, []);
          await expectJobs({ touchesInstance: i2 }, [b, c, d]);
          await expectJobs({ touchesInstance: w.instance.id }, [a, b]);
          await expectJobs({ touchesInstances: [w.instance.id], touchesInstance: i2 }, [b]);
          await expectJobs({ touchesInstance: i2, status: ['queued', 'running'] }, [b]);
        });

        test('onNode matches jobs run on the node or waiting in its queue', async () => {
          await expectJobs({ onNode: w.nodeId }, [a, c]);
          await expectJobs({ onNode: node2 }, [b]);
          await expectJobs({ onNode: w.nodeId, status: 'queued' }, [a]);
          await expectJobs({ onNode: `unknown-${w.tag}` }, []);
        });

        test('createdBefore is strict', async () => {
          await expectJobs({ ids: all, createdBefore: d.createdAt }, [a, b, c]);
          await expectJobs({ ids: all, createdBefore: new Date(d.createdAt.getTime() + 1) }, [a, b, c, d]);
          await expectJobs({ ids: all, createdBefore: a.createdAt }, []);
        });

        test('findFirst takes the first match in page order, or null', async () => {
          expect((await r.jobs.findFirst({ ids: all }))?.id).toBe(sorted(all)[0]);
          expect((await r.jobs.findFirst({ ids: all }, { order: 'desc' }))?.id).toBe(sorted(all)[3]);
          expect((await r.jobs.findFirst({ touchesInstance: i2, type: 'restore' }))?.id).toBe(b.id);
          expect(await r.jobs.findFirst({ ids: all, type: 'cleanup' })).toBeNull();
        });
      });

      test('page: order, after, before and take over the matching jobs', async () => {
        const scope = newId();
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) ids.push((await r.jobs.create(newJob({ instanceId: scope }))).id);
        const asc = sorted(ids);
        const desc = [...asc].reverse();
        const find = async (page: Parameters<Records['jobs']['find']>[1]) => idsOf(await r.jobs.find({ instanceId: scope }, page));
        expect(await find(undefined)).toEqual(asc);
        expect(await find({ order: 'asc' })).toEqual(asc);
        expect(await find({ order: 'desc' })).toEqual(desc);
        expect(await find({ take: 2 })).toEqual(asc.slice(0, 2));
        expect(await find({ order: 'desc', take: 2 })).toEqual(desc.slice(0, 2));
        expect(await find({ after: asc[1] })).toEqual(asc.slice(2));
        expect(await find({ before: asc[3] })).toEqual(asc.slice(0, 3));
        expect(await find({ after: asc[0], before: asc[4] })).toEqual(asc.slice(1, 4));
        expect(await find({ after: asc[0], before: asc[4], order: 'desc', take: 2 })).toEqual([asc[3], asc[2]]);
        expect(await find({ before: asc[3], order: 'desc', take: 1 })).toEqual([asc[2]]);
        expect(await find({ after: asc[4] })).toEqual([]);
        expect(await find({ take: 0 })).toEqual([]);
        expect(await r.jobs.count({ instanceId: scope })).toBe(5);

        expect((await r.jobs.findFirst({ instanceId: scope }, { after: asc[0] }))?.id).toBe(asc[1]);
        expect((await r.jobs.findFirst({ instanceId: scope }, { before: asc[2], order: 'desc' }))?.id).toBe(asc[1]);
        expect(await r.jobs.findFirst({ instanceId: scope }, { after: asc[4] })).toBeNull();
      });

      test('countByTypeAndStatus and countByNode count the matching jobs', async () => {
        const scope = newId();
        const [n1, n2] = [`n1-${scope}`, `n2-${scope}`];
        await r.jobs.create(newJob({ instanceId: scope }));
        await r.jobs.create(newJob({ instanceId: scope }));
        await r.jobs.create(newJob({ instanceId: scope, status: 'succeeded', nodeId: n1 }));
        await r.jobs.create(newJob({ instanceId: scope, type: 'restore', status: 'failed', nodeId: n1 }));
        await r.jobs.create(newJob({ instanceId: scope, type: 'restore', status: 'failed', nodeId: n2 }));
        const byKey = <T extends object>(rows: T[]) => [...rows].sort((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : 1));

        expect(byKey(await r.jobs.countByTypeAndStatus({ instanceId: scope }))).toEqual(
          byKey([
            { type: 'backup', status: 'queued', count: 2 },
            { type: 'backup', status: 'succeeded', count: 1 },
            { type: 'restore', status: 'failed', count: 2 },
          ]),
        );
        expect(await r.jobs.countByTypeAndStatus({ instanceId: scope, type: 'verify' })).toEqual([]);
        expect(byKey(await r.jobs.countByNode({ instanceId: scope }))).toEqual(
          byKey([
            { nodeId: n1, count: 2 },
            { nodeId: n2, count: 1 },
          ]),
        );
        expect(byKey(await r.jobs.countByNode({ instanceId: scope, status: 'failed' }))).toEqual(
          byKey([
            { nodeId: n1, count: 1 },
            { nodeId: n2, count: 1 },
          ]),
        );
        // Without a filter: every job, ours included.
        const everything = await r.jobs.countByTypeAndStatus();
        expect(everything.find((g) => g.type === 'restore' && g.status === 'failed')?.count).toBeGreaterThanOrEqual(2);
        expect((await r.jobs.countByNode()).find((g) => g.nodeId === n1)?.count).toBe(2);
      });

      test('countByNode honours a nodeId filter', async () => {
        const scope = newId();
        const [n1, n2] = [`n1-${scope}`, `n2-${scope}`];
        await r.jobs.create(newJob({ instanceId: scope, nodeId: n1 }));
        await r.jobs.create(newJob({ instanceId: scope, nodeId: n2 }));
        expect(await r.jobs.countByNode({ instanceId: scope, nodeId: n1 })).toEqual([{ nodeId: n1, count: 1 }]);
      });

      test('create refuses a backupId or parentJobId naming no row (foreign keys)', async () => {
        const bad = newJob({ backupId: newId() });
        await rejection(r.jobs.create(bad));
        expect(await r.jobs.get(bad.id)).toBeNull();
        const orphan = newJob({ parentJobId: newId() });
        await rejection(r.jobs.create(orphan));
        expect(await r.jobs.get(orphan.id)).toBeNull();
      });
    });

    // ----- backups -----

    describe('backups', () => {
      test('create fills the defaults, get returns the row, a duplicate id is a UniqueViolation', async () => {
        const w = await world(r);
        const input = newBackup(w.instance.id, { volumes: ['data', 'logs'] });
        const backup = await r.backups.create(input);
        expect(keys(backup)).toEqual(BACKUP_COLUMNS);
        expect(backup).toMatchObject({
          ...input,
          status: 'pending',
          kind: 'full',
          parentId: null,
          scheduleId: null,
          format: 1,
          encryption: { mode: 'none' },
          sizeBytes: null,
          logicalBytes: null,
          reusedBytes: null,
          fileCount: null,
          sha256: null,
          warnings: [],
          expiresAt: null,
          startedAt: null,
          completedAt: null,
          deletedAt: null,
          error: null,
          name: null,
          note: null,
          pinned: false,
        });
        expect(backup.createdAt).toBeInstanceOf(Date);
        expect(await r.backups.get(backup.id)).toEqual(backup);
        expect(await r.backups.get(newId())).toBeNull();

        await expectUniqueViolation(r.backups.create({ ...input, storageKey: 'other' }));
        expect(await r.backups.get(backup.id)).toEqual(backup);

        const child = await r.backups.create(newBackup(w.instance.id, { kind: 'incremental', parentId: backup.id, status: 'running' }));
        expect(child).toMatchObject({ kind: 'incremental', parentId: backup.id, status: 'running' });
      });

      test('create keeps a given creation time and encryption field (a row recreated by the catalog rebuild)', async () => {
        const w = await world(r);
        const createdAt = new Date('2025-03-04T05:06:07.089Z');
        const encryption = { mode: 'aes-256-gcm', keyId: 'k1', wrappedKey: 'd3JhcHBlZA' };
        const backup = await r.backups.create({ ...newBackup(w.instance.id), status: 'completed', createdAt, encryption });
        expect(backup).toMatchObject({ status: 'completed', createdAt, encryption });
        expect(await r.backups.get(backup.id)).toMatchObject({ createdAt, encryption });
      });

      test('create refuses an instance that does not exist (foreign key)', async () => {
        const input = newBackup(newId());
        await rejection(r.backups.create(input));
        expect(await r.backups.get(input.id)).toBeNull();
      });

      test('transition changes the status only from a listed one and applies the changes, BigInt sizes included', async () => {
        const w = await world(r);
        const backup = await r.backups.create(newBackup(w.instance.id));
        expect(await r.backups.transition(backup.id, ['running'], 'completed', { error: 'late' })).toBe(false);
        expect(await r.backups.transition(newId(), ['pending'], 'running')).toBe(false);
        expect(await r.backups.get(backup.id)).toEqual(backup);

        const startedAt = new Date('2024-02-03T04:05:06.789Z');
        expect(await r.backups.transition(backup.id, ['pending'], 'running', { startedAt })).toBe(true);
        expect(await r.backups.get(backup.id)).toMatchObject({ status: 'running', startedAt, completedAt: null });

        const big = 2n ** 60n + 7n;
        const completedAt = new Date('2024-02-03T05:00:00.001Z');
        const expiresAt = new Date('2025-02-03T05:00:00.000Z');
        const warnings = [
          { path: 'a/b', message: 'changed while read' },
          { path: 'c', message: 'vanished' },
        ];
        expect(
          await r.backups.transition(backup.id, ['running'], 'completed', {
            completedAt,
            expiresAt,
            sizeBytes: big,
            logicalBytes: big * 3n,
            reusedBytes: big * 2n,
            fileCount: 12345,
            sha256: 'ab'.repeat(32),
            warnings,
          }),
        ).toBe(true);
        const done = (await r.backups.get(backup.id))!;
        expect(done).toMatchObject({ status: 'completed', startedAt, completedAt, expiresAt, fileCount: 12345, sha256: 'ab'.repeat(32), error: null });
        expect(done.sizeBytes).toBe(big);
        expect(typeof done.sizeBytes).toBe('bigint');
        expect(done.logicalBytes).toBe(big * 3n);
        expect(done.reusedBytes).toBe(big * 2n);
        expect(done.warnings).toEqual(warnings);

        expect(await r.backups.transition(backup.id, ['completed'], 'deleting', { expiresAt: null, sizeBytes: undefined })).toBe(true);
        expect(await r.backups.get(backup.id)).toMatchObject({ status: 'deleting', expiresAt: null, sizeBytes: big });
      });

      describe('filters', () => {
        let t1: string;
        let t2: string;
        let i1: string;
        let i2: string;
        let scheduleId: string;
        const t0 = new Date('2024-03-01T00:00:00.000Z');
        const tMid = new Date('2024-03-02T00:00:00.000Z');
        const tLate = new Date('2024-03-03T00:00:00.000Z');
        const far = new Date('2999-01-01T00:00:00.000Z');
        let p: string;
        let c1: string;
        let c2: string;
        let d: string;
        let f: string;
        let all: string[];
        beforeAll(async () => {
          const w1 = await world(r);
          const w2 = await world(r);
          [t1, t2, i1, i2] = [w1.tenant.id, w2.tenant.id, w1.instance.id, w2.instance.id];
          scheduleId = (await r.schedules.create({ id: newId(), instanceId: i1, cron: '0 * * * *', timezone: 'UTC', volumes: [], retention, enabled: true }))
            .id;
          p = (await r.backups.create(newBackup(i1))).id;
          c1 = (await r.backups.create(newBackup(i1, { trigger: 'schedule', scheduleId, status: 'completed' }))).id;
          c2 = (await r.backups.create(newBackup(i1, { status: 'completed' }))).id;
          d = (await r.backups.create(newBackup(i2, { trigger: 'migrate', status: 'deleted' }))).id;
          f = (await r.backups.create(newBackup(i2, { status: 'failed' }))).id;
          await r.backups.updateWhere({ ids: [c1] }, { completedAt: t0, expiresAt: far, sizeBytes: 2n ** 60n });
          await r.backups.updateWhere({ ids: [c2] }, { completedAt: tLate, sizeBytes: 5n });
          await r.backups.updateWhere({ ids: [d] }, { completedAt: t0, deletedAt: tMid, sizeBytes: 1000n });
          all = [p, c1, c2, d, f];
        });

        const expectBackups = async (filter: Parameters<Records['backups']['find']>[0], expected: string[]) => {
          expect(idsOf(await r.backups.find(filter))).toEqual(sorted(expected));
          expect(await r.backups.count(filter)).toBe(expected.length);
        };

        test('id, ids, instanceId and tenantId', async () => {
          await expectBackups({ ids: all }, all);
          await expectBackups({ id: c1 }, [c1]);
          await expectBackups({ ids: [p, d] }, [p, d]);
          await expectBackups({ ids: [] }, []);
          await expectBackups({ instanceId: i1 }, [p, c1, c2]);
          await expectBackups({ instanceId: i2 }, [d, f]);
          await expectBackups({ tenantId: t1 }, [p, c1, c2]);
          await expectBackups({ tenantId: t2 }, [d, f]);
          await expectBackups({ tenantId: t2, instanceId: i1 }, []);
        });

        test('status, statusNot (one or many, and together) and trigger', async () => {
          await expectBackups({ ids: all, status: 'completed' }, [c1, c2]);
          await expectBackups({ ids: all, status: ['pending', 'failed'] }, [p, f]);
          await expectBackups({ ids: all, statusNot: 'deleted' }, [p, c1, c2, f]);
          await expectBackups({ ids: all, statusNot: ['deleted', 'failed'] }, [p, c1, c2]);
          await expectBackups({ ids: all, status: ['completed', 'failed'], statusNot: 'failed' }, [c1, c2]);
          await expectBackups({ ids: all, trigger: 'manual' }, [p, c2, f]);
          await expectBackups({ ids: all, trigger: ['schedule', 'migrate'] }, [c1, d]);
        });

        test('scheduleId, completedBefore, deletedBefore (strict, nulls never match) and expires', async () => {
          await expectBackups({ scheduleId }, [c1]);
          await expectBackups({ ids: all, completedBefore: tMid }, [c1, d]);
          await expectBackups({ ids: all, completedBefore: t0 }, []);
          await expectBackups({ ids: all, completedBefore: far }, [c1, c2, d]);
          await expectBackups({ ids: all, deletedBefore: far }, [d]);
          await expectBackups({ ids: all, deletedBefore: tMid }, []);
          await expectBackups({ ids: all, expires: true }, [c1]);
          await expectBackups({ ids: all, expires: false }, [p, c2, d, f]);
          await expectBackups({ tenantId: t1, status: 'completed', expires: false, completedBefore: far }, [c2]);
        });

        test('page and findFirst', async () => {
          const mine = sorted([p, c1, c2]);
          expect(idsOf(await r.backups.find({ tenantId: t1 }, { order: 'desc' }))).toEqual([...mine].reverse());
          expect(idsOf(await r.backups.find({ tenantId: t1 }, { take: 2 }))).toEqual(mine.slice(0, 2));
          expect(idsOf(await r.backups.find({ tenantId: t1 }, { after: mine[0] }))).toEqual(mine.slice(1));
          expect(idsOf(await r.backups.find({ tenantId: t1 }, { before: mine[2], order: 'desc', take: 1 }))).toEqual([mine[1]]);
          expect((await r.backups.findFirst({ tenantId: t1 }))?.id).toBe(mine[0]);
          expect((await r.backups.findFirst({ tenantId: t1 }, { order: 'desc' }))?.id).toBe(mine[2]);
          expect((await r.backups.findFirst({ tenantId: t1 }, { after: mine[0], before: mine[2] }))?.id).toBe(mine[1]);
          expect(await r.backups.findFirst({ tenantId: t1, status: 'deleting' })).toBeNull();
        });

        test('sumSizeBytes adds the sizes of the matching backups as a BigInt (0n when none)', async () => {
          expect(await r.backups.sumSizeBytes({ tenantId: t1 })).toBe(2n ** 60n + 5n);
          expect(await r.backups.sumSizeBytes({ ids: all })).toBe(2n ** 60n + 1005n);
          expect(await r.backups.sumSizeBytes({ ids: all, status: 'deleted' })).toBe(1000n);
          expect(await r.backups.sumSizeBytes({ ids: [p, f] })).toBe(0n);
          expect(await r.backups.sumSizeBytes({ ids: [] })).toBe(0n);
        });

        test('countByStatus counts every backup by status, ours included', async () => {
          const counts = await r.backups.countByStatus();
          expect(new Set(counts.map((c) => c.status)).size).toBe(counts.length);
          const mine = { pending: 1, completed: 2, deleted: 1, failed: 1 } as const;
          for (const [status, count] of Object.entries(mine)) expect(counts.find((c) => c.status === status)?.count).toBeGreaterThanOrEqual(count);
        });
      });

      test('updateWhere sets fields of the matching backups only, never the status, and returns how many', async () => {
        const w = await world(r);
        const a = await r.backups.create(newBackup(w.instance.id, { status: 'completed' }));
        const b = await r.backups.create(newBackup(w.instance.id, { status: 'completed' }));
        const c = await r.backups.create(newBackup(w.instance.id, { status: 'failed' }));
        const expiresAt = new Date('2030-01-01T00:00:00.000Z');
        expect(await r.backups.updateWhere({ instanceId: w.instance.id, status: 'completed' }, { expiresAt, warnings: ['w1'] })).toBe(2);
        expect(await r.backups.get(a.id)).toMatchObject({ status: 'completed', expiresAt, warnings: ['w1'] });
        expect(await r.backups.get(b.id)).toMatchObject({ status: 'completed', expiresAt, warnings: ['w1'] });
        expect(await r.backups.get(c.id)).toEqual(c);
        expect(await r.backups.updateWhere({ ids: [a.id] }, { expiresAt: null, sizeBytes: 42n })).toBe(1);
        expect(await r.backups.get(a.id)).toMatchObject({ expiresAt: null, sizeBytes: 42n, warnings: ['w1'] });
        expect(await r.backups.updateWhere({ instanceId: w.instance.id, status: 'deleting' }, { expiresAt })).toBe(0);
      });

      test('deleteWhere removes the matching rows; their jobs keep their rows (backupId null), children lose their parent', async () => {
        const w = await world(r);
        const parent = await r.backups.create(newBackup(w.instance.id, { status: 'deleted' }));
        const child = await r.backups.create(newBackup(w.instance.id, { kind: 'incremental', parentId: parent.id }));
        const kept = await r.backups.create(newBackup(w.instance.id, { status: 'completed' }));
        const job = await r.jobs.create(newJob({ type: 'cleanup', backupId: parent.id }));
        expect(await r.backups.deleteWhere({ instanceId: w.instance.id, status: 'deleted' })).toBe(1);
        expect(await r.backups.get(parent.id)).toBeNull();
        expect((await r.backups.get(child.id))?.parentId).toBeNull();
        expect(await r.backups.get(kept.id)).toEqual(kept);
        expect(await r.jobs.get(job.id)).toEqual({ ...job, backupId: null });
        expect(await r.backups.deleteWhere({ tenantId: w.tenant.id })).toBe(2);
        expect(await r.backups.count({ instanceId: w.instance.id })).toBe(0);
        expect(await r.backups.deleteWhere({ tenantId: w.tenant.id })).toBe(0);
      });
    });

    // ----- object references (incremental backups) -----

    describe('object references', () => {
      test('addReferences records each owner once and counts the new ones; referencedOwners lists them ascending', async () => {
        const w = await world(r);
        const [o1, o2, o3] = [
          await r.backups.create(newBackup(w.instance.id, { status: 'completed' })),
          await r.backups.create(newBackup(w.instance.id, { status: 'completed' })),
          await r.backups.create(newBackup(w.instance.id, { status: 'completed' })),
        ];
        const reader = await r.backups.create(newBackup(w.instance.id, { kind: 'incremental', parentId: o3.id, status: 'running' }));
        expect(await r.backups.referencedOwners(reader.id)).toEqual([]);
        expect(await r.backups.addReferences(reader.id, [o3.id, o1.id, o3.id])).toBe(2);
        expect(await r.backups.referencedOwners(reader.id)).toEqual(sorted([o1.id, o3.id]));
        expect(await r.backups.addReferences(reader.id, [o1.id, o2.id])).toBe(1);
        expect(await r.backups.addReferences(reader.id, [o2.id])).toBe(0);
        expect(await r.backups.addReferences(reader.id, [])).toBe(0);
        expect(await r.backups.referencedOwners(reader.id)).toEqual(sorted([o1.id, o2.id, o3.id]));
        // Directed: the owners reference nothing.
        expect(await r.backups.referencedOwners(o1.id)).toEqual([]);
        expect(await r.backups.referencedOwners(newId())).toEqual([]);
      });

      test('addReferences refuses an owner or a backup naming no row, and a backup referencing itself; nothing is recorded', async () => {
        const w = await world(r);
        const owner = await r.backups.create(newBackup(w.instance.id, { status: 'completed' }));
        const reader = await r.backups.create(newBackup(w.instance.id, { status: 'running' }));
        expect(await rejection(r.backups.addReferences(reader.id, [owner.id, newId()]))).toMatchObject({ code: 'P2003' });
        expect(await rejection(r.backups.addReferences(newId(), [owner.id]))).toMatchObject({ code: 'P2003' });
        expect(await rejection(r.backups.addReferences(reader.id, [owner.id, reader.id]))).toBeInstanceOf(Error);
        expect(await r.backups.referencedOwners(reader.id)).toEqual([]);
        expect(await r.backups.liveReferrers(owner.id)).toEqual([]);
      });

      test('liveReferrers lists the pending, running and completed readers of an owner, whatever the owner is', async () => {
        const w = await world(r);
        const owner = await r.backups.create(newBackup(w.instance.id, { status: 'deleted' }));
        const other = await r.backups.create(newBackup(w.instance.id, { status: 'completed' }));
        const readers: Record<string, string> = {};
        for (const status of ['pending', 'running', 'completed', 'failed', 'cancelled', 'deleting', 'deleted'] as const) {
          const b = await r.backups.create(newBackup(w.instance.id, { status }));
          await r.backups.addReferences(b.id, [owner.id]);
          readers[status] = b.id;
        }
        const onlyOther = await r.backups.create(newBackup(w.instance.id, { status: 'running' }));
        await r.backups.addReferences(onlyOther.id, [other.id]);
        expect(await r.backups.liveReferrers(owner.id)).toEqual(sorted([readers.pending!, readers.running!, readers.completed!]));
        expect(await r.backups.liveReferrers(other.id)).toEqual([onlyOther.id]);
        expect(await r.backups.liveReferrers(newId())).toEqual([]);
        // A reader turning dead stops counting at once.
        expect(await r.backups.transition(readers.completed!, ['completed'], 'deleting')).toBe(true);
        expect(await r.backups.transition(readers.running!, ['running'], 'failed')).toBe(true);
        expect(await r.backups.liveReferrers(owner.id)).toEqual([readers.pending]);
      });

      test('objectSharing answers what the separate reads do: the live readers of the backup, and each owner with its row and its live readers', async () => {
        const w = await world(r);
        const dead = await r.backups.create(newBackup(w.instance.id, { status: 'deleted' }));
        const live = await r.backups.create(newBackup(w.instance.id, { status: 'completed' }));
        const backup = await r.backups.create(newBackup(w.instance.id, { kind: 'incremental', parentId: live.id, status: 'completed' }));
        const laterLive = await r.backups.create(newBackup(w.instance.id, { status: 'running' }));
        const laterDead = await r.backups.create(newBackup(w.instance.id, { status: 'failed' }));
        await r.backups.addReferences(backup.id, [live.id, dead.id]);
        await r.backups.addReferences(laterLive.id, [backup.id, dead.id]);
        await r.backups.addReferences(laterDead.id, [backup.id]);
        expect(await r.backups.transition(dead.id, ['deleted'], 'deleted', { sizeBytes: 123n })).toBe(true);
        const separately = async (id: string) => ({
          liveReferrers: await r.backups.liveReferrers(id),
          owners: await Promise.all(
            (await r.backups.referencedOwners(id)).map(async (ownerId) => ({
              owner: (await r.backups.get(ownerId))!,
              liveReferrers: await r.backups.liveReferrers(ownerId),
            })),
          ),
        });
        const sharing = await r.backups.objectSharing(backup.id);
        expect(sharing).toEqual(await separately(backup.id));
        expect(sharing.liveReferrers).toEqual([laterLive.id]);
        expect(sharing.owners.map((o) => o.owner.id)).toEqual(sorted([live.id, dead.id]));
        expect(sharing.owners.find((o) => o.owner.id === dead.id)).toMatchObject({
          owner: { sizeBytes: 123n },
          liveReferrers: sorted([backup.id, laterLive.id]),
        });
        // A dead reader, an owner reading nothing, and no such backup.
        expect((await r.backups.objectSharing(laterDead.id)).owners.map((o) => o.owner.id)).toEqual([backup.id]);
        expect(await r.backups.objectSharing(laterDead.id)).toEqual(await separately(laterDead.id));
        expect(await r.backups.objectSharing(live.id)).toEqual({ liveReferrers: [backup.id], owners: [] });
        expect(await r.backups.objectSharing(newId())).toEqual({ liveReferrers: [], owners: [] });
        // Inside a transaction, the same.
        expect(await r.transaction((tx) => tx.backups.objectSharing(backup.id))).toEqual(sharing);
      });

      test('deleteWhere takes the references of the removed backups along, and refuses to remove an owner a remaining backup reads from', async () => {
        const w = await world(r);
        const owner = await r.backups.create(newBackup(w.instance.id, { status: 'deleted' }));
        const middle = await r.backups.create(newBackup(w.instance.id, { status: 'deleted' }));
        const reader = await r.backups.create(newBackup(w.instance.id, { status: 'completed' }));
        await r.backups.addReferences(middle.id, [owner.id]);
        await r.backups.addReferences(reader.id, [owner.id, middle.id]);
        // The owner alone: the reader left in place still reads from it.
        expect(await rejection(r.backups.deleteWhere({ ids: [owner.id, middle.id] }))).toMatchObject({ code: 'P2003' });
        expect(await r.backups.count({ instanceId: w.instance.id })).toBe(3);
        expect(await r.backups.referencedOwners(middle.id)).toEqual([owner.id]);
        expect(await r.backups.referencedOwners(reader.id)).toEqual(sorted([owner.id, middle.id]));
        // A reader alone goes with its references.
        expect(await r.backups.deleteWhere({ ids: [reader.id] })).toBe(1);
        expect(await r.backups.liveReferrers(middle.id)).toEqual([]);
        expect(await r.backups.referencedOwners(reader.id)).toEqual([]);
        // Readers and owners together (an instance's removal).
        expect(await r.backups.deleteWhere({ instanceId: w.instance.id })).toBe(2);
        expect(await r.backups.referencedOwners(middle.id)).toEqual([]);
        await r.instances.delete(w.instance.id);
      });

      test('references written in a rolled-back transaction are gone; those of a committed one stay', async () => {
        const w = await world(r);
        const owner = await r.backups.create(newBackup(w.instance.id, { status: 'completed' }));
        const reader = await r.backups.create(newBackup(w.instance.id, { status: 'running' }));
        const boom = new Error('boom');
        expect(
          await rejection(
            r.transaction(async (tx) => {
              await tx.lock('backup', 'gc');
              expect(await tx.backups.addReferences(reader.id, [owner.id])).toBe(1);
              expect(await tx.backups.liveReferrers(owner.id)).toEqual([reader.id]);
              throw boom;
            }),
          ),
        ).toBe(boom);
        expect(await r.backups.referencedOwners(reader.id)).toEqual([]);
        await r.transaction(async (tx) => {
          await tx.backups.addReferences(reader.id, [owner.id]);
        });
        expect(await r.backups.liveReferrers(owner.id)).toEqual([reader.id]);
      });
    });

    // ----- instances and volumes -----

    describe('instances', () => {
      test('create returns the instance with its volumes sorted by name and its tenant; get and findFirst the same', async () => {
        const w = await world(r);
        const volumes = [vol('zeta', ['*.tmp']), vol('alpha'), vol('mid', ['cache/**', 'x'])];
        const created = await r.instances.create({ id: newId(), tenantId: w.tenant.id, name: 'web', nodeId: w.nodeId, volumes });
        expect(keys(created)).toEqual(INSTANCE_COLUMNS);
        expect(created).toMatchObject({ tenantId: w.tenant.id, name: 'web', nodeId: w.nodeId });
        expect(created.createdAt).toBeInstanceOf(Date);
        expect(created.updatedAt).toBeInstanceOf(Date);
        expect(created.tenant).toEqual(w.tenant);
        expect(created.volumes.map((v) => v.name)).toEqual(['alpha', 'mid', 'zeta']);
        for (const v of created.volumes) expect(keys(v)).toEqual(VOLUME_COLUMNS);
        expect(created.volumes[0]).toEqual({ ...volumes[1], instanceId: created.id });
        expect(created.volumes[2]).toEqual({ ...volumes[0], instanceId: created.id });
        expect(await r.instances.get(created.id)).toEqual(created);
        expect(await r.instances.findFirst({ id: created.id })).toEqual(created);
        expect(await r.instances.get(newId())).toBeNull();
        expect(await r.instances.findFirst({ tenantId: w.tenant.id, name: 'nope' })).toBeNull();
      });

      test('create: a duplicate id or the same name in the same tenant is a UniqueViolation; another tenant may reuse a name', async () => {
        const w = await world(r);
        const other = await world(r);
        await expectUniqueViolation(r.instances.create({ id: w.instance.id, tenantId: other.tenant.id, name: 'fresh', nodeId: w.nodeId, volumes: [] }));
        const clash = newId();
        await expectUniqueViolation(r.instances.create({ id: clash, tenantId: w.tenant.id, name: w.instance.name, nodeId: w.nodeId, volumes: [vol('v')] }));
        expect(await r.instances.get(clash)).toBeNull();
        expect((await r.instances.get(w.instance.id))?.tenantId).toBe(w.tenant.id);
        const reuse = await r.instances.create({ id: newId(), tenantId: other.tenant.id, name: w.instance.name, nodeId: w.nodeId, volumes: [] });
        expect(reuse.name).toBe(w.instance.name);
      });

      test('create refuses an unknown tenant or node and stores nothing (foreign keys)', async () => {
        const w = await world(r);
        const noNode = newId();
        await rejection(r.instances.create({ id: noNode, tenantId: w.tenant.id, name: 'x', nodeId: `missing-${w.tag}`, volumes: [vol('v')] }));
        expect(await r.instances.get(noNode)).toBeNull();
        const noTenant = newId();
        await rejection(r.instances.create({ id: noTenant, tenantId: newId(), name: 'x', nodeId: w.nodeId, volumes: [] }));
        expect(await r.instances.get(noTenant)).toBeNull();
        expect(await r.instances.volumes({ tenantId: w.tenant.id })).toHaveLength(1);
      });

      test('create refuses two volumes of one name', async () => {
        const w = await world(r);
        const id = newId();
        await expectUniqueViolation(r.instances.create({ id, tenantId: w.tenant.id, name: 'dup', nodeId: w.nodeId, volumes: [vol('same'), vol('same')] }));
        expect(await r.instances.get(id)).toBeNull();
      });

      describe('filters', () => {
        let t1: { id: string; name: string };
        let t2: { id: string; name: string };
        let n1: string;
        let n2: string;
        let a: string;
        let b: string;
        let c: string;
        beforeAll(async () => {
          const w1 = await world(r);
          const w2 = await world(r);
          [t1, t2, n1, n2] = [w1.tenant, w2.tenant, w1.nodeId, w2.nodeId];
          a = w1.instance.id;
          b = (await r.instances.create({ id: newId(), tenantId: t1.id, name: 'beta', nodeId: n2, volumes: [vol('b1'), vol('b0')] })).id;
          c = (await r.instances.create({ id: newId(), tenantId: t2.id, name: w1.instance.name, nodeId: n1, volumes: [] })).id;
          await r.instances.delete(w2.instance.id);
        });

        const expectInstances = async (filter: Parameters<Records['instances']['find']>[0], expected: string[]) => {
          expect(idsOf(await r.instances.find(filter))).toEqual(sorted(expected));
          expect(await r.instances.ids(filter)).toEqual(sorted(expected));
        };

        test('id, ids, tenantId, tenantName, nodeId, name and notId', async () => {
          await expectInstances({ id: b }, [b]);
          await expectInstances({ ids: [a, c] }, [a, c]);
          await expectInstances({ ids: [] }, []);
          await expectInstances({ tenantId: t1.id }, [a, b]);
          await expectInstances({ tenantId: t2.id }, [c]);
          await expectInstances({ tenantName: t1.name }, [a, b]);
          await expectInstances({ tenantName: t2.name }, [c]);
          await expectInstances({ tenantName: `no-such-${t1.name}` }, []);
          await expectInstances({ nodeId: n1 }, [a, c]);
          await expectInstances({ nodeId: n2 }, [b]);
          await expectInstances({ ids: [a, b, c], name: 'beta' }, [b]);
          await expectInstances({ tenantName: t2.name, name: (await r.instances.get(a))!.name }, [c]);
          await expectInstances({ tenantId: t1.id, notId: a }, [b]);
          await expectInstances({ nodeId: n1, notId: c }, [a]);
          await expectInstances({ id: a, notId: a }, []);
        });

        test('find pages; findFirst returns the match with volumes and tenant', async () => {
          const mine = sorted([a, b, c]);
          const find = async (page: Parameters<Records['instances']['find']>[1]) => idsOf(await r.instances.find({ ids: mine }, page));
          expect(await find({ order: 'desc' })).toEqual([...mine].reverse());
          expect(await find({ take: 1 })).toEqual([mine[0]]);
          expect(await find({ after: mine[0] })).toEqual(mine.slice(1));
          expect(await find({ before: mine[2], order: 'desc', take: 1 })).toEqual([mine[1]]);
          const found = await r.instances.findFirst({ tenantName: t1.name, name: 'beta' });
          expect(found?.id).toBe(b);
          expect(found?.tenant).toMatchObject({ id: t1.id, name: t1.name });
          expect(found?.volumes.map((v) => v.name)).toEqual(['b0', 'b1']);
          for (const i of await r.instances.find({ ids: mine })) expect(keys(i)).toEqual(INSTANCE_COLUMNS);
        });

        test('volumes(filter) lists every volume of the matching instances, by volume id, with its instance', async () => {
          const placed = await r.instances.volumes({ tenantId: t1.id });
          expect(placed.map((v) => v.name).sort()).toEqual(['b0', 'b1', 'data']);
          expect(idsOf(placed)).toEqual(sorted(idsOf(placed)));
          for (const v of placed) expect(keys(v)).toEqual([...VOLUME_COLUMNS, 'instance'].sort());
          const b0 = placed.find((v) => v.name === 'b0')!;
          expect(b0).toMatchObject({ instanceId: b, hostPath: '/srv/a/b0', excludes: [] });
          expect(b0.instance).toEqual({ id: b, name: 'beta', tenantId: t1.id, nodeId: n2 });
          expect((await r.instances.volumes({ nodeId: n1 })).map((v) => v.instanceId)).toEqual([a]);
          expect(await r.instances.volumes({ id: c })).toEqual([]);
          expect((await r.instances.volumes({ tenantId: t1.id, notId: b })).map((v) => v.name)).toEqual(['data']);
        });
      });

      test('update renames, moves and replaces the volumes when given; keeps them otherwise', async () => {
        const w = await world(r);
        const node2 = `node2-${w.tag}`;
        await r.nodes.heartbeat(node2, beat());
        const before = (await r.instances.get(w.instance.id))!;
        const renamed = await r.instances.update(w.instance.id, { name: `renamed-${w.tag}` });
        expect(renamed).toMatchObject({ name: `renamed-${w.tag}`, nodeId: w.nodeId, tenantId: w.tenant.id, createdAt: before.createdAt });
        expect(renamed.volumes).toEqual(before.volumes);
        expect(renamed.tenant).toEqual(w.tenant);
        expect(renamed.updatedAt.getTime()).toBeGreaterThanOrEqual(before.updatedAt.getTime());

        const volumes = [vol('z'), vol('b', ['skip'])];
        const moved = await r.instances.update(w.instance.id, { nodeId: node2, volumes });
        expect(moved.nodeId).toBe(node2);
        expect(moved.name).toBe(`renamed-${w.tag}`);
        expect(moved.volumes).toEqual([
          { ...volumes[1], instanceId: w.instance.id },
          { ...volumes[0], instanceId: w.instance.id },
        ]);
        expect(await r.instances.get(w.instance.id)).toEqual(moved);
        expect(await r.instances.volumes({ id: w.instance.id })).toHaveLength(2);
        expect((await r.instances.update(w.instance.id, { volumes: [] })).volumes).toEqual([]);
      });

      test('update to a name taken in the tenant is a UniqueViolation and changes nothing; an unknown id fails with P2025', async () => {
        const w = await world(r);
        const other = await r.instances.create({ id: newId(), tenantId: w.tenant.id, name: 'taken', nodeId: w.nodeId, volumes: [] });
        const before = (await r.instances.get(w.instance.id))!;
        await expectUniqueViolation(r.instances.update(w.instance.id, { name: 'taken' }));
        expect(await r.instances.get(w.instance.id)).toEqual(before);
        expect((await r.instances.update(other.id, { name: 'taken' })).name).toBe('taken');
        expect(await rejection(r.instances.update(newId(), { name: 'ghost' }))).toMatchObject({ code: 'P2025' });
      });

      test('update to a taken name with new volumes leaves the volumes as they were', async () => {
        const w = await world(r);
        await r.instances.create({ id: newId(), tenantId: w.tenant.id, name: 'taken', nodeId: w.nodeId, volumes: [] });
        const before = (await r.instances.get(w.instance.id))!;
        await expectUniqueViolation(r.instances.update(w.instance.id, { name: 'taken', volumes: [vol('new')] }));
        expect(await r.instances.get(w.instance.id)).toEqual(before);
      });

      test('delete removes the instance with its volumes and schedules; refused while it has backups; unknown id fails', async () => {
        const w = await world(r);
        const schedule = await r.schedules.create({
          id: newId(),
          instanceId: w.instance.id,
          cron: '* * * * *',
          timezone: 'UTC',
          volumes: [],
          retention,
          enabled: true,
        });
        const backup = await r.backups.create(newBackup(w.instance.id));
        await rejection(r.instances.delete(w.instance.id));
        expect(await r.instances.get(w.instance.id)).not.toBeNull();
        expect(await r.schedules.get(schedule.id)).not.toBeNull();

        expect(await r.backups.deleteWhere({ ids: [backup.id] })).toBe(1);
        await r.instances.delete(w.instance.id);
        expect(await r.instances.get(w.instance.id)).toBeNull();
        expect(await r.instances.volumes({ tenantId: w.tenant.id })).toEqual([]);
        expect(await r.schedules.get(schedule.id)).toBeNull();
        expect(await r.instances.ids({ tenantId: w.tenant.id })).toEqual([]);
        expect(await rejection(r.instances.delete(w.instance.id))).toMatchObject({ code: 'P2025' });
      });
    });

    // ----- nodes -----

    describe('nodes', () => {
      test('heartbeat registers a node, then refreshes what it reports; get and list return it', async () => {
        const id = `node-${newId()}`;
        expect(await r.nodes.get(id)).toBeNull();
        const first = { volumeRoots: ['/srv/a', '/srv/b'], version: '1.2.3', lastHeartbeatAt: new Date('2024-04-01T00:00:00.000Z'), capacity: { c: 1 } };
        await r.nodes.heartbeat(id, first);
        const created = (await r.nodes.get(id))!;
        expect(keys(created)).toEqual(NODE_COLUMNS);
        expect(created).toMatchObject({ id, labels: {}, ...first });
        expect(created.createdAt).toBeInstanceOf(Date);

        const second = {
          volumeRoots: ['/srv/c'],
          version: '1.2.4',
          lastHeartbeatAt: new Date('2024-04-01T00:00:30.000Z'),
          capacity: { roots: [{ root: '/srv/c', free: 10, total: 20 }], concurrency: 4 },
        };
        await r.nodes.heartbeat(id, second);
        const refreshed = await r.nodes.get(id);
        expect(refreshed).toEqual({ ...created, ...second });

        const other = `node-${newId()}`;
        await r.nodes.heartbeat(other, beat());
        const listed = await r.nodes.list();
        expect(idsOf(listed)).toEqual(sorted(idsOf(listed)));
        expect(listed.find((n) => n.id === id)).toEqual(refreshed);
        expect(listed.some((n) => n.id === other)).toBe(true);
      });
    });

    // ----- schedules -----

    describe('schedules', () => {
      const newSchedule = (instanceId: string, extra: Partial<Parameters<Records['schedules']['create']>[0]> = {}) => ({
        id: newId(),
        instanceId,
        cron: '0 3 * * *',
        timezone: 'Europe/Paris',
        volumes: ['data'],
        retention,
        enabled: true,
        ...extra,
      });

      test('create, get and getWithInstance; a duplicate id is a UniqueViolation', async () => {
        const w = await world(r);
        const nextRunAt = new Date('2024-06-01T01:00:00.000Z');
        const input = newSchedule(w.instance.id, { nextRunAt });
        const s = await r.schedules.create(input);
        expect(keys(s)).toEqual(SCHEDULE_COLUMNS);
        expect(s).toMatchObject({ ...input, lastFiredAt: null, lastBackupId: null, lastSkippedAt: null, lastSkipReason: null });
        expect(s.createdAt).toBeInstanceOf(Date);
        expect(s.updatedAt).toBeInstanceOf(Date);
        expect(await r.schedules.get(s.id)).toEqual(s);
        expect((await r.schedules.create(newSchedule(w.instance.id))).nextRunAt).toBeNull();

        const withInstance = await r.schedules.getWithInstance(s.id);
        expect(withInstance).toEqual({ ...s, instance: await r.instances.get(w.instance.id) });
        expect(withInstance?.instance.tenant).toEqual(w.tenant);
        expect(await r.schedules.getWithInstance(newId())).toBeNull();
        expect(await r.schedules.get(newId())).toBeNull();

        await expectUniqueViolation(r.schedules.create({ ...input, cron: '* * * * *' }));
        expect(await r.schedules.get(s.id)).toEqual(s);
      });

      test('filters: id, instanceId, tenantId, enabled; page; findFirst', async () => {
        const w1 = await world(r);
        const w2 = await world(r);
        const i1b = await r.instances.create({ id: newId(), tenantId: w1.tenant.id, name: 'second', nodeId: w1.nodeId, volumes: [] });
        const a = (await r.schedules.create(newSchedule(w1.instance.id))).id;
        const b = (await r.schedules.create(newSchedule(w1.instance.id, { enabled: false }))).id;
        const c = (await r.schedules.create(newSchedule(i1b.id))).id;
        const d = (await r.schedules.create(newSchedule(w2.instance.id, { enabled: false }))).id;
        const find = async (filter: Parameters<Records['schedules']['find']>[0], page?: Parameters<Records['schedules']['find']>[1]) =>
          idsOf(await r.schedules.find(filter, page));
        expect(await find({ id: b })).toEqual([b]);
        expect(await find({ instanceId: w1.instance.id })).toEqual(sorted([a, b]));
        expect(await find({ tenantId: w1.tenant.id })).toEqual(sorted([a, b, c]));
        expect(await find({ tenantId: w2.tenant.id })).toEqual([d]);
        expect(await find({ tenantId: w1.tenant.id, enabled: true })).toEqual(sorted([a, c]));
        expect(await find({ tenantId: w1.tenant.id, enabled: false })).toEqual([b]);
        expect(await find({ instanceId: w2.instance.id, enabled: true })).toEqual([]);
        const mine = sorted([a, b, c]);
        expect(await find({ tenantId: w1.tenant.id }, { order: 'desc' })).toEqual([...mine].reverse());
        expect(await find({ tenantId: w1.tenant.id }, { take: 2 })).toEqual(mine.slice(0, 2));
        expect(await find({ tenantId: w1.tenant.id }, { after: mine[0], before: mine[2] })).toEqual([mine[1]]);
        expect(await find({ id: a, tenantId: w2.tenant.id })).toEqual([]);
        expect((await r.schedules.findFirst({ instanceId: w1.instance.id, enabled: false }))?.id).toBe(b);
        expect((await r.schedules.findFirst({ id: c }))?.id).toBe(c);
        expect(await r.schedules.findFirst({ tenantId: w2.tenant.id, enabled: true })).toBeNull();
      });

      test('update changes the given fields and returns the row; an unknown id fails with P2025', async () => {
        const w = await world(r);
        const s = await r.schedules.create(newSchedule(w.instance.id));
        const lastFiredAt = new Date('2024-06-01T03:00:00.000Z');
        const updated = await r.schedules.update(s.id, {
          cron: '*/5 * * * *',
          enabled: false,
          retention: { keepLast: 1 },
          volumes: ['a', 'b'],
          lastFiredAt,
          lastSkipReason: 'busy',
          nextRunAt: null,
        });
        expect(updated).toMatchObject({
          cron: '*/5 * * * *',
          enabled: false,
          volumes: ['a', 'b'],
          lastFiredAt,
          lastSkipReason: 'busy',
          timezone: 'Europe/Paris',
        });
        expect(updated.retention).toEqual({ keepLast: 1 });
        expect(updated.updatedAt.getTime()).toBeGreaterThanOrEqual(s.updatedAt.getTime());
        expect(await r.schedules.get(s.id)).toEqual(updated);
        expect(await rejection(r.schedules.update(newId(), { enabled: true }))).toMatchObject({ code: 'P2025' });
      });

      test('updateIf changes the schedule only when its last firing is before / not after the given time', async () => {
        const w = await world(r);
        const s = await r.schedules.create(newSchedule(w.instance.id));
        const t = new Date('2024-06-01T03:00:00.000Z');
        const plus = (ms: number) => new Date(t.getTime() + ms);
        // Never fired: every condition holds.
        expect(await r.schedules.updateIf(s.id, { lastFiredBefore: t }, { lastFiredAt: t, lastBackupId: 'b1' })).toBe(true);
        expect(await r.schedules.get(s.id)).toMatchObject({ lastFiredAt: t, lastBackupId: 'b1' });
        const fired = await r.schedules.get(s.id);

        expect(await r.schedules.updateIf(s.id, { lastFiredBefore: t }, { lastFiredAt: t, lastBackupId: 'b2' })).toBe(false);
        expect(await r.schedules.updateIf(s.id, { lastFiredBefore: plus(-1) }, { lastBackupId: 'b2' })).toBe(false);
        expect(await r.schedules.updateIf(s.id, { lastFiredNotAfter: plus(-1) }, { lastBackupId: 'b2' })).toBe(false);
        expect(await r.schedules.updateIf(s.id, { lastFiredBefore: plus(1), lastFiredNotAfter: plus(-1) }, { lastBackupId: 'b2' })).toBe(false);
        expect(await r.schedules.get(s.id)).toEqual(fired);

        expect(await r.schedules.updateIf(s.id, { lastFiredNotAfter: t }, { lastSkippedAt: t, lastSkipReason: 'busy' })).toBe(true);
        expect(await r.schedules.updateIf(s.id, { lastFiredBefore: plus(1) }, { lastFiredAt: plus(1), lastBackupId: 'b3' })).toBe(true);
        expect(await r.schedules.get(s.id)).toMatchObject({ lastFiredAt: plus(1), lastBackupId: 'b3', lastSkippedAt: t, lastSkipReason: 'busy' });
        expect(await r.schedules.updateIf(s.id, {}, { retention: { keepLast: 9 } })).toBe(true);
        expect((await r.schedules.get(s.id))?.retention).toEqual({ keepLast: 9 });
        expect(await r.schedules.updateIf(newId(), {}, { enabled: false })).toBe(false);
      });

      test("delete removes the schedule and clears its backups' scheduleId; an unknown id fails", async () => {
        const w = await world(r);
        const s = await r.schedules.create(newSchedule(w.instance.id));
        const backup = await r.backups.create(newBackup(w.instance.id, { trigger: 'schedule', scheduleId: s.id }));
        await r.schedules.delete(s.id);
        expect(await r.schedules.get(s.id)).toBeNull();
        expect(await r.backups.get(backup.id)).toEqual({ ...backup, scheduleId: null });
        expect(await rejection(r.schedules.delete(s.id))).toMatchObject({ code: 'P2025' });
      });
    });

    // ----- tokens and tenants -----

    describe('tokens', () => {
      const newToken = (tenantId: string | null, id = newId()) => ({
        id,
        tenantId,
        role: (tenantId ? 'member' : 'admin') as 'member' | 'admin',
        name: `token ${id}`,
        tokenHash: `hash-${newId()}`,
      });

      test('create, get and getByHash return the token with its tenant (null for an admin token)', async () => {
        const w = await world(r);
        const member = await r.tokens.create(newToken(w.tenant.id));
        expect(keys(member)).toEqual(TOKEN_COLUMNS);
        expect(member).toMatchObject({ tenantId: w.tenant.id, role: 'member', lastUsedAt: null, revokedAt: null, tenant: w.tenant });
        expect(member.createdAt).toBeInstanceOf(Date);
        expect(await r.tokens.get(member.id)).toEqual(member);
        expect(await r.tokens.getByHash(member.tokenHash)).toEqual(member);

        const admin = await r.tokens.create(newToken(null));
        expect(admin).toMatchObject({ tenantId: null, tenant: null, role: 'admin' });
        expect(await r.tokens.getByHash(admin.tokenHash)).toEqual(admin);
        expect(await r.tokens.get(newId())).toBeNull();
        expect(await r.tokens.getByHash(`hash-${newId()}`)).toBeNull();
      });

      test('create: a duplicate token hash or id is a UniqueViolation and changes nothing', async () => {
        const first = await r.tokens.create(newToken(null));
        const sameHash = { ...newToken(null), tokenHash: first.tokenHash };
        await expectUniqueViolation(r.tokens.create(sameHash));
        expect(await r.tokens.get(sameHash.id)).toBeNull();
        const sameId = newToken(null, first.id);
        await expectUniqueViolation(r.tokens.create(sameId));
        expect(await r.tokens.get(first.id)).toEqual(first);
        expect(await r.tokens.getByHash(sameId.tokenHash)).toBeNull();
      });

      test('createUnlessExists creates a new token and leaves one with the same hash as it is', async () => {
        const token = newToken(null);
        await r.tokens.createUnlessExists(token);
        const stored = await r.tokens.getByHash(token.tokenHash);
        expect(stored).toMatchObject({ ...token, lastUsedAt: null, revokedAt: null, tenant: null });

        const again = { ...newToken(null), tokenHash: token.tokenHash, name: 'another name' };
        await r.tokens.createUnlessExists(again);
        expect(await r.tokens.getByHash(token.tokenHash)).toEqual(stored);
        expect(await r.tokens.get(again.id)).toBeNull();
      });

      test('touch sets lastUsedAt only when it is unset or older than staleBefore', async () => {
        const token = await r.tokens.create(newToken(null));
        const t = new Date('2024-07-01T12:00:00.000Z');
        const plus = (ms: number) => new Date(t.getTime() + ms);
        await r.tokens.touch(token.id, t, plus(-60_000));
        expect((await r.tokens.get(token.id))?.lastUsedAt).toEqual(t);
        await r.tokens.touch(token.id, plus(1000), t);
        expect((await r.tokens.get(token.id))?.lastUsedAt).toEqual(t);
        await r.tokens.touch(token.id, plus(2000), plus(1));
        expect((await r.tokens.get(token.id))?.lastUsedAt).toEqual(plus(2000));
        await r.tokens.touch(newId(), t, t);
      });

      test('revoke stamps revokedAt once (a second revoke keeps the first time); list leaves revoked tokens out unless asked', async () => {
        const base = newId();
        // Ids of our own that sort together, so one id range selects exactly our tokens.
        const [a, b, c] = await Promise.all([
          r.tokens.create(newToken(null, `${base}A`)),
          r.tokens.create(newToken(null, `${base}B`)),
          r.tokens.create(newToken(null, `${base}C`)),
        ]);
        const range = { after: base, before: `${base}Z` };
        const first = new Date('2024-07-02T00:00:00.000Z');
        await r.tokens.revoke(b.id, first);
        await r.tokens.revoke(b.id, new Date('2024-07-03T00:00:00.000Z'));
        expect((await r.tokens.get(b.id))?.revokedAt).toEqual(first);
        await r.tokens.revoke(newId(), first);

        expect(idsOf(await r.tokens.list({}, range))).toEqual([a.id, c.id]);
        expect(idsOf(await r.tokens.list({ includeRevoked: false }, range))).toEqual([a.id, c.id]);
        expect(idsOf(await r.tokens.list({ includeRevoked: true }, range))).toEqual([a.id, b.id, c.id]);
        expect(idsOf(await r.tokens.list({ includeRevoked: true }, { ...range, order: 'desc', take: 2 }))).toEqual([c.id, b.id]);
        expect(idsOf(await r.tokens.list({ includeRevoked: true }, { after: a.id, before: range.before }))).toEqual([b.id, c.id]);
        const listed = await r.tokens.list({ includeRevoked: true }, range);
        expect(listed[1]).toEqual({ ...b, revokedAt: first });
        expect(listed[0]).toEqual(a);
        const all = await r.tokens.list({});
        expect(all.some((k) => k.id === a.id)).toBe(true);
        expect(all.some((k) => k.id === b.id)).toBe(false);
      });

      test('countActive counts the tokens not revoked, by role and tenant, leaving one out if asked', async () => {
        const w = await world(r);
        const [a, b] = await Promise.all([r.tokens.create(newToken(w.tenant.id)), r.tokens.create(newToken(w.tenant.id))]);
        expect(await r.tokens.countActive({ tenantId: w.tenant.id })).toBe(2);
        expect(await r.tokens.countActive({ tenantId: w.tenant.id, role: 'member' })).toBe(2);
        expect(await r.tokens.countActive({ tenantId: w.tenant.id, role: 'admin' })).toBe(0);
        expect(await r.tokens.countActive({ tenantId: w.tenant.id, notId: a.id })).toBe(1);
        await r.tokens.revoke(b.id, new Date());
        expect(await r.tokens.countActive({ tenantId: w.tenant.id })).toBe(1);
        expect(await r.tokens.countActive({ tenantId: w.tenant.id, notId: a.id })).toBe(0);
        // Without a tenant, every tenant's tokens count (other tests' tokens too: at least ours).
        expect(await r.tokens.countActive({ role: 'member' })).toBeGreaterThanOrEqual(1);
      });
    });

    describe('tenants', () => {
      test('ensure creates a tenant once; later calls return it whatever id they bring; get and getByName', async () => {
        const name = `tenant-${newId()}`;
        const id = newId();
        const created = await r.tenants.ensure(name, id);
        expect(keys(created)).toEqual(TENANT_COLUMNS);
        expect(created).toMatchObject({ id, name });
        expect(created.createdAt).toBeInstanceOf(Date);
        const again = await r.tenants.ensure(name, newId());
        expect(again).toEqual(created);
        expect(await r.tenants.get(id)).toEqual(created);
        expect(await r.tenants.getByName(name)).toEqual(created);
        expect(await r.tenants.get(newId())).toBeNull();
        expect(await r.tenants.getByName(`no-${name}`)).toBeNull();
      });

      test('concurrent ensures of one new name, inside and outside transactions, all get the one row', async () => {
        const name = `tenant-${newId()}`;
        const rows = await Promise.all([
          ...Array.from({ length: 6 }, () => r.tenants.ensure(name, newId())),
          ...Array.from({ length: 4 }, () => r.transaction((tx) => tx.tenants.ensure(name, newId()))),
        ]);
        expect(new Set(rows.map((t) => t.id)).size).toBe(1);
        expect(await r.tenants.getByName(name)).toEqual(rows[0]);
      });

      test('ensure of a new name with an id already taken fails and changes nothing', async () => {
        const existing = await r.tenants.ensure(`tenant-${newId()}`, newId());
        const name = `tenant-${newId()}`;
        await rejection(r.tenants.ensure(name, existing.id));
        expect(await r.tenants.get(existing.id)).toEqual(existing);
        expect(await r.tenants.getByName(name)).toBeNull();
      });
    });

    // ----- backup names and pins, instance policies (issue 13) -----

    describe('backup names, pins and instance policies', () => {
      test('a name is unique per instance among backups not deleting or deleted; deleting frees it, other instances may use it', async () => {
        const w = await world(r);
        const other = await world(r);
        const named = await r.backups.create(newBackup(w.instance.id, { name: 'pre-upgrade', note: 'before 2.0', pinned: true }));
        expect(named).toMatchObject({ name: 'pre-upgrade', note: 'before 2.0', pinned: true });
        const dup = await expectUniqueViolation(r.backups.create(newBackup(w.instance.id, { name: 'pre-upgrade' })));
        expect(dup.fields).toEqual(['instanceId', 'name']);
        expect(await r.backups.count({ instanceId: w.instance.id })).toBe(1);
        // Unnamed backups never clash; another instance may use the name.
        await r.backups.create(newBackup(w.instance.id));
        await r.backups.create(newBackup(w.instance.id));
        expect((await r.backups.create(newBackup(other.instance.id, { name: 'pre-upgrade' }))).name).toBe('pre-upgrade');
        // A failed backup keeps its name.
        const failed = await r.backups.create(newBackup(w.instance.id, { name: 'nightly', status: 'failed' }));
        await expectUniqueViolation(r.backups.create(newBackup(w.instance.id, { name: 'nightly' })));
        // Renames: onto a taken name refused and nothing changes; onto a free one fine.
        const b = await r.backups.create(newBackup(w.instance.id, { name: 'b' }));
        expect((await expectUniqueViolation(r.backups.updateWhere({ id: b.id }, { name: 'pre-upgrade' }))).fields).toEqual(['instanceId', 'name']);
        await expectUniqueViolation(r.backups.transition(b.id, ['pending'], 'running', { name: 'nightly' }));
        expect(await r.backups.get(b.id)).toMatchObject({ name: 'b', status: 'pending' });
        expect(await r.backups.updateWhere({ id: b.id }, { name: 'b2', note: 'n', pinned: true })).toBe(1);
        expect(await r.backups.get(b.id)).toMatchObject({ name: 'b2', note: 'n', pinned: true });
        // One update giving two backups the same name changes neither.
        const c = await r.backups.create(newBackup(w.instance.id, { name: 'c' }));
        await expectUniqueViolation(r.backups.updateWhere({ ids: [b.id, c.id] }, { name: 'same' }));
        expect((await r.backups.get(b.id))?.name).toBe('b2');
        expect((await r.backups.get(c.id))?.name).toBe('c');
        // deleting (and deleted) free the name; a deleted backup may keep it alongside a new holder.
        expect(await r.backups.transition(failed.id, ['failed'], 'deleting')).toBe(true);
        const again = await r.backups.create(newBackup(w.instance.id, { name: 'nightly', status: 'completed' }));
        expect(await r.backups.transition(failed.id, ['deleting'], 'deleted')).toBe(true);
        expect((await r.backups.get(failed.id))?.name).toBe('nightly');
        expect((await r.backups.get(again.id))?.name).toBe('nightly');
        expect(await r.backups.updateWhere({ id: b.id }, { name: null })).toBe(1);
        expect((await r.backups.get(b.id))?.name).toBeNull();
      });

      test('filters: name, namePrefix (no wildcards, unnamed never match) and pinned', async () => {
        const w = await world(r);
        const make = (name: string | null, pinned = false) => r.backups.create(newBackup(w.instance.id, { name, pinned })).then((b) => b.id);
        const a = await make('app-1');
        const a2 = await make('app-10', true);
        const u = await make('a_b');
        const pct = await make('x%y');
        const plain = await make(null, true);
        const none = await make(null);
        const mine = { instanceId: w.instance.id };
        const expectBackups = async (filter: Parameters<Records['backups']['find']>[0], expected: string[]) => {
          expect(idsOf(await r.backups.find({ ...mine, ...filter }))).toEqual(sorted(expected));
          expect(await r.backups.count({ ...mine, ...filter })).toBe(expected.length);
        };
        await expectBackups({ name: 'app-1' }, [a]);
        await expectBackups({ namePrefix: 'app-1' }, [a, a2]);
        await expectBackups({ namePrefix: 'app-10' }, [a2]);
        await expectBackups({ namePrefix: 'APP' }, []);
        await expectBackups({ namePrefix: 'a_' }, [u]);
        await expectBackups({ namePrefix: 'x%' }, [pct]);
        await expectBackups({ namePrefix: 'x' }, [pct]);
        await expectBackups({ namePrefix: '' }, [a, a2, u, pct]);
        await expectBackups({ pinned: true }, [a2, plain]);
        await expectBackups({ pinned: false }, [a, u, pct, none]);
        await expectBackups({ pinned: false, namePrefix: 'app' }, [a]);
        await expectBackups({}, [a, a2, u, pct, plain, none]);
      });

      test('policies: upsert creates with defaults, then changes only what it is given; get, find (filters, page) and removal with the instance', async () => {
        const w1 = await world(r);
        const w2 = await world(r);
        const w3 = await world(r);
        expect(await r.policies.get(w1.instance.id)).toBeNull();
        const created = await r.policies.upsert(w1.instance.id, { manualBackupLimit: 5 });
        expect(keys(created)).toEqual(['createdAt', 'instanceId', 'manualBackupLimit', 'manualRetention', 'timezone', 'updatedAt']);
        expect(created).toMatchObject({ instanceId: w1.instance.id, manualBackupLimit: 5, manualRetention: null, timezone: 'UTC' });
        expect(created.updatedAt).toBeInstanceOf(Date);
        const retention = { keepLast: 2, maxAgeDays: 30 };
        const changed = await r.policies.upsert(w1.instance.id, { manualRetention: retention, timezone: 'Europe/Berlin' });
        expect(changed).toMatchObject({ manualBackupLimit: 5, manualRetention: retention, timezone: 'Europe/Berlin' });
        expect(await r.policies.get(w1.instance.id)).toEqual(changed);
        await r.policies.upsert(w2.instance.id, { manualRetention: { keepDaily: 7 } });
        await r.policies.upsert(w3.instance.id, { manualBackupLimit: 1 });
        const ids = [w1.instance.id, w2.instance.id, w3.instance.id];
        const ofFind = async (...args: Parameters<Records['policies']['find']>) => (await r.policies.find(...args)).map((p) => p.instanceId);
        expect(await ofFind({ instanceIds: ids })).toEqual(sorted(ids));
        expect(await ofFind({ instanceIds: ids, hasManualRetention: true })).toEqual(sorted([w1.instance.id, w2.instance.id]));
        expect(await ofFind({ instanceIds: ids, hasManualRetention: false })).toEqual([w3.instance.id]);
        expect(await ofFind({ instanceIds: ids }, { after: sorted(ids)[0], take: 1 })).toEqual([sorted(ids)[1]]);
        expect(await ofFind({ instanceIds: ids }, { order: 'desc', before: sorted(ids)[2] })).toEqual([sorted(ids)[1], sorted(ids)[0]]);
        // null clears an override.
        expect(await r.policies.upsert(w1.instance.id, { manualBackupLimit: null, manualRetention: null })).toMatchObject({
          manualBackupLimit: null,
          manualRetention: null,
          timezone: 'Europe/Berlin',
        });
        expect(await ofFind({ instanceIds: ids, hasManualRetention: true })).toEqual([w2.instance.id]);
        await rejection(r.policies.upsert(newId(), { manualBackupLimit: 1 }));
        await r.instances.delete(w3.instance.id);
        expect(await r.policies.get(w3.instance.id)).toBeNull();
      });
    });

    describe('verification (issue 14)', () => {
      test('verify fields are written and filtered on; the least recently verified completed backups come first', async () => {
        const w = await world(r);
        const older = await r.backups.create(newBackup(w.instance.id, { status: 'completed' }));
        const newer = await r.backups.create(newBackup(w.instance.id, { status: 'completed' }));
        const never = await r.backups.create(newBackup(w.instance.id, { status: 'completed' }));
        const running = await r.backups.create(newBackup(w.instance.id, { status: 'running' }));
        expect(older).toMatchObject({ verifiedAt: null, verifyLevel: null, verifyStatus: null, verifyError: null });
        const t1 = new Date('2026-01-01T00:00:00.000Z');
        const t2 = new Date('2026-01-02T00:00:00.000Z');
        expect(
          await r.backups.updateWhere({ id: older.id }, { verifiedAt: t1, verifyLevel: 'full', verifyStatus: 'failed', verifyError: 'block 3 is bad' }),
        ).toBe(1);
        expect(await r.backups.updateWhere({ id: newer.id }, { verifiedAt: t2, verifyLevel: 'quick', verifyStatus: 'ok' })).toBe(1);
        expect(await r.backups.get(older.id)).toMatchObject({ verifiedAt: t1, verifyLevel: 'full', verifyStatus: 'failed', verifyError: 'block 3 is bad' });
        expect((await r.backups.find({ instanceId: w.instance.id, verifyStatus: 'failed' })).map((b) => b.id)).toEqual([older.id]);
        expect(await r.backups.count({ instanceId: w.instance.id, verifyStatus: 'ok' })).toBe(1);
        const mine = new Set([older.id, newer.id, never.id, running.id]);
        const order = (await r.backups.leastRecentlyVerified(100_000)).filter((b) => mine.has(b.id)).map((b) => b.id);
        expect(order).toEqual([never.id, older.id, newer.id]);
      });

      test('jobs filter on their error code', async () => {
        const w = await world(r);
        const a = await r.jobs.create(newJob({ type: 'verify', instanceId: w.instance.id, status: 'running' }));
        const b = await r.jobs.create(newJob({ type: 'verify', instanceId: w.instance.id, status: 'running' }));
        await r.jobs.transition(a.id, ['running'], 'failed', { error: 'x', errorCode: 'archive-missing' });
        await r.jobs.transition(b.id, ['running'], 'failed', { error: 'y', errorCode: 'unavailable' });
        expect((await r.jobs.find({ instanceId: w.instance.id, errorCode: ['archive-missing', 'checksum-mismatch'] })).map((j) => j.id)).toEqual([a.id]);
        expect(await r.jobs.count({ instanceId: w.instance.id, errorCode: 'unavailable' })).toBe(1);
      });
    });

    describe('metrics, fleet views and volume states (issue 15)', () => {
      test('lastCompletedPerInstance: when the newest completed backup of each instance completed', async () => {
        const w1 = await world(r);
        const w2 = await world(r);
        const w3 = await world(r);
        const older = (await r.backups.create(newBackup(w1.instance.id, { status: 'completed' }))).id;
        const newer = (await r.backups.create(newBackup(w1.instance.id, { status: 'completed' }))).id;
        const failedLater = (await r.backups.create(newBackup(w1.instance.id, { status: 'failed' }))).id;
        const only = (await r.backups.create(newBackup(w2.instance.id, { status: 'completed' }))).id;
        await r.backups.create(newBackup(w3.instance.id, { status: 'running' }));
        await r.backups.updateWhere({ id: older }, { completedAt: new Date('2024-05-02T00:00:00.000Z') });
        await r.backups.updateWhere({ id: newer }, { completedAt: new Date('2024-05-01T00:00:00.000Z') });
        await r.backups.updateWhere({ id: failedLater }, { completedAt: new Date('2024-06-01T00:00:00.000Z') });
        await r.backups.updateWhere({ id: only }, { completedAt: new Date('2024-04-01T00:00:00.000Z') });
        const ours = (await r.backups.lastCompletedPerInstance()).filter((l) => [w1, w2, w3].some((w) => w.instance.id === l.instanceId));
        expect(ours.sort((a, b) => a.completedAt.getTime() - b.completedAt.getTime())).toEqual([
          { instanceId: w2.instance.id, completedAt: new Date('2024-04-01T00:00:00.000Z') },
          // By completion time, not by id: the later-created backup completed first.
          { instanceId: w1.instance.id, completedAt: new Date('2024-05-02T00:00:00.000Z') },
        ]);
      });

      test('backups filter volume: the backups that include that volume', async () => {
        const w = await world(r);
        const both = (await r.backups.create(newBackup(w.instance.id, { volumes: ['data', 'logs'] }))).id;
        const data = (await r.backups.create(newBackup(w.instance.id, { volumes: ['data'] }))).id;
        const logs = (await r.backups.create(newBackup(w.instance.id, { volumes: ['logs'] }))).id;
        expect(idsOf(await r.backups.find({ instanceId: w.instance.id, volume: 'logs' }))).toEqual(sorted([both, logs]));
        expect(await r.backups.count({ instanceId: w.instance.id, volume: 'data' })).toBe(2);
        expect(idsOf(await r.backups.find({ instanceId: w.instance.id, volume: 'dat' }))).toEqual([]);
        expect(data).toBeDefined();
      });

      test('schedules filter nodeId: the schedules of the instances on that node', async () => {
        const w1 = await world(r);
        const w2 = await world(r);
        const schedule = (instanceId: string) =>
          r.schedules.create({ id: newId(), instanceId, cron: '0 * * * *', timezone: 'UTC', volumes: [], retention, enabled: true });
        const a = (await schedule(w1.instance.id)).id;
        const b = (await schedule(w1.instance.id)).id;
        await schedule(w2.instance.id);
        expect(idsOf(await r.schedules.find({ nodeId: w1.nodeId }))).toEqual(sorted([a, b]));
        expect(idsOf(await r.schedules.find({ nodeId: w1.nodeId, tenantId: w2.tenant.id }))).toEqual([]);
        expect(idsOf(await r.schedules.find({ nodeId: `node-${newId()}` }))).toEqual([]);
      });

      test('heartbeat stores the volume states it is given and keeps them when a beat has none', async () => {
        const id = `node-${newId()}`;
        await r.nodes.heartbeat(id, beat());
        expect((await r.nodes.get(id))!.volumeStates).toBeNull();
        const states = {
          '/srv/a/data': { state: 'exists', checkedAt: '2024-05-01T00:00:00.000Z' },
          '/srv/a/gone': { state: 'missing', checkedAt: '2024-05-01T00:00:00.000Z' },
        };
        await r.nodes.heartbeat(id, { ...beat(), volumeStates: states });
        expect((await r.nodes.get(id))!.volumeStates).toEqual(states);
        await r.nodes.heartbeat(id, beat());
        expect((await r.nodes.get(id))!.volumeStates).toEqual(states);
        await r.nodes.heartbeat(id, { ...beat(), volumeStates: {} });
        expect((await r.nodes.get(id))!.volumeStates).toEqual({});
      });
    });

    describe('unique violations', () => {
      test('a UniqueViolation names the fields of the violated constraint', async () => {
        const w = await world(r);
        const job = await r.jobs.create(newJob());
        expect((await expectUniqueViolation(r.jobs.create(newJob({ id: job.id })))).fields).toEqual(['id']);
        const dupName = r.instances.create({ id: newId(), tenantId: w.tenant.id, name: w.instance.name, nodeId: w.nodeId, volumes: [] });
        expect((await expectUniqueViolation(dupName)).fields).toEqual(['tenantId', 'name']);
        const rename = await r.instances.create({ id: newId(), tenantId: w.tenant.id, name: 'other', nodeId: w.nodeId, volumes: [] });
        expect((await expectUniqueViolation(r.instances.update(rename.id, { name: w.instance.name }))).fields).toEqual(['tenantId', 'name']);
        const token = await r.tokens.create({ id: newId(), tenantId: null, role: 'admin', name: 'n', tokenHash: `hash-${newId()}` });
        const dupHash = r.tokens.create({ id: newId(), tenantId: null, role: 'admin', name: 'n', tokenHash: token.tokenHash });
        expect((await expectUniqueViolation(dupHash)).fields).toEqual(['tokenHash']);
      });
    });

    // ----- transactions -----

    describe('transactions', () => {
      test('commits every write and returns what the work returns; reads inside see its own writes', async () => {
        const w = await world(r);
        const jobId = newId();
        const result = await r.transaction(async (tx) => {
          await tx.jobs.create(newJob({ id: jobId, instanceId: w.instance.id }));
          expect((await tx.jobs.get(jobId))?.status).toBe('queued');
          expect(await tx.jobs.transition(jobId, ['queued'], 'running')).toBe(true);
          const b = await tx.backups.create(newBackup(w.instance.id));
          expect(await tx.backups.count({ instanceId: w.instance.id })).toBe(1);
          return { backupId: b.id };
        });
        expect((await r.jobs.get(jobId))?.status).toBe('running');
        expect(await r.backups.get(result.backupId)).toMatchObject({ instanceId: w.instance.id, status: 'pending' });
      });

      test('a throw inside rolls back every write and rethrows the error', async () => {
        const w = await world(r);
        const job = await r.jobs.create(newJob({ instanceId: w.instance.id }));
        const backup = await r.backups.create(newBackup(w.instance.id, { status: 'completed' }));
        const doomed = await r.backups.create(newBackup(w.instance.id, { status: 'deleted' }));
        const schedule = await r.schedules.create({
          id: newId(),
          instanceId: w.instance.id,
          cron: '0 * * * *',
          timezone: 'UTC',
          volumes: [],
          retention,
          enabled: true,
        });
        const token = await r.tokens.create({ id: newId(), tenantId: w.tenant.id, role: 'member', name: 't', tokenHash: `hash-${newId()}` });
        const snapshot = {
          job: await r.jobs.get(job.id),
          backup: await r.backups.get(backup.id),
          doomed: await r.backups.get(doomed.id),
          instance: await r.instances.get(w.instance.id),
          node: await r.nodes.get(w.nodeId),
          schedule: await r.schedules.get(schedule.id),
          token: await r.tokens.get(token.id),
        };
        const newJobId = newId();
        const newInstanceId = newId();
        const newTenantName = `tenant-${newId()}`;
        const newNodeId = `node-${newId()}`;
        const boom = new Error('boom');
        const err = await rejection(
          r.transaction(async (tx) => {
            await tx.jobs.create(newJob({ id: newJobId }));
            expect(await tx.jobs.transition(job.id, ['queued'], 'cancelled', { error: 'x' })).toBe(true);
            await tx.jobs.setProgress(job.id, { phase: 'x' });
            expect(await tx.backups.transition(backup.id, ['completed'], 'deleting')).toBe(true);
            expect(await tx.backups.updateWhere({ ids: [backup.id] }, { sizeBytes: 1n })).toBe(1);
            expect(await tx.backups.deleteWhere({ ids: [doomed.id] })).toBe(1);
            await tx.instances.update(w.instance.id, { name: 'changed', volumes: [vol('other')] });
            await tx.instances.create({ id: newInstanceId, tenantId: w.tenant.id, name: 'new', nodeId: w.nodeId, volumes: [vol('v')] });
            await tx.nodes.heartbeat(w.nodeId, beat(['/changed'], '9.9.9'));
            await tx.nodes.heartbeat(newNodeId, beat());
            await tx.schedules.update(schedule.id, { enabled: false });
            await tx.tokens.revoke(token.id, new Date());
            await tx.tokens.touch(token.id, new Date(), new Date());
            await tx.tenants.ensure(newTenantName, newId());
            throw boom;
          }),
        );
        expect(err).toBe(boom);
        expect({
          job: await r.jobs.get(job.id),
          backup: await r.backups.get(backup.id),
          doomed: await r.backups.get(doomed.id),
          instance: await r.instances.get(w.instance.id),
          node: await r.nodes.get(w.nodeId),
          schedule: await r.schedules.get(schedule.id),
          token: await r.tokens.get(token.id),
        }).toEqual(snapshot);
        expect(await r.jobs.get(newJobId)).toBeNull();
        expect(await r.instances.get(newInstanceId)).toBeNull();
        expect(await r.nodes.get(newNodeId)).toBeNull();
        expect(await r.tenants.getByName(newTenantName)).toBeNull();
      });

      test('a failed write inside (a UniqueViolation) rolls back the writes before it', async () => {
        const w = await world(r);
        const jobId = newId();
        const err = await rejection(
          r.transaction(async (tx) => {
            await tx.jobs.create(newJob({ id: jobId }));
            await tx.instances.create({ id: newId(), tenantId: w.tenant.id, name: w.instance.name, nodeId: w.nodeId, volumes: [] });
          }),
        );
        expect(err).toBeInstanceOf(UniqueViolation);
        expect(await r.jobs.get(jobId)).toBeNull();
      });

      test('lock() holds a record until the transaction ends: a second locker of it waits', async () => {
        const id = newId();
        const events: string[] = [];
        let locked!: () => void;
        const firstHasLock = new Promise<void>((resolve) => (locked = resolve));
        const first = r.transaction(async (tx) => {
          await tx.lock('instance', id);
          events.push('first locked');
          locked();
          await sleep(200);
          events.push('first done');
          return 1;
        });
        await Promise.race([firstHasLock, first]);
        const second = r.transaction(async (tx) => {
          await tx.lock('instance', id);
          events.push('second locked');
          return 2;
        });
        expect(await Promise.all([first, second])).toEqual([1, 2]);
        expect(events).toEqual(['first locked', 'first done', 'second locked']);
        // Every kind of lock can be taken, in the documented order.
        await r.transaction(async (tx) => {
          for (const kind of ['schedule', 'backup', 'instance', 'node'] as const) await tx.lock(kind, id);
        });
      });

      test('writes of an open transaction are not seen outside it before it commits', async () => {
        const jobId = newId();
        let inside!: () => void;
        const entered = new Promise<void>((resolve) => (inside = resolve));
        let release!: () => void;
        const go = new Promise<void>((resolve) => (release = resolve));
        const tx = r.transaction(async (t) => {
          await t.jobs.create(newJob({ id: jobId }));
          inside();
          await go;
        });
        try {
          await Promise.race([entered, tx]);
          expect(await r.jobs.get(jobId)).toBeNull();
        } finally {
          release();
          await tx;
        }
        expect(await r.jobs.get(jobId)).not.toBeNull();
      });

      test('a rolled-back transaction leaves the writes made outside it meanwhile', async () => {
        const insideId = newId();
        const outsideId = newId();
        let inside!: () => void;
        const entered = new Promise<void>((resolve) => (inside = resolve));
        let release!: () => void;
        const go = new Promise<void>((resolve) => (release = resolve));
        const tx = r.transaction(async (t) => {
          await t.jobs.create(newJob({ id: insideId }));
          inside();
          await go;
          throw new Error('rollback');
        });
        const settled = tx.catch((err: unknown) => err);
        try {
          await Promise.race([entered, tx]);
          await r.jobs.create(newJob({ id: outsideId }));
        } finally {
          release();
        }
        expect(await settled).toMatchObject({ message: 'rollback' });
        expect(await r.jobs.get(insideId)).toBeNull();
        expect((await r.jobs.get(outsideId))?.id).toBe(outsideId);
      });
    });

    // ----- JSON columns and copies -----

    describe('JSON columns and copies', () => {
      test('JSON columns keep nested objects, arrays, numbers, booleans and nulls', async () => {
        const params = { volumes: ['a', 'b'], paths: [{ p: 'x/y', n: 1.5 }], dry: false, nothing: null, deep: { a: { b: [1, [2, 3]] } } };
        const job = await r.jobs.create(newJob({ params, result: null }));
        expect(job.params).toEqual(params);
        expect(job.result).toBeNull();
        expect(job.progress).toBeNull();
        const got = (await r.jobs.get(job.id))!;
        expect(got.params).toStrictEqual(params);
        expect(got.result).toBeNull();
        await r.jobs.setProgress(job.id, [1, 'two', { three: 3 }]);
        expect((await r.jobs.get(job.id))?.progress).toStrictEqual([1, 'two', { three: 3 }]);
        expect(await r.jobs.transition(job.id, ['queued'], 'succeeded', { result: 'done', progress: null })).toBe(true);
        const done = (await r.jobs.get(job.id))!;
        expect(done.result).toBe('done');
        expect(done.progress).toBeNull();
        expect(await r.jobs.count({ id: job.id, status: 'succeeded' })).toBe(1);

        const w = await world(r);
        const backup = await r.backups.create(newBackup(w.instance.id));
        expect(backup.warnings).toStrictEqual([]);
        expect(await r.backups.updateWhere({ ids: [backup.id] }, { warnings: [] })).toBe(1);
        expect((await r.backups.get(backup.id))?.warnings).toStrictEqual([]);
        expect(await r.backups.updateWhere({ ids: [backup.id] }, { warnings: ['a', { b: null }] })).toBe(1);
        expect((await r.backups.get(backup.id))?.warnings).toStrictEqual(['a', { b: null }]);
      });

      test('JSON columns hold JSON: a Date inside is stored as its ISO string, an undefined field is left out', async () => {
        const at = new Date('2024-08-01T00:00:00.000Z');
        const job = await r.jobs.create(newJob({ params: { at, skip: undefined, keep: 1 } }));
        expect((await r.jobs.get(job.id))?.params).toStrictEqual({ at: at.toISOString(), keep: 1 });
      });

      test('rows handed out are copies: mutating one changes nothing stored', async () => {
        const w = await world(r);
        const job = await r.jobs.create(newJob({ params: { list: [1, 2] }, instanceId: w.instance.id }));
        (job.params as { list: number[] }).list.push(3);
        job.status = 'failed';
        job.createdAt.setTime(0);
        const got = (await r.jobs.get(job.id))!;
        expect(got.params).toEqual({ list: [1, 2] });
        expect(got.status).toBe('queued');
        expect(got.createdAt.getTime()).not.toBe(0);
        (got.params as { list: number[] }).list.length = 0;
        (await r.jobs.find({ ids: [job.id] }))[0]!.status = 'running';
        expect(await r.jobs.get(job.id)).toMatchObject({ params: { list: [1, 2] }, status: 'queued' });

        const backup = await r.backups.create(newBackup(w.instance.id));
        backup.volumes.push('injected');
        (backup.warnings as unknown[]).push('injected');
        expect(await r.backups.get(backup.id)).toMatchObject({ volumes: ['data'], warnings: [] });

        const instance = (await r.instances.get(w.instance.id))!;
        instance.volumes.pop();
        instance.tenant.name = 'hijacked';
        instance.name = 'hijacked';
        const again = (await r.instances.get(w.instance.id))!;
        expect(again.volumes).toHaveLength(1);
        expect(again.tenant.name).toBe(w.tenant.name);
        expect(again.name).toBe(w.instance.name);
        (await r.instances.volumes({ id: w.instance.id }))[0]!.excludes.push('x');
        expect((await r.instances.get(w.instance.id))?.volumes[0]?.excludes).toEqual([]);

        const node = (await r.nodes.get(w.nodeId))!;
        node.volumeRoots.push('/injected');
        expect((await r.nodes.get(w.nodeId))?.volumeRoots).toEqual(['/srv/a']);

        const tenant = (await r.tenants.get(w.tenant.id))!;
        tenant.name = 'hijacked';
        expect((await r.tenants.getByName(w.tenant.name))?.id).toBe(w.tenant.id);

        const token = await r.tokens.create({ id: newId(), tenantId: w.tenant.id, role: 'member', name: 'n', tokenHash: `hash-${newId()}` });
        token.tenant!.name = 'hijacked';
        token.name = 'hijacked';
        expect(await r.tokens.get(token.id)).toMatchObject({ name: 'n', tenant: { name: w.tenant.name } });

        const schedule = await r.schedules.create({
          id: newId(),
          instanceId: w.instance.id,
          cron: '0 * * * *',
          timezone: 'UTC',
          volumes: ['data'],
          retention: { keepLast: 1 },
          enabled: true,
        });
        (schedule.retention as { keepLast: number }).keepLast = 99;
        schedule.volumes.push('x');
        const withInstance = (await r.schedules.getWithInstance(schedule.id))!;
        withInstance.instance.volumes.length = 0;
        expect(await r.schedules.get(schedule.id)).toMatchObject({ retention: { keepLast: 1 }, volumes: ['data'] });
        expect((await r.schedules.getWithInstance(schedule.id))?.instance.volumes).toHaveLength(1);
      });

      test('inputs are copied: mutating what was passed in after the call changes nothing stored', async () => {
        const w = await world(r);
        const params = { list: [1] };
        const job = await r.jobs.create(newJob({ params }));
        params.list.push(2);
        expect((await r.jobs.get(job.id))?.params).toEqual({ list: [1] });

        const input = newBackup(w.instance.id, { volumes: ['data'] });
        await r.backups.create(input);
        input.volumes.push('late');
        const changes = { warnings: [{ m: 'w' }], completedAt: new Date('2024-09-01T00:00:00.000Z') };
        await r.backups.updateWhere({ ids: [input.id] }, changes);
        changes.warnings[0]!.m = 'changed';
        changes.completedAt.setTime(0);
        expect(await r.backups.get(input.id)).toMatchObject({
          volumes: ['data'],
          warnings: [{ m: 'w' }],
          completedAt: new Date('2024-09-01T00:00:00.000Z'),
        });

        const volumes = [vol('v', ['a'])];
        const instance = await r.instances.create({ id: newId(), tenantId: w.tenant.id, name: 'copied', nodeId: w.nodeId, volumes });
        volumes[0]!.excludes.push('b');
        volumes[0]!.name = 'renamed';
        expect((await r.instances.get(instance.id))?.volumes).toEqual([{ ...vol('v', ['a']), id: volumes[0]!.id, instanceId: instance.id }]);

        const token = await r.tokens.create({ id: newId(), tenantId: null, role: 'admin', name: 'n', tokenHash: `hash-${newId()}` });
        const at = new Date('2024-09-02T00:00:00.000Z');
        await r.tokens.revoke(token.id, at);
        const used = new Date('2024-09-03T00:00:00.000Z');
        await r.tokens.touch(token.id, used, used);
        at.setTime(0);
        used.setTime(0);
        expect(await r.tokens.get(token.id)).toMatchObject({
          revokedAt: new Date('2024-09-02T00:00:00.000Z'),
          lastUsedAt: new Date('2024-09-03T00:00:00.000Z'),
        });
      });
    });

    hookRecordsContract(() => r, test);

    it('names only existing tests as known divergences', () => {
      expect([...unknown]).toEqual([]);
    });
  });
}
