import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCairn, type Cairn } from '../support/cairn-harness.ts';
import { startFaultStack, type FaultStack } from '../support/fault-stack.ts';
import { isPartUpload } from '../support/s3-fault-proxy.ts';

/**
 * Issue 16: Cairn rides out its dependencies failing. This suite runs on a Postgres and a Redis of
 * its own (it stops and restarts them) and sends S3 traffic through a fault-injecting proxy; the
 * node worker is a process of its own (the last test kills it). Short reconcile intervals are set
 * here; the defaults are in the README.
 */

const PG_OUTAGE_MS = 90_000;
const MIB = 1024 * 1024;

const terminal = (j: any) => ['succeeded', 'failed', 'cancelled', 'interrupted'].includes(j.status);
const uploading = (j: any) => j.status === 'running' && Number(j.progress?.bytesDone ?? 0) > 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('faults and reconciliation', () => {
  let stack: FaultStack;
  let cairn: Cairn;
  let worker: ChildProcess;

  /** An instance whose one volume holds `mib` MiB of incompressible data (uploads take a while behind the throttle). */
  async function instance(name: string, mib: number): Promise<string> {
    const dir = path.join(cairn.volumeRoot, name, 'data');
    fs.mkdirSync(dir, { recursive: true });
    for (let i = 0; i < mib; i++) fs.writeFileSync(path.join(dir, `blob-${i}.bin`), randomBytes(MIB));
    const res = await cairn.api('POST', '/v1/instances', { name, nodeId: cairn.nodeId, tenant: cairn.tenant, volumes: [{ name: 'data', hostPath: dir }] });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.id;
  }

  async function backup(instanceId: string): Promise<{ jobId: string; backupId: string }> {
    const res = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, {});
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return { jobId: res.body.job.id, backupId: res.body.backup.id };
  }

  /** Starts the node worker process and waits for its first heartbeat. */
  async function startWorker(): Promise<ChildProcess> {
    const since = new Date();
    const child = cairn.spawnNodeWorker();
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(200)) {
      const node = await cairn.prisma.node.findUnique({ where: { id: cairn.nodeId } });
      if (node?.lastHeartbeatAt && node.lastHeartbeatAt >= since) return child;
    }
    throw new Error('the node worker did not start');
  }

  /** Jobs that would keep an instance locked (this suite's database holds only its own). */
  const unfinishedJobs = () => cairn.prisma.job.findMany({ where: { status: { in: ['queued', 'running'] }, type: { in: ['backup', 'restore'] } } });

  beforeAll(async () => {
    stack = await startFaultStack({ s3Upstream: process.env.S3_ENDPOINT! });
    cairn = await startCairn({
      nodeWorker: 'none',
      reconcileLostJobs: true,
      env: {
        ...stack.env,
        S3_PREFIX: `faults-${process.env.CAIRN_TEST_RUN_ID ?? 'dev'}-${process.pid}`,
        RECONCILE_EVERY: '3s',
        LOST_JOB_GRACE: '2s',
        NODE_DEAD_AFTER: '30s',
        DB_OUTAGE_TOLERANCE: '5m',
        // Above the longest silence a throttled upload has here: the client has written the body into
        // loopback socket buffers (megabytes) and waits while the proxy drains them at the throttle's rate.
        S3_SOCKET_TIMEOUT: '12s',
        S3_REQUEST_TIMEOUT: '60s',
        WORKER_CONCURRENCY: '1',
      },
    });
    worker = await startWorker();
  });
  afterAll(async () => {
    await cairn?.close();
    await stack?.close();
  });

  it('an S3 transfer stalled forever times out and is tried again; a reset upload reports the S3 error', async () => {
    const instanceId = await instance('stall', 8);
    stack.s3.stall(isPartUpload);
    const started = Date.now();
    const stalled = await backup(instanceId);
    const done = await cairn.waitForJob(stalled.jobId, terminal, 60_000);
    expect(done.status, JSON.stringify(done)).toBe('succeeded');
    expect(stack.s3.faults.stalled).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(12_000); // waited out S3_SOCKET_TIMEOUT once
    expect((await cairn.api('GET', `/v1/backups/${stalled.backupId}`)).body.status).toBe('completed');

    // Every try of the upload (one PutObject: the archive is below the part size) is cut mid-body:
    // the attempt fails with the store's error, not with the packer's "output closed"; a later
    // attempt succeeds and clears it.
    stack.s3.reset((r) => r.method === 'PUT' && /\/archive\./.test(r.path), 256 * 1024, 3);
    const reset = await backup(await instance('reset', 2));
    const retrying = await cairn.waitForJob(reset.jobId, (j) => terminal(j) || (j.status === 'queued' && !!j.error), 60_000);
    expect(retrying.status, JSON.stringify(retrying)).toBe('queued');
    expect(retrying.error).toMatch(/attempt 1 failed, will retry: put of .* failed: .*(ECONNRESET|socket hang up|EPIPE)/i);
    expect(retrying.error).not.toMatch(/output stream closed/);
    const finished = await cairn.waitForJob(reset.jobId, terminal, 60_000);
    expect(finished).toMatchObject({ status: 'succeeded', error: null, errorCode: null });
    expect(finished.attempts).toBeGreaterThanOrEqual(2);
    expect(stack.s3.faults.reset).toBe(3);
  }, 180_000);

  it(`Postgres stopped for ${PG_OUTAGE_MS / 1000} s mid-backup: the uploaded backup is committed once it is back`, async () => {
    const instanceId = await instance('pg-outage', 12);
    stack.s3.throttle(2 * MIB);
    const { jobId, backupId } = await backup(instanceId);
    await cairn.waitForJob(jobId, uploading, 60_000);
    await stack.stopPostgres();
    await sleep(PG_OUTAGE_MS);
    stack.s3.throttle(null);
    await stack.startPostgres();
    const back = Date.now();
    const done = await cairn.waitForJob(jobId, terminal, 60_000);
    expect(done.status, JSON.stringify(done)).toBe('succeeded');
    expect(Date.now() - back).toBeLessThan(60_000);
    const row = await cairn.prisma.backup.findUniqueOrThrow({ where: { id: backupId } });
    expect(row.status).toBe('completed');
    expect(Number(row.sizeBytes)).toBeGreaterThan(12 * MIB);
    expect(await unfinishedJobs()).toEqual([]);
    // The instance is free: a new backup is accepted and runs.
    const next = await backup(instanceId);
    expect((await cairn.waitForJob(next.jobId, terminal, 60_000)).status).toBe('succeeded');
  }, 240_000);

  it('Redis restarted empty: the running and the queued backup are enqueued again and run', async () => {
    // Throttled before either starts: unthrottled, the first could finish (and the second run)
    // before the check below, on a quiet machine. 12 MiB at 1 MiB/s: the upload outlasts the
    // progress write that shows its bytes (up to a second late under load) by far.
    stack.s3.throttle(1 * MIB);
    const first = await backup(await instance('redis-a', 12));
    const second = await backup(await instance('redis-b', 2));
    await cairn.waitForJob(first.jobId, uploading, 60_000);
    await sleep(2500); // the queued one is past LOST_JOB_GRACE
    expect((await cairn.api('GET', `/v1/jobs/${second.jobId}`)).body.status).toBe('queued');
    await stack.restartRedisEmpty();
    const restarted = Date.now();
    stack.s3.throttle(null);
    for (const { jobId, backupId } of [first, second]) {
      const done = await cairn.waitForJob(jobId, terminal, 90_000);
      expect(done.status, JSON.stringify(done)).toBe('succeeded');
      expect((await cairn.prisma.backup.findUniqueOrThrow({ where: { id: backupId } })).status).toBe('completed');
    }
    expect(Date.now() - restarted).toBeLessThan(75_000);
    expect(await unfinishedJobs()).toEqual([]);
  }, 180_000);

  it('a node worker killed and not restarted: its job is settled and the instance unlocked', async () => {
    const instanceId = await instance('dead-node', 12);
    stack.s3.throttle(1 * MIB);
    const { jobId, backupId } = await backup(instanceId);
    await cairn.waitForJob(jobId, uploading, 60_000);
    worker.kill('SIGKILL');
    await new Promise((r) => worker.once('exit', r));
    const killed = Date.now();
    const done = await cairn.waitForJob(jobId, terminal, 120_000);
    stack.s3.throttle(null);
    expect(done).toMatchObject({ status: 'interrupted', errorCode: 'interrupted' });
    expect(done.error).toMatch(new RegExp(`node ${cairn.nodeId} is offline`));
    expect(Date.now() - killed).toBeLessThan(120_000);
    const row = await cairn.prisma.backup.findUniqueOrThrow({ where: { id: backupId } });
    expect(row.status).toBe('failed');
    // Its half-written upload is aborted right after the rows are settled.
    for (const deadline = Date.now() + 15_000; Date.now() < deadline; await sleep(200))
      if ((await cairn.runtime.store.listIncompleteUploads(`instances/${instanceId}/`)).length === 0) break;
    expect(await cairn.runtime.store.listIncompleteUploads(`instances/${instanceId}/`)).toEqual([]);
    expect(await unfinishedJobs()).toEqual([]);
    // Unlocked: a new backup is accepted (it waits for the node, which the reconciler settles too).
    const next = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, {});
    expect(next.status, JSON.stringify(next.body)).toBe(202);
  }, 180_000);
});
