import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCairn, type Cairn } from '../support/cairn-harness.ts';
import { snapshotTree } from '../support/tree.ts';

/** The volume directory and everything beside it (a dry run must leave no staging directory either). */
const around = (dir: string) => ({ parent: fs.readdirSync(path.dirname(dir)).sort(), tree: snapshotTree(dir) });

describe('restore dry run and the deletions report (issue 15)', () => {
  let cairn: Cairn;
  let data: string;
  let instanceId: string;
  let backupId: string;

  beforeAll(async () => {
    cairn = await startCairn();
    data = path.join(cairn.volumeRoot, 'app', 'data');
    fs.mkdirSync(path.join(data, 'db'), { recursive: true });
    fs.writeFileSync(path.join(data, 'db/users.dat'), Buffer.alloc(50_000, 'u'));
    fs.writeFileSync(path.join(data, 'db/orders.dat'), 'orders v1\n');
    fs.writeFileSync(path.join(data, 'readme.txt'), 'hello\n');
    fs.symlinkSync('db/orders.dat', path.join(data, 'orders-link'));
    const res = await cairn.api('POST', '/v1/instances', {
      name: 'dry-app',
      nodeId: cairn.nodeId,
      tenant: cairn.tenant,
      volumes: [{ name: 'data', hostPath: data }],
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    instanceId = res.body.id;
    const backup = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, {});
    expect(backup.status, JSON.stringify(backup.body)).toBe(202);
    backupId = backup.body.backup.id;
    expect((await cairn.waitForJob(backup.body.job.id)).status).toBe('succeeded');

    // After the backup: one file changed, one removed, two added (a file and a directory with one).
    fs.writeFileSync(path.join(data, 'db/orders.dat'), 'orders v2, longer\n');
    fs.rmSync(path.join(data, 'readme.txt'));
    fs.writeFileSync(path.join(data, 'new.log'), 'written after the backup\n');
    fs.mkdirSync(path.join(data, 'cache'));
    fs.writeFileSync(path.join(data, 'cache/tmp.bin'), 'x');
  });
  afterAll(async () => {
    await cairn?.close();
  });

  const dryRun = async (body: Record<string, unknown> = {}) => {
    const res = await cairn.api('POST', `/v1/backups/${backupId}/restore`, { dryRun: true, ...body });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.job.params.dryRun).toBe(true);
    const job = await cairn.waitForJob(res.body.job.id);
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    return job.result;
  };

  it('reports what a replace would create, change and delete, and changes nothing', async () => {
    const before = around(data);
    const result = await dryRun();
    expect(around(data)).toEqual(before);
    expect(result).toMatchObject({ dryRun: true, mode: 'replace', bytesToWrite: 50_000 + 'orders v1\n'.length + 'hello\n'.length });
    expect(result.changes).toEqual({
      created: 1,
      changed: 1,
      deleted: 3,
      unchanged: 3, // db, db/users.dat, orders-link
      samples: { created: ['data/readme.txt'], changed: ['data/db/orders.dat'], deleted: expect.any(Array) },
    });
    expect([...result.changes.samples.deleted].sort()).toEqual(['data/cache', 'data/cache/tmp.bin', 'data/new.log']);
  });

  it('a merge deletes nothing; chosen paths limit the comparison to them', async () => {
    const merge = await dryRun({ mode: 'merge' });
    expect(merge.changes).toMatchObject({ created: 1, changed: 1, deleted: 0 });
    const chosen = await dryRun({ paths: ['data/db'] });
    expect(chosen.changes).toMatchObject({ created: 0, changed: 1, deleted: 0, unchanged: 2 });
  });

  it('into an instance whose volume directory does not exist yet: everything is created, nothing made', async () => {
    const other = path.join(cairn.volumeRoot, 'other', 'data');
    const res = await cairn.api('POST', '/v1/instances', {
      name: 'dry-other',
      nodeId: cairn.nodeId,
      tenant: cairn.tenant,
      volumes: [{ name: 'data', hostPath: other }],
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const result = await dryRun({ targetInstanceId: res.body.id });
    expect(result.changes).toMatchObject({ created: 5, changed: 0, deleted: 0, unchanged: 0 });
    expect(fs.existsSync(path.dirname(other))).toBe(false);

    // The real restore into it reports the same: everything created, the samples naming them.
    const real = await cairn.api('POST', `/v1/backups/${backupId}/restore`, { targetInstanceId: res.body.id });
    expect(real.status, JSON.stringify(real.body)).toBe(202);
    const job = await cairn.waitForJob(real.body.job.id);
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    expect(job.result.changes).toEqual(result.changes);
    expect(fs.readFileSync(path.join(other, 'readme.txt'), 'utf8')).toBe('hello\n');
  });

  it('does not hold the instance: a backup is accepted while a dry run waits', async () => {
    await cairn.stopInProcessNodeWorker();
    let restarted = false;
    try {
      const dry = await cairn.api('POST', `/v1/backups/${backupId}/restore`, { dryRun: true });
      expect(dry.status, JSON.stringify(dry.body)).toBe(202);
      const backup = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, {});
      expect(backup.status, JSON.stringify(backup.body)).toBe(202);
      await cairn.startInProcessNodeWorker();
      restarted = true;
      expect((await cairn.waitForJob(dry.body.job.id)).status).toBe('succeeded');
      expect((await cairn.waitForJob(backup.body.job.id)).status).toBe('succeeded');
    } finally {
      if (!restarted) await cairn.startInProcessNodeWorker();
    }
  });

  it('the real restore reports the deletions the dry run announced; a dry run after it finds nothing to do', async () => {
    const announced = await dryRun();
    const res = await cairn.api('POST', `/v1/backups/${backupId}/restore`, {});
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const job = await cairn.waitForJob(res.body.job.id);
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    expect(job.result.changes).toEqual(announced.changes);
    expect(fs.existsSync(path.join(data, 'new.log'))).toBe(false);
    expect(fs.readFileSync(path.join(data, 'readme.txt'), 'utf8')).toBe('hello\n');

    const after = await dryRun();
    expect(after.changes).toMatchObject({ created: 0, changed: 0, deleted: 0, unchanged: 5 });
  });
});
