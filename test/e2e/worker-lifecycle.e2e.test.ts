import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateMultipartUploadCommand } from '@aws-sdk/client-s3';
import { backupPrefix, newId } from '@cairn/core';
import { createS3Client, type S3ObjectStore } from '@cairn/core/storage/s3.object-store.ts';
import { startCairn, type Cairn } from '../support/cairn-harness.ts';

describe('node worker lifecycle and rules', () => {
  let cairn: Cairn;
  let n = 0;

  /** Registers an instance with one volume `data` at <root>/<name>/data, filled by `fill`. */
  async function instance(fill: (dir: string) => void): Promise<{ id: string; dir: string }> {
    const name = `app${++n}`;
    const dir = path.join(cairn.volumeRoot, name, 'data');
    fs.mkdirSync(dir, { recursive: true });
    fill(dir);
    const res = await cairn.api('POST', '/v1/instances', { name, nodeId: cairn.nodeId, tenant: cairn.tenant, volumes: [{ name: 'data', hostPath: dir }] });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return { id: res.body.id, dir };
  }

  async function backup(instanceId: string) {
    const res = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, {});
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return res.body as { backup: { id: string }; job: { id: string } };
  }

  beforeAll(async () => {
    cairn = await startCairn();
  });
  afterAll(async () => {
    await cairn?.close();
  });

  it('completes with warnings when a volume holds a FIFO', async () => {
    const { id } = await instance((dir) => {
      fs.writeFileSync(path.join(dir, 'a.txt'), 'a');
      execFileSync('mkfifo', [path.join(dir, 'pipe')]);
    });
    const { backup: b, job } = await backup(id);
    expect((await cairn.waitForJob(job.id)).status).toBe('succeeded');
    const row = (await cairn.api('GET', `/v1/backups/${b.id}`)).body;
    expect(row.status).toBe('completed');
    expect(row.warnings).toEqual([expect.objectContaining({ path: 'data/pipe', code: 'skipped-type' })]);
  });

  it('fails with no-data when no volume has data', async () => {
    const { id } = await instance(() => {});
    const { backup: b, job } = await backup(id);
    const done = await cairn.waitForJob(job.id);
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/nothing to back up.*no data/);
    expect((await cairn.api('GET', `/v1/backups/${b.id}`)).body.status).toBe('failed');
  });

  it('never completes a backup deleted while it runs, and removes its objects', async () => {
    const { id } = await instance((dir) => {
      for (let i = 0; i < 4; i++) fs.writeFileSync(path.join(dir, `blob-${i}`), randomBytes(32 << 20));
    });
    const { backup: b, job } = await backup(id);
    await cairn.waitForJob(job.id, (j) => j.status === 'running' && Number(j.progress?.bytesDone ?? 0) > 0);
    const del = await cairn.api('DELETE', `/v1/backups/${b.id}`);
    expect(del.status, JSON.stringify(del.body)).toBeLessThan(300);
    await cairn.waitForJob(job.id);
    const deadline = Date.now() + 30_000;
    let status = '';
    while (Date.now() < deadline && status !== 'deleted') {
      status = (await cairn.prisma.backup.findUniqueOrThrow({ where: { id: b.id } })).status;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(status).toBe('deleted');
    const keys = [];
    for await (const o of cairn.runtime.store.listAll(backupPrefix(id, b.id))) keys.push(o.key);
    expect(keys).toEqual([]);
    expect(await cairn.runtime.store.listIncompleteUploads(backupPrefix(id, b.id))).toEqual([]);
  });

  it('merges a restore over the live volume, keeping files the backup lacks', async () => {
    const { id, dir } = await instance((d) => {
      fs.writeFileSync(path.join(d, 'kept.txt'), 'v1');
      fs.mkdirSync(path.join(d, 'sub'));
      fs.writeFileSync(path.join(d, 'sub/inner.txt'), 'inner v1');
    });
    const { backup: b, job } = await backup(id);
    expect((await cairn.waitForJob(job.id)).status).toBe('succeeded');
    fs.writeFileSync(path.join(dir, 'kept.txt'), 'v2');
    fs.writeFileSync(path.join(dir, 'sub/extra.txt'), 'only live');
    fs.writeFileSync(path.join(dir, 'new.txt'), 'only live');
    const res = await cairn.api('POST', `/v1/backups/${b.id}/restore`, { mode: 'merge' });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect((await cairn.waitForJob(res.body.job.id)).status).toBe('succeeded');
    expect(fs.readFileSync(path.join(dir, 'kept.txt'), 'utf8')).toBe('v1');
    expect(fs.readFileSync(path.join(dir, 'sub/inner.txt'), 'utf8')).toBe('inner v1');
    expect(fs.readFileSync(path.join(dir, 'sub/extra.txt'), 'utf8')).toBe('only live');
    expect(fs.readFileSync(path.join(dir, 'new.txt'), 'utf8')).toBe('only live');
    expect(fs.readdirSync(path.dirname(dir))).toEqual(['data']);
  });

  it('at start cleans restore leftovers, puts back a half-swapped volume and runs a backup lost from the queue again', async () => {
    await cairn.stopInProcessNodeWorker();
    const { id, dir } = await instance((d) => fs.writeFileSync(path.join(d, 'x'), 'x'));
    const { id: id2, dir: dir2 } = await instance((d) => fs.writeFileSync(path.join(d, 'precious'), 'keep me'));
    // A staging copy left beside the first volume, and the second volume renamed aside mid-swap.
    const staging = path.join(path.dirname(dir), `.cairn-staging-${newId()}.data`);
    fs.mkdirSync(staging);
    fs.writeFileSync(path.join(staging, 'partial'), 'p');
    fs.renameSync(dir2, path.join(path.dirname(dir2), `.cairn-old-${newId()}.data`));
    // A running job whose BullMQ job vanished (Redis lost it).
    const backupId = newId();
    const jobId = newId();
    await cairn.prisma.backup.create({
      data: {
        id: backupId,
        instanceId: id,
        status: 'running',
        trigger: 'manual',
        volumes: [],
        storageKey: `${backupPrefix(id, backupId)}archive.tar.zst`,
        indexKey: `${backupPrefix(id, backupId)}index.json.gz`,
        compression: 'zstd',
        requestedBy: 'system',
      },
    });
    await cairn.prisma.job.create({
      data: {
        id: jobId,
        type: 'backup',
        status: 'running',
        instanceId: id,
        backupId,
        nodeId: cairn.nodeId,
        queue: `node.${cairn.nodeId}`,
        requestedBy: 'system',
      },
    });

    // ...and the multipart upload its dead worker left half-written.
    const store = cairn.runtime.store as S3ObjectStore;
    const s3 = createS3Client({
      endpoint: cairn.config.S3_ENDPOINT,
      region: cairn.config.S3_REGION,
      bucket: store.bucket,
      accessKeyId: cairn.config.S3_ACCESS_KEY_ID,
      secretAccessKey: cairn.config.S3_SECRET_ACCESS_KEY,
      forcePathStyle: true,
    });
    const key = `${backupPrefix(id, backupId)}archive.tar.zst`;
    await s3.send(new CreateMultipartUploadCommand({ Bucket: store.bucket, Key: store.prefix + key }));
    expect(await store.listIncompleteUploads(backupPrefix(id, backupId))).toHaveLength(1);

    await cairn.startInProcessNodeWorker();
    const sweep = await cairn.prisma.job.findFirstOrThrow({ where: { type: 'sweep', nodeId: cairn.nodeId }, orderBy: { id: 'desc' } });
    expect(sweep.status).toBe('succeeded');
    // A backup is safe to run again (issue 16): enqueued again; its run aborts the half-written upload first.
    expect(sweep.result).toMatchObject({ interrupted: [], requeued: [jobId] });
    const job = await cairn.waitForJob(jobId);
    expect(job).toMatchObject({ status: 'succeeded', error: null, attempts: 1 });
    expect((await cairn.prisma.backup.findUniqueOrThrow({ where: { id: backupId } })).status).toBe('completed');
    expect(await store.listIncompleteUploads(backupPrefix(id, backupId))).toEqual([]);
    s3.destroy();
    expect(fs.existsSync(staging)).toBe(false);
    expect(fs.readFileSync(path.join(dir2, 'precious'), 'utf8')).toBe('keep me');
    expect(fs.readdirSync(path.dirname(dir2))).toEqual(['data']);
    expect(id2).toBeTruthy();
  });
});
