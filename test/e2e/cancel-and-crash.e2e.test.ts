import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupPrefix, manifestKey } from '@cairn/core';
import { startCairn, type Cairn } from '../support/cairn-harness.ts';
import { snapshotTree } from '../support/tree.ts';

/** Incompressible data, so archiving and uploading take long enough to interrupt. */
function writeRandomFiles(dir: string, files: number, bytesEach: number): void {
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < files; i++) {
    const fd = fs.openSync(path.join(dir, `blob-${i}.bin`), 'w');
    for (let done = 0; done < bytesEach; done += 8 << 20) fs.writeSync(fd, randomBytes(Math.min(8 << 20, bytesEach - done)));
    fs.closeSync(fd);
  }
}

async function objectsUnder(cairn: Cairn, prefix: string) {
  const keys: string[] = [];
  for await (const o of cairn.runtime.store.listAll(prefix)) keys.push(o.key);
  const uploads = await cairn.runtime.store.listIncompleteUploads(prefix);
  return { keys: keys.sort(), uploads };
}

const running = (job: any) => job.status === 'running' && Number(job.progress?.bytesDone ?? 0) > 0;

describe('cancellation and crashes', () => {
  let cairn: Cairn;
  let dir: string;
  let instanceId: string;

  beforeAll(async () => {
    cairn = await startCairn(); // its node worker registers the node; the SIGKILL test replaces it
    dir = path.join(cairn.volumeRoot, 'big/data');
    writeRandomFiles(dir, 6, 48 << 20);
    const res = await cairn.api('POST', '/v1/instances', {
      name: 'big',
      nodeId: cairn.nodeId,
      tenant: cairn.tenant,
      volumes: [{ name: 'data', hostPath: dir }],
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    instanceId = res.body.id;
  });
  afterAll(async () => {
    await cairn?.close();
  });

  it('cancels a running backup: job cancelled, no completed backup, no object, no incomplete upload', async () => {
    const res = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, {});
    expect(res.status).toBe(202);
    const { backup, job } = res.body;
    await cairn.waitForJob(job.id, running);
    const cancel = await cairn.api('POST', `/v1/jobs/${job.id}/cancel`);
    expect(cancel.status, JSON.stringify(cancel.body)).toBe(202);
    const done = await cairn.waitForJob(job.id);
    expect(done.status).toBe('cancelled');
    expect((await cairn.api('GET', `/v1/backups/${backup.id}`)).body.status).toBe('cancelled');
    expect(await objectsUnder(cairn, backupPrefix(instanceId, backup.id))).toEqual({ keys: [], uploads: [] });
  });

  it('cancels a running restore: the target is unchanged', async () => {
    const res = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, {});
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect((await cairn.waitForJob(res.body.job.id)).status).toBe('succeeded');
    fs.writeFileSync(path.join(dir, 'blob-0.bin'), 'changed after the backup');
    const before = snapshotTree(dir);
    const restore = await cairn.api('POST', `/v1/backups/${res.body.backup.id}/restore`, {});
    expect(restore.status).toBe(202);
    await cairn.waitForJob(restore.body.job.id, (j) => j.status === 'running' || j.status === 'succeeded');
    const cancel = await cairn.api('POST', `/v1/jobs/${restore.body.job.id}/cancel`);
    expect([202, 409]).toContain(cancel.status);
    const done = await cairn.waitForJob(restore.body.job.id);
    expect(done.status).toBe('cancelled');
    expect(snapshotTree(dir)).toEqual(before);
    expect(fs.readdirSync(path.dirname(dir))).toEqual(['data']);
    await cairn.stopInProcessNodeWorker();
  });

  it('survives SIGKILL of the node worker mid-backup: the job finishes once, one backup, no orphans', async () => {
    const first = cairn.spawnNodeWorker();
    // A full backup: an incremental of the unchanged volume can finish before it is seen running.
    const res = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, { kind: 'full' });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const { backup, job } = res.body;
    await cairn.waitForJob(job.id, running, 60_000);
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    cairn.spawnNodeWorker();
    const done = await cairn.waitForJob(job.id, undefined, 120_000);
    expect(done.status, JSON.stringify(done)).toBe('succeeded');
    const rows = await cairn.prisma.backup.findMany({ where: { instanceId, createdAt: { gte: new Date(Date.now() - 5 * 60_000) } } });
    expect(rows.filter((b) => b.id === backup.id)).toHaveLength(1);
    const row = rows.find((b) => b.id === backup.id)!;
    expect(row.status).toBe('completed');
    const queue = new Queue(`node.${cairn.nodeId}`, { connection: { url: cairn.config.REDIS_URL }, prefix: cairn.config.QUEUE_PREFIX });
    expect(await (await queue.getJob(job.id))?.getState()).toBe('completed');
    await queue.close();
    // Archive, index and the catalog manifest (issue 14): nothing else, no incomplete upload.
    expect(await objectsUnder(cairn, backupPrefix(instanceId, backup.id))).toEqual({
      keys: [row.indexKey, row.storageKey, manifestKey(instanceId, backup.id)].sort(),
      uploads: [],
    });
  }, 180_000);
});
