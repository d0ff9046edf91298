import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishJobChange } from '@cairn/core';
import { startTestGateway, type TestGateway } from './gateway-harness.ts';

let gw: TestGateway;
let nodeId: string;
let member: string;
const root = '/srv/bk';
let n = 0;

beforeAll(async () => {
  gw = await startTestGateway({ MANUAL_BACKUP_LIMIT: '3' });
  nodeId = `bk-${gw.tag}`;
  await gw.node(nodeId, [root]);
  member = (await gw.token('member', `bk-${gw.tag}`)).token;
});

afterAll(async () => {
  await gw?.close();
});

async function instance(volumes = ['data', 'logs']): Promise<{ id: string; name: string }> {
  const name = `i${++n}`;
  const res = await gw.api('POST', '/v1/instances', {
    token: member,
    body: { name, nodeId, volumes: volumes.map((v) => ({ name: v, hostPath: `${root}/${name}/${v}` })) },
  });
  expect(res.status).toBe(201);
  return res.body;
}

/** Marks a backup completed (and its job succeeded) as a worker would. */
async function complete(backupId: string, jobId: string): Promise<void> {
  await gw.prisma.backup.update({ where: { id: backupId }, data: { status: 'completed', completedAt: new Date(), sizeBytes: 10n, sha256: 'x' } });
  await gw.prisma.job.update({ where: { id: jobId }, data: { status: 'succeeded', finishedAt: new Date() } });
}

describe('starting a backup', () => {
  it('answers 202 with a pending backup and a queued job, enqueued on node.<id> under the job id', async () => {
    const inst = await instance();
    const res = await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member, body: { volumes: ['data'] } });
    expect(res.status).toBe(202);
    const { backup, job } = res.body;
    expect(backup).toMatchObject({
      instanceId: inst.id,
      status: 'pending',
      trigger: 'manual',
      kind: 'full',
      volumes: ['data'],
      compression: gw.config.COMPRESSION,
    });
    expect(backup.storageKey).toBe(`instances/${inst.id}/backups/${backup.id}/archive.tar.${gw.config.COMPRESSION === 'gzip' ? 'gz' : 'zst'}`);
    expect(backup.indexKey).toBe(`instances/${inst.id}/backups/${backup.id}/index.json.gz`);
    expect(job).toMatchObject({ type: 'backup', status: 'queued', instanceId: inst.id, backupId: backup.id, nodeId, queue: `node.${nodeId}` });

    const rowB = await gw.prisma.backup.findUnique({ where: { id: backup.id } });
    const rowJ = await gw.prisma.job.findUnique({ where: { id: job.id } });
    expect(rowB!.status).toBe('pending');
    expect(rowJ!.status).toBe('queued');
    const queued = await gw.jobQueues.nodeQueue(nodeId).getJob(job.id);
    expect(queued).toBeDefined();
    expect(queued!.name).toBe('backup');
    expect(queued!.data).toEqual({ jobId: job.id });
    expect(await queued!.getState()).toBe('waiting');

    expect((await gw.api('GET', `/v1/backups/${backup.id}`, { token: member })).body).toEqual(backup);
  });

  it('refuses a second backup while one is queued (409 with the job id)', async () => {
    const inst = await instance();
    const first = await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member });
    expect(first.status).toBe(202);
    const second = await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member });
    expect(second.status).toBe(409);
    expect(second.body).toEqual({ error: { code: 'conflict', message: expect.stringContaining(first.body.job.id), details: { jobId: first.body.job.id } } });
  });

  it('lets only one of several concurrent requests through', async () => {
    const inst = await instance();
    const results = await Promise.all(Array.from({ length: 4 }, () => gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member })));
    expect(results.map((r) => r.status).sort()).toEqual([202, 409, 409, 409]);
    expect(await gw.prisma.backup.count({ where: { instanceId: inst.id } })).toBe(1);
  });

  it('validates the volume subset and refuses an instance with nothing to back up', async () => {
    const inst = await instance();
    const res = await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member, body: { volumes: ['data', 'nope'] } });
    expect(res.status).toBe(400);
    expect(res.body.error.details).toEqual([{ path: 'volumes.1', message: expect.stringContaining('no volume nope') }]);
    const extra = await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member, body: { full: true } });
    expect(extra.status).toBe(400);
    expect(extra.body.error.details).toEqual([{ path: 'full', message: 'unknown field' }]);

    const other = await instance(['only']);
    await gw.prisma.volume.updateMany({ where: { instanceId: other.id }, data: { hostPath: '/outside/only' } });
    const nothing = await gw.api('POST', `/v1/instances/${other.id}/backups`, { token: member });
    expect(nothing.status).toBe(422);
    expect(nothing.body.error.code).toBe('no-data');
  });

  it('answers 429 past the manual backup limit', async () => {
    const inst = await instance();
    for (let i = 0; i < 3; i++) {
      const res = await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member });
      expect(res.status).toBe(202);
      await complete(res.body.backup.id, res.body.job.id);
    }
    const over = await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member });
    expect(over.status).toBe(429);
    expect(over.body.error).toMatchObject({ code: 'limit', message: expect.stringMatching(/limit 3/) });

    // Deleting one makes room again.
    const list = await gw.api('GET', `/v1/instances/${inst.id}/backups`, { token: member });
    expect((await gw.api('DELETE', `/v1/backups/${list.body.items[0].id}`, { token: member })).status).toBe(202);
    expect((await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member })).status).toBe(202);
  });

  it('lists backups newest first with status/trigger filters and a cursor', async () => {
    const inst = await instance();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member });
      ids.push(res.body.backup.id);
      await complete(res.body.backup.id, res.body.job.id);
    }
    await gw.prisma.backup.update({ where: { id: ids[0]! }, data: { status: 'failed' } });
    const page1 = await gw.api('GET', `/v1/instances/${inst.id}/backups?limit=2`, { token: member });
    expect(page1.body.items.map((b: { id: string }) => b.id)).toEqual([ids[2], ids[1]]);
    const page2 = await gw.api('GET', `/v1/instances/${inst.id}/backups?limit=2&cursor=${page1.body.nextCursor}`, { token: member });
    expect(page2.body).toMatchObject({ items: [{ id: ids[0] }], nextCursor: null });
    const failed = await gw.api('GET', `/v1/instances/${inst.id}/backups?status=failed`, { token: member });
    expect(failed.body.items.map((b: { id: string }) => b.id)).toEqual([ids[0]]);
    const several = await gw.api('GET', `/v1/instances/${inst.id}/backups?status=failed,completed&trigger=manual`, { token: member });
    expect(several.body.items).toHaveLength(3);
    const bad = await gw.api('GET', `/v1/instances/${inst.id}/backups?status=done`, { token: member });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details[0].path).toBe('status');
  });

  it('filters backups by the volume they include', async () => {
    const inst = await instance();
    const both = (await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member })).body;
    await complete(both.backup.id, both.job.id);
    const logs = (await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member, body: { volumes: ['logs'] } })).body;
    const ids = async (q: string) =>
      (await gw.api('GET', `/v1/instances/${inst.id}/backups?${q}`, { token: member })).body.items.map((b: { id: string }) => b.id);
    expect(await ids('volume=logs')).toEqual([logs.backup.id, both.backup.id].sort().reverse());
    expect(await ids('volume=data')).toEqual([both.backup.id]);
    expect(await ids('volume=nothing')).toEqual([]);
    const bad = await gw.api('GET', `/v1/instances/${inst.id}/backups?volume=${encodeURIComponent('../x')}`, { token: member });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details[0].path).toBe('volume');
  });
});

describe('deleting backups', () => {
  it('soft-deletes: deleting + deletedAt, a cleanup job on control, and the queued backup job cancelled', async () => {
    const inst = await instance();
    const { backup, job } = (await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member })).body;
    const res = await gw.api('DELETE', `/v1/backups/${backup.id}`, { token: member });
    expect(res.status).toBe(202);
    expect(res.body.backup).toMatchObject({ id: backup.id, status: 'deleting', deletedAt: expect.any(String) });
    expect(res.body.job).toMatchObject({ type: 'cleanup', status: 'queued', backupId: backup.id, queue: 'control' });

    const cleanup = await gw.jobQueues.queue('control').getJob(res.body.job.id);
    expect(cleanup!.name).toBe('cleanup');
    expect(cleanup!.data).toEqual({ backupId: backup.id, jobId: res.body.job.id });
    // The backup job that was still queued is removed and cancelled.
    expect(await gw.jobQueues.nodeQueue(nodeId).getJob(job.id)).toBeUndefined();
    expect((await gw.prisma.job.findUnique({ where: { id: job.id } }))!.status).toBe('cancelled');

    // Repeating the delete reuses the cleanup job.
    const again = await gw.api('DELETE', `/v1/backups/${backup.id}`, { token: member });
    expect(again.status).toBe(202);
    expect(again.body.job.id).toBe(res.body.job.id);
    // Deleted backups leave the default listing only once the cleanup marked them deleted.
    await gw.prisma.backup.update({ where: { id: backup.id }, data: { status: 'deleted' } });
    const list = await gw.api('GET', `/v1/instances/${inst.id}/backups`, { token: member });
    expect(list.body.items).toEqual([]);
  });

  it('batch-deletes with one result per id', async () => {
    const inst = await instance();
    const a = (await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member })).body;
    await complete(a.backup.id, a.job.id);
    const other = (await gw.token('member', `bk-other-${gw.tag}`)).token;
    const foreignInst = (
      await gw.api('POST', '/v1/instances', { token: other, body: { name: 'f', nodeId, volumes: [{ name: 'd', hostPath: `${root}/foreign` }] } })
    ).body;
    const foreign = (await gw.api('POST', `/v1/instances/${foreignInst.id}/backups`, { token: other })).body;

    const res = await gw.api('POST', '/v1/backups/delete', { token: member, body: { ids: [a.backup.id, 'missing1', foreign.backup.id] } });
    expect(res.status).toBe(200);
    expect(res.body.results).toEqual([
      { id: a.backup.id, ok: true, status: 'deleting', jobId: expect.any(String) },
      { id: 'missing1', ok: false, error: { code: 'not-found', message: expect.any(String) } },
      { id: foreign.backup.id, ok: false, error: { code: 'not-found', message: expect.any(String) } },
    ]);
    expect((await gw.prisma.backup.findUnique({ where: { id: foreign.backup.id } }))!.status).toBe('pending');
    const invalid = await gw.api('POST', '/v1/backups/delete', { token: member, body: { ids: [] } });
    expect(invalid.status).toBe(400);
  });
});

describe('restore requests', () => {
  it('refuses a backup that is not completed (409)', async () => {
    const inst = await instance();
    const { backup, job } = (await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member })).body;
    await gw.prisma.backup.update({ where: { id: backup.id }, data: { status: 'failed' } });
    await gw.prisma.job.update({ where: { id: job.id }, data: { status: 'failed' } });
    const res = await gw.api('POST', `/v1/backups/${backup.id}/restore`, { token: member, body: {} });
    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({ code: 'conflict', details: { status: 'failed' } });
  });

  it('validates volumes against the backup and the target, and paths', async () => {
    const source = await instance(['data', 'logs']);
    const { backup, job } = (await gw.api('POST', `/v1/instances/${source.id}/backups`, { token: member })).body;
    await complete(backup.id, job.id);
    const target = await instance(['data']);

    const missingOnTarget = await gw.api('POST', `/v1/backups/${backup.id}/restore`, { token: member, body: { targetInstanceId: target.id } });
    expect(missingOnTarget.status).toBe(400);
    expect(missingOnTarget.body.error.message).toContain('logs');
    expect(missingOnTarget.body.error.details).toEqual([{ path: 'targetInstanceId', message: expect.stringContaining('no volume named logs') }]);

    const named = await gw.api('POST', `/v1/backups/${backup.id}/restore`, { token: member, body: { targetInstanceId: target.id, volumes: ['data', 'logs'] } });
    expect(named.status).toBe(400);
    expect(named.body.error.details).toEqual([{ path: 'volumes.1', message: expect.stringContaining('logs') }]);

    const notInBackup = await gw.api('POST', `/v1/backups/${backup.id}/restore`, { token: member, body: { volumes: ['cache'] } });
    expect(notInBackup.status).toBe(400);

    const badPaths = await gw.api('POST', `/v1/backups/${backup.id}/restore`, {
      token: member,
      body: { paths: ['/data/x', 'data/../etc', 'data/ok/', 'other/x'], mode: 'sideways' },
    });
    expect(badPaths.status).toBe(400);
    expect(badPaths.body.error.details.map((d: { path: string }) => d.path)).toEqual(['paths.0', 'paths.1', 'paths.2', 'mode']);

    const foreign = (await gw.token('member', `bk-rt-${gw.tag}`)).token;
    const foreignTarget = (
      await gw.api('POST', '/v1/instances', { token: foreign, body: { name: 'ft', nodeId, volumes: [{ name: 'data', hostPath: `${root}/ft` }] } })
    ).body;
    const cross = await gw.api('POST', `/v1/backups/${backup.id}/restore`, { token: member, body: { targetInstanceId: foreignTarget.id } });
    expect(cross.status).toBe(404);
  });

  it('creates a queued restore job on the target node, then refuses a second one (409)', async () => {
    const source = await instance(['data', 'logs']);
    const { backup, job } = (await gw.api('POST', `/v1/instances/${source.id}/backups`, { token: member })).body;
    await complete(backup.id, job.id);
    const otherNode = `bk-target-${gw.tag}`;
    await gw.node(otherNode, ['/srv/target']);
    const target = (
      await gw.api('POST', '/v1/instances', {
        token: member,
        body: { name: 'tgt', nodeId: otherNode, volumes: [{ name: 'data', hostPath: '/srv/target/data' }] },
      })
    ).body;

    const res = await gw.api('POST', `/v1/backups/${backup.id}/restore`, {
      token: member,
      body: { targetInstanceId: target.id, volumes: ['data'], mode: 'merge' },
    });
    expect(res.status).toBe(202);
    expect(res.body.job).toMatchObject({
      type: 'restore',
      status: 'queued',
      instanceId: source.id,
      backupId: backup.id,
      targetInstanceId: target.id,
      nodeId: otherNode,
      queue: `node.${otherNode}`,
      params: { volumes: ['data'], mode: 'merge' },
    });
    const queued = await gw.jobQueues.nodeQueue(otherNode).getJob(res.body.job.id);
    expect(queued!.name).toBe('restore');

    const second = await gw.api('POST', `/v1/backups/${backup.id}/restore`, { token: member, body: { targetInstanceId: target.id, volumes: ['data'] } });
    expect(second.status).toBe(409);
    expect(second.body.error.details).toEqual({ jobId: res.body.job.id });
    // A backup of the target is refused while the restore is queued; the source is free.
    expect((await gw.api('POST', `/v1/instances/${target.id}/backups`, { token: member })).status).toBe(409);
    // Deleting the backup being restored is refused.
    const del = await gw.api('DELETE', `/v1/backups/${backup.id}`, { token: member });
    expect(del.status).toBe(409);
    expect(del.body.error.details).toEqual({ jobId: res.body.job.id });
  });
});

describe('jobs', () => {
  it('cancels a queued job: removed from BullMQ, job and pending backup cancelled; then 409', async () => {
    const inst = await instance();
    const { backup, job } = (await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member })).body;
    const res = await gw.api('POST', `/v1/jobs/${job.id}/cancel`, { token: member });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: job.id, status: 'cancelled', finishedAt: expect.any(String) });
    expect(await gw.jobQueues.nodeQueue(nodeId).getJob(job.id)).toBeUndefined();
    expect((await gw.prisma.backup.findUnique({ where: { id: backup.id } }))!.status).toBe('cancelled');
    const again = await gw.api('POST', `/v1/jobs/${job.id}/cancel`, { token: member });
    expect(again.status).toBe(409);
    // The instance is free again.
    expect((await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member })).status).toBe(202);
  });

  it('signals a running job (202) over the cancel channel', async () => {
    // A node of its own, so the only waiting job in its queue is this test's.
    const own = `bk-run-${gw.tag}`;
    await gw.node(own, [root]);
    const inst = (
      await gw.api('POST', '/v1/instances', { token: member, body: { name: 'running', nodeId: own, volumes: [{ name: 'data', hostPath: `${root}/running` }] } })
    ).body;
    const { job } = (await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member })).body;
    // Make the BullMQ job active as a worker would, without running it.
    const queue = gw.jobQueues.nodeQueue(own);
    const { Worker } = await import('bullmq');
    const { createRedis } = await import('@cairn/core');
    const connection = createRedis(gw.config.REDIS_URL);
    const worker = new Worker(queue.name, null, { connection, prefix: gw.config.QUEUE_PREFIX, autorun: false });
    const subscriber = createRedis(gw.config.REDIS_URL);
    const messages: string[] = [];
    await subscriber.subscribe(`${gw.config.QUEUE_PREFIX}:cancel`);
    subscriber.on('message', (_channel, message) => messages.push(message));
    try {
      const active = await worker.getNextJob('test-token');
      expect(active?.id).toBe(job.id);
      await gw.prisma.job.update({ where: { id: job.id }, data: { status: 'running' } });
      const res = await gw.api('POST', `/v1/jobs/${job.id}/cancel`, { token: member });
      expect(res.status).toBe(202);
      expect(res.body.status).toBe('running');
      await expect.poll(() => messages.map((m) => JSON.parse(m).jobId)).toContain(job.id);
    } finally {
      await worker.close();
      connection.disconnect();
      subscriber.disconnect();
    }
  });

  it('filters the job list by instance, type, status and node', async () => {
    const inst = await instance();
    const { job } = (await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member })).body;
    const res = await gw.api('GET', `/v1/jobs?instance=${inst.id}&type=backup&status=queued&node=${nodeId}`, { token: member });
    expect(res.status).toBe(200);
    expect(res.body.items.map((j: { id: string }) => j.id)).toEqual([job.id]);
    expect((await gw.api('GET', `/v1/jobs?instance=${inst.id}&status=succeeded`, { token: member })).body.items).toEqual([]);
    expect((await gw.api('GET', '/v1/jobs?type=nonsense', { token: member })).status).toBe(400);
    expect((await gw.api('GET', `/v1/jobs/${job.id}`, { token: member })).body).toMatchObject({ id: job.id, progress: null });
  });

  it('streams job events until the job ends', async () => {
    const inst = await instance();
    const { job } = (await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member })).body;
    const res = await fetch(`${gw.url}/v1/jobs/${job.id}/events`, { headers: { authorization: `Bearer ${member}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const readUntil = async (needle: string) => {
      while (!text.includes(needle)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${needle}: ${text}`);
        text += value;
      }
    };
    await readUntil('event: state');
    expect(text).toContain('"status":"queued"');
    const progress = { stage: 'uploading', bytesDone: 5, bytesTotal: 10, filesDone: 1, filesTotal: 2, percent: 50, etaSeconds: 3 };
    // As a worker does: write the row, then publish the change notice the gateway's streams follow.
    const write = async (data: object) => {
      await gw.prisma.job.update({ where: { id: job.id }, data });
      await publishJobChange(gw.runtime.redis, gw.config.QUEUE_PREFIX, { jobId: job.id });
    };
    await write({ status: 'running', startedAt: new Date() });
    await readUntil('"status":"running"');
    await write({ progress });
    await readUntil('event: progress');
    await write({ status: 'succeeded', finishedAt: new Date() });
    await readUntil('event: end');
    const { done } = await reader.read();
    expect(done).toBe(true);
    expect(text).toContain('"percent":50');
    expect(text).toContain('"status":"succeeded"');
  });
});

describe('nodes', () => {
  it('shows heartbeat age, online/offline, job counts, version and roots', async () => {
    const stale = `bk-stale-${gw.tag}`;
    await gw.node(stale, ['/srv/stale'], 5 * 60_000);
    const inst = await instance();
    await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member });

    const res = await gw.api('GET', `/v1/nodes/${nodeId}`, { token: member });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: nodeId, status: 'online', version: 'test', volumeRoots: expect.any(Array), runningJobs: 0 });
    expect(res.body.queuedJobs).toBeGreaterThanOrEqual(1);
    expect(res.body.heartbeatAgeSeconds).toBeLessThan(60);
    const list = await gw.api('GET', '/v1/nodes', { token: member });
    const staleView = list.body.items.find((x: { id: string }) => x.id === stale);
    expect(staleView).toMatchObject({ status: 'offline' });
    expect(staleView.heartbeatAgeSeconds).toBeGreaterThanOrEqual(300);
    expect((await gw.api('GET', '/v1/nodes/nope', { token: member })).status).toBe(404);
  });

  it('shows the active and recent jobs on a node and the schedules of its instances', async () => {
    const inst = await instance();
    const done = (await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member })).body;
    await complete(done.backup.id, done.job.id);
    const queued = (await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member })).body;
    const sched = await gw.api('POST', `/v1/instances/${inst.id}/schedules`, {
      token: member,
      body: { cron: '@daily', timezone: 'UTC', retention: { keepLast: 2 } },
    });
    expect(sched.status).toBe(201);
    // Another tenant's view of the same node holds none of it.
    const stranger = (await gw.token('member', `bk-stranger-${gw.tag}`)).token;
    const res = await gw.api('GET', `/v1/nodes/${nodeId}`, { token: member });
    expect(res.status).toBe(200);
    expect(res.body.activeJobs.map((j: { id: string }) => j.id)).toContain(queued.job.id);
    expect(res.body.activeJobs.find((j: { id: string }) => j.id === queued.job.id)).toMatchObject({ type: 'backup', status: 'queued' });
    expect(res.body.recentJobs.map((j: { id: string }) => j.id)).toContain(done.job.id);
    expect(res.body.schedules.map((s: { id: string }) => s.id)).toContain(sched.body.id);
    const other = await gw.api('GET', `/v1/nodes/${nodeId}`, { token: stranger });
    expect(other.status).toBe(200);
    expect(other.body).toMatchObject({ id: nodeId, activeJobs: [], recentJobs: [], schedules: [] });
  });
});
