import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CairnError, JobQueues, backupPrefix, cancelChannel, createLogger, createRedis, manifestKey, newId, type Records } from '@cairn/core';
import { JobLifecycle } from '@cairn/worker/job-lifecycle.ts';
import { BackupJob } from '@cairn/worker/node/backup.pipeline.ts';
import type { NodeContext } from '@cairn/worker/node/node-context.ts';
import { startCairn, type Cairn } from '../support/cairn-harness.ts';
import { snapshotTree } from '../support/tree.ts';

function write(root: string, files: Record<string, string>): void {
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), content);
  }
}

async function createInstance(cairn: Cairn, name: string, volumes: Array<{ name: string; hostPath: string }>): Promise<string> {
  const res = await cairn.api('POST', '/v1/instances', { name, nodeId: cairn.nodeId, tenant: cairn.tenant, volumes });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id;
}

async function backupOf(cairn: Cairn, instanceId: string): Promise<string> {
  const res = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, {});
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  const job = await cairn.waitForJob(res.body.job.id);
  expect(job.status, JSON.stringify(job)).toBe('succeeded');
  return res.body.backup.id;
}

async function restore(cairn: Cairn, backupId: string, body: object): Promise<any> {
  const res = await cairn.api('POST', `/v1/backups/${backupId}/restore`, body);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return cairn.waitForJob(res.body.job.id);
}

const cairnNames = (dir: string) => fs.readdirSync(dir).filter((n) => n.startsWith('.cairn-'));

describe('restore never loses or escapes the target', () => {
  let cairn: Cairn;
  let outside: string;

  beforeAll(async () => {
    cairn = await startCairn();
    outside = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-outside-'));
  });
  afterAll(async () => {
    await cairn?.close();
    fs.rmSync(outside, { recursive: true, force: true });
  });

  /** An instance with volumes `config` and `data`, backed up; returns its dirs and the backup. */
  async function twoVolumes(name: string) {
    const root = path.join(cairn.volumeRoot, name);
    write(path.join(root, 'config'), { 'app.yaml': 'port: 8080\n' });
    write(path.join(root, 'data'), { 'db/tables/orders.dat': 'orders v1\n', 'a.txt': 'a v1' });
    const id = await createInstance(cairn, name, [
      { name: 'config', hostPath: path.join(root, 'config') },
      { name: 'data', hostPath: path.join(root, 'data') },
    ]);
    const backupId = await backupOf(cairn, id);
    return { root, config: path.join(root, 'config'), data: path.join(root, 'data'), id, backupId };
  }

  it('a path restore leaves a listed volume with no selected path untouched (it used to become empty)', async () => {
    const { config, data, backupId } = await twoVolumes('paths');
    fs.writeFileSync(path.join(config, 'app.yaml'), 'port: 9999\n');
    fs.writeFileSync(path.join(data, 'a.txt'), 'a v2');
    const before = snapshotTree(config);
    const job = await restore(cairn, backupId, { volumes: ['data', 'config'], paths: ['data/a.txt'] });
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    expect(fs.readFileSync(path.join(data, 'a.txt'), 'utf8')).toBe('a v1');
    expect(snapshotTree(config)).toEqual(before);
  });

  it('a failure on the second volume undoes the first one (all volumes as before, nothing left over)', async () => {
    const { root, config, data, backupId } = await twoVolumes('undo');
    fs.writeFileSync(path.join(config, 'app.yaml'), 'changed after the backup\n');
    // The application replaced a directory the restore goes through by a file.
    fs.rmSync(path.join(data, 'db'), { recursive: true });
    fs.writeFileSync(path.join(data, 'db'), 'now a file');
    const before = { config: snapshotTree(config), data: snapshotTree(data) };
    const job = await restore(cairn, backupId, { volumes: ['config', 'data'], paths: ['config', 'data/db/tables/orders.dat'] });
    expect(job.status, JSON.stringify(job)).toBe('failed');
    expect({ config: snapshotTree(config), data: snapshotTree(data) }).toEqual(before);
    expect(cairnNames(root)).toEqual([]);
  });

  it('never writes through a symlink the volume holds', async () => {
    const { root, data, backupId } = await twoVolumes('symlink');
    write(outside, { 'tables/orders.dat': 'a file outside every volume' });
    fs.rmSync(path.join(data, 'db'), { recursive: true });
    fs.symlinkSync(outside, path.join(data, 'db'));
    const job = await restore(cairn, backupId, { paths: ['data/db/tables/orders.dat'] });
    expect(job.status, JSON.stringify(job)).toBe('failed');
    expect(job.errorCode).toBe('unsafe-path');
    expect(fs.readFileSync(path.join(outside, 'tables/orders.dat'), 'utf8')).toBe('a file outside every volume');
    expect(fs.readdirSync(outside)).toEqual(['tables']);
    expect(cairnNames(root)).toEqual([]);
  });

  it('refuses to restore a volume that holds another instance’s volume (it would be replaced and deleted)', async () => {
    const parent = path.join(cairn.volumeRoot, 'outer/data');
    write(parent, { 'outer.txt': 'outer v1' });
    const outerId = await createInstance(cairn, 'outer', [{ name: 'data', hostPath: parent }]);
    const inner = path.join(parent, 'inner');
    write(inner, { 'inner.txt': 'inner v1' });
    // The gateway refuses nested host paths; a symlink hides the nesting from it, not from the worker.
    const innerLink = path.join(cairn.volumeRoot, 'inner-link');
    fs.symlinkSync(inner, innerLink);
    await createInstance(cairn, 'inner', [{ name: 'data', hostPath: innerLink }]);
    const backupId = await backupOf(cairn, outerId);
    fs.writeFileSync(path.join(inner, 'inner.txt'), 'inner v2: written by the other instance after the backup');
    const before = snapshotTree(parent);
    const job = await restore(cairn, backupId, {});
    expect(job.status, JSON.stringify(job)).toBe('failed');
    expect(job.error).toMatch(/volume data of instance inner .* lies inside it/);
    expect(snapshotTree(parent)).toEqual(before);
  });

  it('creates nothing outside the volume roots for a target whose path leads out through a symlink', async () => {
    const src = path.join(cairn.volumeRoot, 'src/data');
    write(src, { 'f.txt': 'f' });
    const srcId = await createInstance(cairn, 'src', [{ name: 'data', hostPath: src }]);
    const backupId = await backupOf(cairn, srcId);
    fs.mkdirSync(path.join(cairn.volumeRoot, 'tgt'), { recursive: true });
    fs.symlinkSync(outside, path.join(cairn.volumeRoot, 'tgt/link'));
    const tgtId = await createInstance(cairn, 'tgt', [{ name: 'data', hostPath: path.join(cairn.volumeRoot, 'tgt/link/newvol') }]);
    const job = await restore(cairn, backupId, { targetInstanceId: tgtId });
    expect(job.status, JSON.stringify(job)).toBe('failed');
    expect(job.errorCode).toBe('unsafe-path');
    expect(fs.existsSync(path.join(outside, 'newvol'))).toBe(false);
  });
});

describe('backup and job records under failures and races', () => {
  let cairn: Cairn;

  beforeAll(async () => {
    cairn = await startCairn({ nodeWorker: 'none' });
    await cairn.prisma.node.upsert({
      where: { id: cairn.nodeId },
      create: { id: cairn.nodeId, volumeRoots: [cairn.volumeRoot], lastHeartbeatAt: new Date() },
      update: {},
    });
  });
  afterAll(async () => {
    await cairn?.stopInProcessNodeWorker();
    await cairn?.close();
  });

  /** The records, except that `jobs.transition` to a status in `failing` is replaced by `fail()`. */
  function flakyRecords(records: Records, failing: { on: boolean; to: string; fail: () => Promise<boolean> }): Records {
    const jobs = { ...records.jobs };
    jobs.transition = (id, from, to, changes) => (failing.on && to === failing.to ? failing.fail() : records.jobs.transition(id, from, to, changes));
    return Object.assign(Object.create(records) as Records, { jobs });
  }

  /** One attempt of a backup job through the job lifecycle, as the node worker runs it. */
  function runBackup(ctx: NodeContext, jobId: string, attempt: number) {
    const lifecycle = new JobLifecycle({ jobs: ctx.records.jobs, logger: ctx.logger, nodeId: ctx.nodeId, settleDelayMs: 20 });
    return lifecycle.execute(
      { name: 'backup', record: { kind: 'existing', jobId }, attempt, attempts: 5, signal: new AbortController().signal },
      new BackupJob(ctx),
    );
  }

  it('keeps the objects of a completed backup when recording the job fails, and a retry records the success', async () => {
    const dir = path.join(cairn.volumeRoot, 'flaky/data');
    write(dir, { 'f.txt': 'some data' });
    const instanceId = await createInstance(cairn, 'flaky', [{ name: 'data', hostPath: dir }]);
    const res = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, {});
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const { backup, job } = res.body;

    const failing = { on: true, to: 'succeeded', fail: () => Promise.reject(new Error('Connection terminated unexpectedly')) };
    const logger = createLogger({ level: 'silent', name: 'test' });
    const ctx: NodeContext = {
      nodeId: cairn.nodeId,
      volumeRoots: [cairn.volumeRoot],
      records: flakyRecords(cairn.runtime.records, failing),
      store: cairn.runtime.store,
      logger,
      config: cairn.config,
      queues: { enqueueControl: async () => {} },
    };

    await expect(runBackup(ctx, job.id, 1)).rejects.toMatchObject({ code: 'unavailable', permanent: false });
    const row = await cairn.prisma.backup.findUniqueOrThrow({ where: { id: backup.id } });
    expect(row.status).toBe('completed');
    const keys: string[] = [];
    for await (const o of cairn.runtime.store.listAll(backupPrefix(instanceId, backup.id))) keys.push(o.key);
    // Before the fix the catch-all deleted both objects: a completed row pointing at nothing.
    expect(keys.sort()).toEqual([row.indexKey, row.storageKey, manifestKey(instanceId, backup.id)].sort()); // the manifest: issue 14

    failing.on = false;
    await expect(runBackup(ctx, job.id, 2)).resolves.toMatchObject({ status: 'succeeded', result: { backupId: backup.id } });
    const after = await cairn.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
    // Before the fix the rerun marked it `cancelled` ("backup is completed").
    expect(after.status).toBe('succeeded');
    expect((await cairn.prisma.backup.findUniqueOrThrow({ where: { id: backup.id } })).sha256).toBe(row.sha256);
    // The BullMQ job of this request is still waiting; drop it so no worker picks it up.
    const queues = new JobQueues(createRedis(cairn.config.REDIS_URL), cairn.config.QUEUE_PREFIX);
    await queues.nodeQueue(cairn.nodeId).remove(job.id);
    await queues.close();
  });

  it('reports the object store’s own error when the upload fails mid-archive (a permanent one is not retried)', async () => {
    const dir = path.join(cairn.volumeRoot, 'rootcause/data');
    write(dir, { 'big.bin': 'x'.repeat(3 << 20) });
    const instanceId = await createInstance(cairn, 'rootcause', [{ name: 'data', hostPath: dir }]);
    const res = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, {});
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const { backup, job } = res.body;
    const real = cairn.runtime.store;
    // Like S3ObjectStore.put on a 4xx: the body is destroyed, then the put rejects (after its cleanup).
    const store = Object.create(real) as typeof real;
    // This put is faked here, on the main thread: the store thread would make the real one.
    store.threadSpec = () => undefined;
    store.put = async (key, body, opts) => {
      if (key !== backup.storageKey || Buffer.isBuffer(body)) return real.put(key, body, opts);
      await new Promise((r) => body.once('data', r));
      body.destroy();
      await new Promise((r) => setTimeout(r, 50));
      throw new CairnError('internal', 'put of archive failed: InvalidPart: one or more of the specified parts could not be found');
    };
    const logger = createLogger({ level: 'silent', name: 'test' });
    const ctx: NodeContext = {
      nodeId: cairn.nodeId,
      volumeRoots: [cairn.volumeRoot],
      records: cairn.runtime.records,
      store,
      logger,
      config: cairn.config,
      queues: { enqueueControl: async () => {} },
    };
    // Before the fix the packer's "output stream closed" error won: a retry, and the cause was lost.
    await expect(runBackup(ctx, job.id, 1)).rejects.toThrow(/InvalidPart/);
    const after = await cairn.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
    expect(after.status).toBe('failed');
    expect(after.error).toMatch(/InvalidPart/);
    expect((await cairn.prisma.backup.findUniqueOrThrow({ where: { id: backup.id } })).status).toBe('failed');
    const queues = new JobQueues(createRedis(cairn.config.REDIS_URL), cairn.config.QUEUE_PREFIX);
    await queues.nodeQueue(cairn.nodeId).remove(job.id);
    await queues.close();
  });

  it('records the real error when the Postgres connection is killed during the terminal write', async () => {
    const dir = path.join(cairn.volumeRoot, 'killed/data');
    fs.mkdirSync(dir, { recursive: true }); // empty: the backup fails with no-data
    const instanceId = await createInstance(cairn, 'killed', [{ name: 'data', hostPath: dir }]);
    const res = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, {});
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const { backup, job } = res.body;
    const queues = new JobQueues(createRedis(cairn.config.REDIS_URL), cairn.config.QUEUE_PREFIX);
    await queues.nodeQueue(cairn.nodeId).remove(job.id);
    await queues.close();

    // The first write of the `failed` outcome runs on a pooled connection that Postgres then
    // terminates (as a restart or failover would): that write fails for real.
    const kills: string[] = [];
    const failing = {
      on: true,
      to: 'failed',
      fail: async () => {
        failing.on = false;
        try {
          await cairn.prisma.$executeRaw`SELECT pg_terminate_backend(pg_backend_pid())`;
        } catch (err) {
          kills.push((err as Error).message);
          throw err;
        }
        throw new Error('the connection was not terminated');
      },
    };
    const ctx: NodeContext = {
      nodeId: cairn.nodeId,
      volumeRoots: [cairn.volumeRoot],
      records: flakyRecords(cairn.runtime.records, failing),
      store: cairn.runtime.store,
      logger: createLogger({ level: 'silent', name: 'test' }),
      config: cairn.config,
      queues: { enqueueControl: async () => {} },
    };
    await expect(runBackup(ctx, job.id, 1)).rejects.toThrow(/no-data: nothing to back up/);
    expect(kills).toHaveLength(1);
    expect(kills[0]).toMatch(/terminat/i);
    const after = await cairn.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
    expect(after.status).toBe('failed');
    expect(after.errorCode).toBe('no-data');
    expect(after.error).toMatch(/nothing to back up: volume data has no data/);
    expect((await cairn.prisma.backup.findUniqueOrThrow({ where: { id: backup.id } })).status).toBe('failed');
  });

  it('honours a cancel that arrives before the processor is registered', async () => {
    await cairn.startInProcessNodeWorker();
    const dir = path.join(cairn.volumeRoot, 'early/data');
    write(dir, { 'f.txt': 'some data' });
    const instanceId = await createInstance(cairn, 'early', [{ name: 'data', hostPath: dir }]);
    const backupId = newId();
    const jobId = newId();
    const { prisma } = cairn;
    await prisma.backup.create({
      data: {
        id: backupId,
        instanceId,
        status: 'pending',
        trigger: 'manual',
        volumes: [],
        storageKey: `${backupPrefix(instanceId, backupId)}archive.tar.zst`,
        indexKey: `${backupPrefix(instanceId, backupId)}index.json.gz`,
        compression: 'zstd',
        requestedBy: 'system',
      },
    });
    await prisma.job.create({
      data: { id: jobId, type: 'backup', status: 'queued', instanceId, backupId, nodeId: cairn.nodeId, queue: `node.${cairn.nodeId}`, requestedBy: 'system' },
    });
    // The gateway saw the job active and signalled; the worker had not registered its processor yet.
    const redis = createRedis(cairn.config.REDIS_URL);
    await redis.publish(cancelChannel(cairn.config.QUEUE_PREFIX), JSON.stringify({ jobId, reason: 'cancelled by token t' }));
    await new Promise((r) => setTimeout(r, 300));
    const queues = new JobQueues(redis, cairn.config.QUEUE_PREFIX);
    await queues.enqueueNode(cairn.nodeId, 'backup', { jobId });
    const done = await cairn.waitForJob(jobId);
    await queues.close();
    redis.disconnect();
    expect(done.status).toBe('cancelled');
    expect((await prisma.backup.findUniqueOrThrow({ where: { id: backupId } })).status).toBe('cancelled');
    const keys: string[] = [];
    for await (const o of cairn.runtime.store.listAll(backupPrefix(instanceId, backupId))) keys.push(o.key);
    expect(keys).toEqual([]);
  });

  it('at start does not interrupt a queued job that is only about to be enqueued', async () => {
    await cairn.stopInProcessNodeWorker();
    const dir = path.join(cairn.volumeRoot, 'fresh/data');
    write(dir, { 'f.txt': 'x' });
    const instanceId = await createInstance(cairn, 'fresh', [{ name: 'data', hostPath: dir }]);
    const jobId = newId();
    await cairn.prisma.job.create({
      data: { id: jobId, type: 'restore', status: 'queued', instanceId, nodeId: cairn.nodeId, queue: `node.${cairn.nodeId}`, requestedBy: 'system' },
    });
    await cairn.startInProcessNodeWorker();
    expect((await cairn.prisma.job.findUniqueOrThrow({ where: { id: jobId } })).status).toBe('queued');
    await cairn.prisma.job.update({ where: { id: jobId }, data: { status: 'cancelled' } });
  });
});

describe('restore of a volume that is a volume root', () => {
  let cairn: Cairn;
  beforeAll(async () => {
    cairn = await startCairn();
  });
  afterAll(async () => {
    await cairn?.close();
  });

  it('applies in place: nothing is staged or renamed outside the roots', async () => {
    write(cairn.volumeRoot, { 'f.txt': 'v1', 'sub/g.txt': 'g' });
    const id = await createInstance(cairn, 'rooted', [{ name: 'data', hostPath: cairn.volumeRoot }]);
    const backupId = await backupOf(cairn, id);
    fs.writeFileSync(path.join(cairn.volumeRoot, 'f.txt'), 'v2');
    fs.writeFileSync(path.join(cairn.volumeRoot, 'extra.txt'), 'not in the backup');
    const parent = path.dirname(cairn.volumeRoot);
    const job = await restore(cairn, backupId, {});
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    expect(job.result.notes.join(' ')).toMatch(/moved into place/);
    expect(fs.readFileSync(path.join(cairn.volumeRoot, 'f.txt'), 'utf8')).toBe('v1');
    expect(fs.existsSync(path.join(cairn.volumeRoot, 'extra.txt'))).toBe(false);
    expect(cairnNames(cairn.volumeRoot)).toEqual([]);
    expect(cairnNames(parent).filter((n) => n.endsWith(path.basename(cairn.volumeRoot)))).toEqual([]);
  });
});
