import { EventEmitter } from 'node:events';
import type { Job as BullJob } from 'bullmq';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { CairnError, MemoryRecords, isUnavailableError, loadConfig, newId, retryWrite, type JobQueues, type JobStatus, type JobType } from '@cairn/core';
import { MemoryObjectStore } from '@cairn/core/storage/memory.object-store.ts';
import { JobLifecycle } from '@cairn/worker/job-lifecycle.ts';
import { watchLostJobs } from '@cairn/worker/reconcile/lost-job-watch.ts';
import { reconcileLostJobs, safeToRunAgain } from '@cairn/worker/reconcile/lost-jobs.ts';

const logger = pino({ level: 'silent' });

/** What Prisma over the pg driver adapter throws while Postgres is down (seen with a stopped server). */
function unreachable(): Error {
  return Object.assign(new Error("Raw query failed. Code: `N/A`. Message: `Can't reach database server at 127.0.0.1:5432`"), {
    code: 'P2010',
    meta: { driverAdapterError: { name: 'DriverAdapterError', cause: { kind: 'DatabaseNotReachable', host: '127.0.0.1', port: 5432 } } },
  });
}

describe('fault settings', () => {
  it('defaults to minutes of database patience, a 30 s reconcile and nodes dead after 90 s; durations are checked', () => {
    expect(loadConfig({})).toMatchObject({
      DB_OUTAGE_TOLERANCE: 15 * 60_000,
      RECONCILE_EVERY: 30_000,
      LOST_JOB_GRACE: 30_000,
      NODE_DEAD_AFTER: 90_000,
      S3_REQUEST_TIMEOUT: 15 * 60_000,
      S3_SOCKET_TIMEOUT: 60_000,
    });
    expect(loadConfig({ RECONCILE_EVERY: '5s', NODE_DEAD_AFTER: '2m', S3_SOCKET_TIMEOUT: '1500' })).toMatchObject({
      RECONCILE_EVERY: 5000,
      NODE_DEAD_AFTER: 120_000,
      S3_SOCKET_TIMEOUT: 1500,
    });
    // Below the heartbeat period every node would look dead.
    const bad = (() => {
      try {
        loadConfig({ NODE_DEAD_AFTER: '10s', RECONCILE_EVERY: 'soon' });
      } catch (err) {
        return (err as Error).message;
      }
    })();
    expect(bad).toContain('NODE_DEAD_AFTER: must be a duration of at least 15s');
    expect(bad).toContain('RECONCILE_EVERY: must be a duration');
  });
});

describe('isUnavailableError', () => {
  it('recognises an unreachable or restarting Postgres, and nothing else', () => {
    expect(isUnavailableError(unreachable())).toBe(true);
    const shutdown = { code: 'P2010', meta: { driverAdapterError: { cause: { kind: 'postgres', originalCode: '57P01', code: '57P01' } } } };
    expect(isUnavailableError(Object.assign(new Error('terminating connection due to administrator command'), shutdown))).toBe(true);
    expect(isUnavailableError(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isUnavailableError(new Error('outer', { cause: Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }) }))).toBe(true);
    expect(isUnavailableError(new CairnError('unavailable', 'database down'))).toBe(true);
    expect(isUnavailableError(Object.assign(new Error('Unique constraint failed'), { code: 'P2002' }))).toBe(false);
    expect(isUnavailableError(new CairnError('validation', 'bad'))).toBe(false);
    expect(isUnavailableError(new Error('boom'))).toBe(false);
  });
});

describe('retryWrite through an outage', () => {
  it('keeps trying past its attempts while the database is unreachable, within the tolerance', async () => {
    let calls = 0;
    const value = await retryWrite(
      async () => {
        if (++calls < 8) throw unreachable();
        return 'written';
      },
      { attempts: 2, delayMs: 1, maxDelayMs: 2, outlastOutagesMs: 5000 },
    );
    expect(value).toBe('written');
    expect(calls).toBe(8);
  });

  it('gives up on an outage longer than the tolerance, and never outlasts other errors', async () => {
    let calls = 0;
    const started = Date.now();
    await expect(
      retryWrite(
        async () => {
          calls++;
          throw unreachable();
        },
        { attempts: 2, delayMs: 5, maxDelayMs: 10, outlastOutagesMs: 200 },
      ),
    ).rejects.toThrow(/Can't reach database server/);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(calls).toBeGreaterThan(2);
    calls = 0;
    await expect(
      retryWrite(
        async () => {
          calls++;
          throw new Error('constraint');
        },
        { attempts: 2, delayMs: 1, outlastOutagesMs: 5000 },
      ),
    ).rejects.toThrow('constraint');
    expect(calls).toBe(2);
  });
});

describe('job lifecycle and outages', () => {
  it('a claim waits for the database; a re-run after a crash counts as an attempt and starts with no stale progress or error', async () => {
    const records = new MemoryRecords();
    await records.jobs.create({ id: 'job-1', type: 'backup', status: 'running', requestedBy: 't', queue: 'node.n1' });
    await records.jobs.setProgress('job-1', { stage: 'archiving', percent: 42.4 });
    // Attempt 1 ran, failed once, and its worker then died mid-run.
    await records.jobs.transition('job-1', ['running'], 'running', { attempts: 1, error: 'attempt 1 failed, will retry: boom', errorCode: 'unavailable' });
    let down = 3;
    const get = records.jobs.get.bind(records.jobs);
    records.jobs.get = async (id) => {
      if (down-- > 0) throw unreachable();
      return get(id);
    };
    const lifecycle = new JobLifecycle({ jobs: records.jobs, logger, nodeId: 'n1', settleDelayMs: 1, outageToleranceMs: 10_000 });
    let during: unknown;
    // BullMQ's attempt 1 again: a stall does not count, the row does.
    const outcome = await lifecycle.execute(
      { name: 'backup', record: { kind: 'existing', jobId: 'job-1' }, attempt: 1, attempts: 5, signal: new AbortController().signal },
      {
        async run(run) {
          during = await get(run.jobId!);
          return { status: 'succeeded', result: { ok: true } };
        },
      },
    );
    expect(outcome.status).toBe('succeeded');
    expect(during).toMatchObject({ status: 'running', attempts: 2, progress: null, error: null, errorCode: null });
    expect(await get('job-1')).toMatchObject({ status: 'succeeded', attempts: 2, error: null, errorCode: null });
  });

  it('the terminal write outlasts an outage longer than its attempts', async () => {
    const records = new MemoryRecords();
    await records.jobs.create({ id: 'job-1', type: 'backup', status: 'queued', requestedBy: 't', queue: 'node.n1' });
    const lifecycle = new JobLifecycle({ jobs: records.jobs, logger, settleAttempts: 2, settleDelayMs: 1, outageToleranceMs: 10_000 });
    const transition = records.jobs.transition.bind(records.jobs);
    const outcome = await lifecycle.execute(
      { name: 'backup', record: { kind: 'existing', jobId: 'job-1' }, attempt: 1, attempts: 5, signal: new AbortController().signal },
      {
        async run() {
          let down = 6;
          records.jobs.transition = async (...args) => {
            if (down-- > 0) throw unreachable();
            return transition(...args);
          };
          return { status: 'succeeded', result: {} };
        },
      },
    );
    expect(outcome.status).toBe('succeeded');
    expect((await records.jobs.get('job-1'))?.status).toBe('succeeded');
  });
});

function fakeQueues(inQueue: Record<string, string> = {}) {
  const calls: string[] = [];
  const queues = {
    queue: () => ({
      getJob: async (id: string) => (inQueue[id] ? ({ id, getState: async () => inQueue[id] } as unknown as BullJob) : undefined),
    }),
    enqueueNode: async (nodeId: string, name: string, payload: { jobId: string }) => void calls.push(`enqueue ${name} ${payload.jobId} on ${nodeId}`),
    cancel: async (_queue: string, jobId: string) => {
      calls.push(`cancel ${jobId}`);
      return 'gone' as const;
    },
    isHeld: async (_queue: string, jobId: string) => inQueue[jobId] === 'held',
  };
  return { queues: queues as unknown as JobQueues, calls };
}

describe('lost jobs', () => {
  const HOUR = 3600_000;

  async function world() {
    const records = new MemoryRecords();
    records.seedNode({ id: 'alive', lastHeartbeatAt: new Date() });
    records.seedNode({ id: 'dead', lastHeartbeatAt: new Date(Date.now() - HOUR) });
    records.seedTenant({ id: 't1', name: 'acme' });
    const instanceId = newId();
    await records.instances.create({ id: instanceId, tenantId: 't1', name: 'app', nodeId: 'alive', volumes: [] });
    const job = async (type: JobType, status: JobStatus, node: string, extra: { startedAt?: Date; backupId?: string } = {}) => {
      const id = newId();
      await records.jobs.create({
        id,
        type,
        status,
        instanceId,
        backupId: extra.backupId ?? null,
        queue: `node.${node}`,
        requestedBy: 't',
        ...(extra.startedAt ? { startedAt: extra.startedAt } : {}),
      });
      return id;
    };
    /** A Backup row in `running`, as a backup job leaves it mid-run. */
    const runningBackup = async () => {
      const id = newId();
      await records.backups.create({
        id,
        instanceId,
        status: 'running',
        trigger: 'manual',
        volumes: [],
        storageKey: 'a',
        indexKey: 'i',
        compression: 'zstd',
        requestedBy: 't',
      });
      return id;
    };
    return { records, instanceId, job, runningBackup, store: new MemoryObjectStore() };
  }

  it('decides which lost jobs may run again', () => {
    const base = { parentJobId: null, startedAt: null };
    expect(safeToRunAgain({ ...base, type: 'backup', status: 'running', startedAt: new Date() })).toBe(true);
    expect(safeToRunAgain({ ...base, type: 'restore', status: 'queued' })).toBe(true);
    expect(safeToRunAgain({ ...base, type: 'restore', status: 'running', startedAt: new Date() })).toBe(false);
    expect(safeToRunAgain({ ...base, type: 'restore', status: 'queued', parentJobId: 'migrate-1' })).toBe(false);
    expect(safeToRunAgain({ ...base, type: 'cleanup', status: 'queued' })).toBe(false);
  });

  it('enqueues again what is safe, settles the rest, and leaves alone what is queued or young', async () => {
    const { records, job, store, runningBackup } = await world();
    const backupId = await runningBackup();
    const lostBackup = await job('backup', 'running', 'alive', { startedAt: new Date(), backupId });
    const neverStartedRestore = await job('restore', 'queued', 'alive');
    const startedRestore = await job('restore', 'running', 'alive', { startedAt: new Date() });
    const waiting = await job('backup', 'queued', 'alive');
    const lostQueued = await job('backup', 'queued', 'alive');
    const { queues, calls } = fakeQueues({ [waiting]: 'waiting' });
    // Judged a minute later: every queued row is past its grace.
    const later = new Date(Date.now() + 60_000);
    const outcomes = await reconcileLostJobs({ records, store, queues, logger, clock: () => later }, { lostJobGraceMs: 30_000, nodeDeadMs: 90_000 });
    expect(new Set(outcomes.map((o) => `${o.action} ${o.jobId}`))).toEqual(
      new Set([`requeued ${lostBackup}`, `requeued ${neverStartedRestore}`, `interrupted ${startedRestore}`, `requeued ${lostQueued}`]),
    );
    expect(calls.sort()).toEqual(
      [`enqueue backup ${lostBackup} on alive`, `enqueue restore ${neverStartedRestore} on alive`, `enqueue backup ${lostQueued} on alive`].sort(),
    );
    expect(await records.jobs.get(lostBackup)).toMatchObject({ status: 'queued', error: expect.stringMatching(/lost from the queue.*enqueued again/) });
    expect((await records.backups.get(backupId))?.status).toBe('running'); // its re-run reuses it
    expect(await records.jobs.get(startedRestore)).toMatchObject({ status: 'interrupted', errorCode: 'interrupted' });
    expect((await records.jobs.get(waiting))?.status).toBe('queued');

    // With the real clock, a queued job inside its grace is not judged.
    const fresh = await job('backup', 'queued', 'alive');
    const again = await reconcileLostJobs({ records, store, queues, logger }, { lostJobGraceMs: 30_000, nodeDeadMs: 90_000 });
    expect(again.map((o) => o.jobId)).not.toContain(fresh);
  });

  it('settles the jobs of a dead node, unless heartbeats could not be written until just now', async () => {
    const { records, job, store, runningBackup } = await world();
    const backupId = await runningBackup();
    const running = await job('backup', 'running', 'dead', { startedAt: new Date(), backupId });
    const { queues, calls } = fakeQueues({ [running]: 'active' });
    // The database was away until a moment ago: the node gets NODE_DEAD_AFTER from then.
    const justBack = await reconcileLostJobs(
      { records, store, queues, logger },
      { lostJobGraceMs: 0, nodeDeadMs: 90_000, heartbeatsVisibleSince: new Date(Date.now() - 1000) },
    );
    expect(justBack).toEqual([]);
    // Its worker still holds the job's lock: the node is alive, only its beats do not arrive.
    const held = await reconcileLostJobs(
      { records, store, queues: fakeQueues({ [running]: 'held' }).queues, logger },
      { lostJobGraceMs: 0, nodeDeadMs: 90_000 },
    );
    expect(held).toEqual([]);
    const outcomes = await reconcileLostJobs({ records, store, queues, logger }, { lostJobGraceMs: 0, nodeDeadMs: 90_000 });
    expect(outcomes).toMatchObject([{ jobId: running, action: 'interrupted', backupFailed: true, reason: expect.stringMatching(/node dead is offline/) }]);
    expect(calls).toEqual([`cancel ${running}`]);
    expect((await records.backups.get(backupId))?.status).toBe('failed');
    // A node worker about itself never calls itself dead.
    const own = await job('backup', 'running', 'dead', { startedAt: new Date() });
    const self = await reconcileLostJobs(
      { records, store, queues: fakeQueues({ [own]: 'active' }).queues, logger },
      { nodeId: 'dead', lostJobGraceMs: 0, nodeDeadMs: Number.POSITIVE_INFINITY },
    );
    expect(self).toEqual([]);
  });
});

describe('lost-job watch', () => {
  it('checks on its period and gives nodes time to beat again after the database was away', async () => {
    const records = new MemoryRecords();
    records.seedNode({ id: 'quiet', lastHeartbeatAt: new Date(Date.now() - 3600_000) });
    const jobId = newId();
    await records.jobs.create({ id: jobId, type: 'backup', status: 'running', requestedBy: 't', queue: 'node.quiet' });
    const { queues } = fakeQueues({ [jobId]: 'active' });
    let down = true;
    let checks = 0;
    const list = records.nodes.list.bind(records.nodes);
    records.nodes.list = async () => {
      checks++;
      if (down) throw unreachable();
      return list();
    };
    const redis = new EventEmitter() as EventEmitter & { status: string };
    redis.status = 'ready';
    const watch = watchLostJobs(
      { records, store: new MemoryObjectStore(), queues, logger },
      { everyMs: 30, redis: redis as never, reconnectDelayMs: 0, lostJobGraceMs: 0, nodeDeadMs: 1000 },
    );
    try {
      await waitUntil(() => checks >= 2); // periodic checks, failing while the database is away
      down = false;
      // Back: the node, silent for an hour by its row, is given nodeDeadMs from now.
      await waitUntil(() => checks >= 4);
      expect((await records.jobs.get(jobId))?.status).toBe('running');
      await waitUntil(async () => (await records.jobs.get(jobId))?.status === 'interrupted');
    } finally {
      watch.stop();
    }
    // Stopped: no more periodic checks; a reconnect after a stop starts none either.
    const after = checks;
    redis.emit('ready');
    await sleep(100);
    expect(checks).toBe(after);
  });

  it('a Redis reconnect starts a check at once', async () => {
    const records = new MemoryRecords();
    let checks = 0;
    const list = records.nodes.list.bind(records.nodes);
    records.nodes.list = async () => {
      checks++;
      return list();
    };
    const redis = new EventEmitter() as EventEmitter & { status: string };
    redis.status = 'ready';
    const watch = watchLostJobs(
      { records, store: new MemoryObjectStore(), queues: fakeQueues().queues, logger },
      { everyMs: null, redis: redis as never, reconnectDelayMs: 0, lostJobGraceMs: 0, nodeDeadMs: 1000 },
    );
    try {
      await sleep(50);
      expect(checks).toBe(0); // no period: only reconnects
      redis.emit('ready');
      await waitUntil(() => checks === 1);
    } finally {
      watch.stop();
    }
  });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(10)) if (await check()) return;
  throw new Error('condition not met in time');
}
