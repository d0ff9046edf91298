/**
 * Restore from the bucket alone (issue 14) end to end, with the real Postgres, Redis, S3 server
 * and node worker: a full and an incremental backup of an instance, then its rows are removed
 * (Backup, BackupObjectRef, Job, Volume, Instance: only this file's instance, the database is
 * shared by the other test files), and `POST /v1/admin/catalog/rebuild` brings the instance and
 * its completed backups back as they were; the incremental restores into an empty instance byte
 * for byte. A second rebuild creates nothing, a dry run writes nothing, a member gets 403, and a
 * backup whose manifest is gone is rebuilt from its index.
 *
 * The run's bucket is shared too: this file works under an S3 prefix of its own, so the rebuild
 * sees only its objects.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifestKey } from '@cairn/core';
import { startCairn, type Cairn } from '../support/cairn-harness.ts';
import { snapshotTree } from '../support/tree.ts';

function populate(data: string): void {
  fs.mkdirSync(path.join(data, 'db'), { recursive: true });
  for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(data, `f${i}.txt`), `file ${i}\n`.repeat(100 + i));
  fs.writeFileSync(path.join(data, 'db/pages.bin'), randomBytes(3 * 1024 * 1024));
  fs.writeFileSync(path.join(data, 'edit.txt'), 'version 1\n');
  fs.writeFileSync(path.join(data, 'delete.me'), 'bye');
  fs.symlinkSync('edit.txt', path.join(data, 'sym'));
}

function change(data: string): void {
  fs.writeFileSync(path.join(data, 'edit.txt'), 'version 2\n'.repeat(50));
  fs.rmSync(path.join(data, 'delete.me'));
  fs.writeFileSync(path.join(data, 'added.txt'), 'new file\n');
  fs.chmodSync(path.join(data, 'f3.txt'), 0o600);
}

type Row = Record<string, unknown> & { id: string };
const FIELDS = [
  'id',
  'status',
  'kind',
  'parentId',
  'trigger',
  'volumes',
  'storedBytes',
  'logicalBytes',
  'fileCount',
  'sha256',
  'createdAt',
  'completedAt',
  'name',
  'note',
  'pinned',
];
const pick = (b: Row) => Object.fromEntries(FIELDS.map((f) => [f, b[f]]));

describe('catalog rebuild from the bucket alone', () => {
  let cairn: Cairn;
  let data: string;
  let instanceId: string;
  let fullId: string;
  let incId: string;
  let expected: ReturnType<typeof snapshotTree>;
  let before: { instance: Row; backups: Row[] };
  let memberToken: string;
  const savedPrefix = process.env.S3_PREFIX;

  const backup = async (body: Record<string, unknown>): Promise<string> => {
    const res = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, body);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const job = await cairn.waitForJob(res.body.job.id, undefined, 120_000);
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    return res.body.backup.id;
  };

  const backupsOf = async (id: string): Promise<Row[]> => {
    const res = await cairn.api('GET', `/v1/instances/${id}/backups`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return (res.body.items as Row[]).sort((a, b) => a.id.localeCompare(b.id));
  };

  /** Removes this instance's rows, as a lost database would (only this file's instance). */
  const dropRows = async (): Promise<void> => {
    const p = cairn.prisma;
    const ids = (await p.backup.findMany({ where: { instanceId }, select: { id: true } })).map((b) => b.id);
    await p.$transaction([
      p.backupObjectRef.deleteMany({ where: { backupId: { in: ids } } }),
      p.job.deleteMany({ where: { OR: [{ instanceId }, { backupId: { in: ids } }] } }),
      p.backup.deleteMany({ where: { id: { in: ids } } }),
      p.volume.deleteMany({ where: { instanceId } }),
      p.instance.delete({ where: { id: instanceId } }),
    ]);
    expect((await cairn.api('GET', `/v1/instances/${instanceId}`)).status).toBe(404);
  };

  const rebuild = async (body: Record<string, unknown> = {}, token?: string) => {
    const res = await cairn.api('POST', '/v1/admin/catalog/rebuild', body, token);
    return res;
  };

  /** The CLI, as an operator runs it. */
  const cli = async (...args: string[]): Promise<{ code: number; stdout: string }> => {
    try {
      const r = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'services/cli/src/main.ts', ...args], {
        env: { ...process.env, CAIRN_URL: cairn.url, CAIRN_TOKEN: cairn.adminToken },
      });
      return { code: 0, stdout: r.stdout };
    } catch (err) {
      const e = err as { code: number; stdout: string };
      return { code: e.code, stdout: e.stdout };
    }
  };

  beforeAll(async () => {
    process.env.S3_PREFIX = `${savedPrefix ?? ''}/catalog-e2e-${randomBytes(4).toString('hex')}`.replace(/^\/+/, '');
    cairn = await startCairn();
    process.env.S3_PREFIX = savedPrefix;
    if (savedPrefix === undefined) delete process.env.S3_PREFIX;
    data = path.join(cairn.volumeRoot, 'app', 'data');
    populate(data);
    const res = await cairn.api('POST', '/v1/instances', {
      name: 'catalog-app',
      nodeId: cairn.nodeId,
      tenant: cairn.tenant,
      volumes: [{ name: 'data', hostPath: data, excludes: ['*.tmp'] }],
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    instanceId = res.body.id;
    const member = await cairn.api('POST', '/v1/tokens', { name: 'catalog-member', role: 'member', tenant: cairn.tenant });
    expect(member.status, JSON.stringify(member.body)).toBe(201);
    memberToken = member.body.token;

    fullId = await backup({ kind: 'full', name: 'first', note: 'the full one' });
    change(data);
    expected = snapshotTree(data);
    incId = await backup({ kind: 'incremental' });
    // Changed after completion: the manifest is rewritten, so the rebuild brings back the change.
    const patched = await cairn.api('PATCH', `/v1/backups/${incId}`, { note: 'noted later', pinned: true });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    before = { instance: (await cairn.api('GET', `/v1/instances/${instanceId}`)).body, backups: await backupsOf(instanceId) };
    expect(before.backups.map((b) => [b.id, b.kind, b.parentId])).toEqual([
      [fullId, 'full', null],
      [incId, 'incremental', fullId],
    ]);
  }, 300_000);

  afterAll(async () => {
    await cairn?.close();
  });

  it('writes a manifest next to each completed backup, carrying the row and the instance', async () => {
    for (const id of [fullId, incId]) expect(await cairn.runtime.store.head(manifestKey(instanceId, id))).not.toBeNull();
  });

  it('is for admins only: a member gets 403', async () => {
    const res = await rebuild({}, memberToken);
    expect(res.status, JSON.stringify(res.body)).toBe(403);
  });

  it('with every row present, creates nothing', async () => {
    const res = await rebuild();
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.instances).toMatchObject({ created: 0, existing: 1, skipped: 0 });
    expect(res.body.backups).toMatchObject({ created: 0, existing: 2, skipped: 0 });
  });

  it('a dry run after the rows are lost reports what it would create and writes nothing', async () => {
    await dropRows();
    const res = await rebuild({ dryRun: true });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.dryRun).toBe(true);
    expect(res.body.instances).toMatchObject({ created: 1, existing: 0, skipped: 0 });
    expect(res.body.backups).toMatchObject({ created: 2, skipped: 0 });
    expect(res.body.references.created).toBe(1);
    expect((await cairn.api('GET', `/v1/instances/${instanceId}`)).status).toBe(404);
    expect(await cairn.prisma.backup.count({ where: { instanceId } })).toBe(0);

    const out = await cli('catalog', 'rebuild', '--dry-run');
    expect(out.code, out.stdout).toBe(0);
    expect(out.stdout).toContain('dry run: ');
    expect(out.stdout).toContain('backups:   would create 2, existing 0, skipped 0');
    expect(await cairn.prisma.backup.count({ where: { instanceId } })).toBe(0);
  });

  it('rebuilds the instance and its completed backups as they were', async () => {
    const res = await rebuild();
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.instances).toMatchObject({ created: 1, skipped: 0 });
    expect(res.body.instances.items).toEqual([{ id: instanceId, name: 'catalog-app', tenant: cairn.tenant, outcome: 'created' }]);
    expect(res.body.backups).toMatchObject({ created: 2, skipped: 0 });
    expect(res.body.backups.items.map((i: Row) => [i.id, i.source])).toEqual([
      [fullId, 'manifest'],
      [incId, 'manifest'],
    ]);
    expect(res.body.references.created).toBe(1);

    const instance = (await cairn.api('GET', `/v1/instances/${instanceId}`)).body;
    expect(instance.name).toBe('catalog-app');
    expect(instance.nodeId).toBe(cairn.nodeId);
    expect(instance.volumes.map((v: Row) => [v.name, v.hostPath, v.excludes])).toEqual([['data', data, ['*.tmp']]]);
    const after = await backupsOf(instanceId);
    expect(after.map(pick)).toEqual(before.backups.map(pick));
    expect(after[1]).toMatchObject({ note: 'noted later', pinned: true });
    const refs = await cairn.prisma.backupObjectRef.findMany({ where: { backupId: incId } });
    expect(refs.map((r) => r.ownerId)).toEqual([fullId]);
  });

  it('a second rebuild creates nothing', async () => {
    const res = await rebuild();
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.instances).toMatchObject({ created: 0, existing: 1, skipped: 0 });
    expect(res.body.backups).toMatchObject({ created: 0, existing: 2, skipped: 0 });
    expect(res.body.references.created).toBe(0);
    expect(res.body.tenants.created).toEqual([]);

    const out = await cli('catalog', 'rebuild');
    expect(out.code, out.stdout).toBe(0);
    expect(out.stdout).toContain('instances: created 0, existing 1, skipped 0');
    expect(out.stdout).toContain('backups:   created 0, existing 2, skipped 0');
  });

  it('the rebuilt incremental restores into an empty instance byte for byte', async () => {
    const dir = path.join(cairn.volumeRoot, 'empty', 'data');
    fs.mkdirSync(dir, { recursive: true });
    const created = await cairn.api('POST', '/v1/instances', {
      name: 'catalog-empty',
      nodeId: cairn.nodeId,
      tenant: cairn.tenant,
      volumes: [{ name: 'data', hostPath: dir }],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const res = await cairn.api('POST', `/v1/backups/${incId}/restore`, { targetInstanceId: created.body.id });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const job = await cairn.waitForJob(res.body.job.id, undefined, 120_000);
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    expect(snapshotTree(dir)).toEqual(expected);
  });

  it('a backup whose manifest is gone is rebuilt from its index, saying so', async () => {
    await cairn.runtime.store.delete(manifestKey(instanceId, fullId));
    await dropRows();
    const res = await rebuild();
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.backups.items.map((i: Row) => [i.id, i.outcome, i.source])).toEqual([
      [fullId, 'created', 'index'],
      [incId, 'created', 'manifest'],
    ]);
    const full = (await cairn.api('GET', `/v1/backups/${fullId}`)).body;
    expect(full).toMatchObject({ status: 'completed', kind: 'full', trigger: 'manual', sha256: before.backups[0]!.sha256 });
    expect(full.storedBytes).toEqual(before.backups[0]!.storedBytes);
    expect(JSON.stringify(full.warnings)).toContain('catalog-rebuilt');
    const refs = await cairn.prisma.backupObjectRef.findMany({ where: { backupId: incId } });
    expect(refs.map((r) => r.ownerId)).toEqual([fullId]);
  });
});

describe('catalog rebuild of encrypted backups after a key rotation', () => {
  const KEY_A = `keyA:${randomBytes(32).toString('base64')}`;
  const KEY_B = `keyB:${randomBytes(32).toString('base64')}`;
  let cairn: Cairn;

  beforeAll(async () => {
    const saved = { prefix: process.env.S3_PREFIX, keys: process.env.CAIRN_MASTER_KEYS };
    process.env.S3_PREFIX = `${saved.prefix ?? ''}/catalog-enc-${randomBytes(4).toString('hex')}`.replace(/^\/+/, '');
    process.env.CAIRN_MASTER_KEYS = KEY_A;
    cairn = await startCairn();
    for (const [k, v] of [
      ['S3_PREFIX', saved.prefix],
      ['CAIRN_MASTER_KEYS', saved.keys],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }, 120_000);

  afterAll(async () => {
    await cairn?.close();
  });

  it('backs up under key A, rotates to B and removes A, loses the rows, rebuilds: the incremental restores byte for byte', async () => {
    const data = path.join(cairn.volumeRoot, 'enc', 'data');
    populate(data);
    const res = await cairn.api('POST', '/v1/instances', {
      name: 'catalog-enc',
      nodeId: cairn.nodeId,
      tenant: cairn.tenant,
      volumes: [{ name: 'data', hostPath: data }],
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const instanceId: string = res.body.id;
    const backup = async (kind: string): Promise<string> => {
      const r = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, { kind });
      expect(r.status, JSON.stringify(r.body)).toBe(202);
      const job = await cairn.waitForJob(r.body.job.id, undefined, 120_000);
      expect(job.status, JSON.stringify(job)).toBe('succeeded');
      return r.body.backup.id;
    };
    const fullId = await backup('full');
    change(data);
    const expected = snapshotTree(data);
    const incId = await backup('incremental');
    expect((await cairn.prisma.backup.findUniqueOrThrow({ where: { id: incId } })).encryption).toMatchObject({ keyId: 'keyA' });

    cairn.config.CAIRN_MASTER_KEYS = `${KEY_B},${KEY_A}`;
    const rewrap = await cairn.api('POST', '/v1/admin/keys/rewrap', {});
    expect(rewrap.status, JSON.stringify(rewrap.body)).toBe(200);
    cairn.config.CAIRN_MASTER_KEYS = KEY_B;

    const p = cairn.prisma;
    const ids = [fullId, incId];
    await p.$transaction([
      p.backupObjectRef.deleteMany({ where: { backupId: { in: ids } } }),
      p.job.deleteMany({ where: { OR: [{ instanceId }, { backupId: { in: ids } }] } }),
      p.backup.deleteMany({ where: { id: { in: ids } } }),
      p.volume.deleteMany({ where: { instanceId } }),
      p.instance.delete({ where: { id: instanceId } }),
    ]);

    const rebuilt = await cairn.api('POST', '/v1/admin/catalog/rebuild', {});
    expect(rebuilt.status, JSON.stringify(rebuilt.body)).toBe(200);
    expect(rebuilt.body.backups).toMatchObject({ created: 2, skipped: 0 });
    expect((await p.backup.findUniqueOrThrow({ where: { id: incId } })).encryption).toMatchObject({ keyId: 'keyB' });

    const dir = path.join(cairn.volumeRoot, 'enc-empty', 'data');
    fs.mkdirSync(dir, { recursive: true });
    const target = await cairn.api('POST', '/v1/instances', {
      name: 'catalog-enc-empty',
      nodeId: cairn.nodeId,
      tenant: cairn.tenant,
      volumes: [{ name: 'data', hostPath: dir }],
    });
    expect(target.status, JSON.stringify(target.body)).toBe(201);
    const restore = await cairn.api('POST', `/v1/backups/${incId}/restore`, { targetInstanceId: target.body.id });
    expect(restore.status, JSON.stringify(restore.body)).toBe(202);
    const job = await cairn.waitForJob(restore.body.job.id, undefined, 120_000);
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    expect(snapshotTree(dir)).toEqual(expected);
  }, 300_000);
});
