import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeIndex } from '@cairn/core/archive/index.ts';
import { startCairn, type Cairn } from '../support/cairn-harness.ts';
import { snapshotTree } from '../support/tree.ts';

/** Two volumes with nested dirs, an empty dir, a symlink, a hard link, odd modes, unicode names. */
function populate(root: string): void {
  const data = path.join(root, 'data');
  const config = path.join(root, 'config');
  fs.mkdirSync(path.join(data, 'db/tables'), { recursive: true });
  fs.mkdirSync(path.join(data, 'empty'), { recursive: true });
  fs.mkdirSync(config, { recursive: true });
  fs.writeFileSync(path.join(data, 'db/tables/users.dat'), Buffer.alloc(300_000, 'u'));
  fs.writeFileSync(path.join(data, 'db/tables/orders.dat'), 'orders v1\n');
  fs.writeFileSync(path.join(data, 'héllo wörld.txt'), 'unicode name\n');
  fs.writeFileSync(path.join(data, 'zero'), '');
  fs.chmodSync(path.join(data, 'zero'), 0o600);
  fs.symlinkSync('db/tables/orders.dat', path.join(data, 'orders-link'));
  fs.linkSync(path.join(data, 'db/tables/orders.dat'), path.join(data, 'orders-hard'));
  fs.writeFileSync(path.join(config, 'app.yaml'), 'port: 8080\n');
  fs.chmodSync(path.join(config, 'app.yaml'), 0o640);
}

const volumesOf = (root: string) => [
  { name: 'data', hostPath: path.join(root, 'data') },
  { name: 'config', hostPath: path.join(root, 'config') },
];

const snap = (root: string) => ({ data: snapshotTree(path.join(root, 'data')), config: snapshotTree(path.join(root, 'config')) });

describe('backup and restore end to end', () => {
  let cairn: Cairn;
  let app1: string;
  let instanceId: string;
  let backupId: string;
  let original: ReturnType<typeof snap>;

  beforeAll(async () => {
    cairn = await startCairn();
    app1 = path.join(cairn.volumeRoot, 'app1');
    populate(app1);
    original = snap(app1);
    const res = await cairn.api('POST', '/v1/instances', { name: 'app1', nodeId: cairn.nodeId, tenant: cairn.tenant, volumes: volumesOf(app1) });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    instanceId = res.body.id;
  });
  afterAll(async () => {
    await cairn?.close();
  });

  it('backs up an instance with two volumes', async () => {
    const res = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, {});
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    backupId = res.body.backup.id;
    const job = await cairn.waitForJob(res.body.job.id);
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    const backup = (await cairn.api('GET', `/v1/backups/${backupId}`)).body;
    expect(backup.status).toBe('completed');
    expect(Number(backup.fileCount)).toBe(5); // regular files; the hard link is stored as a link
    expect(backup.sha256).toMatch(/^[0-9a-f]{64}$/);

    const list = await cairn.api('GET', `/v1/instances/${instanceId}/backups`);
    expect(list.body.items.map((b: { id: string }) => b.id)).toContain(backupId);
  });

  it('browses the files of a backup without the archive', async () => {
    const res = await cairn.api('GET', `/v1/backups/${backupId}/files?prefix=data/db/tables`);
    expect(res.status).toBe(200);
    const paths = res.body.items.map((e: { path: string }) => e.path);
    expect(paths).toEqual(expect.arrayContaining(['data/db/tables/users.dat', 'data/db/tables/orders.dat']));
  });

  it('downloads an archive whose tar listing matches the index', async () => {
    const res = await fetch(`${cairn.url}/v1/backups/${backupId}/download`, { headers: { authorization: `Bearer ${cairn.adminToken}` } });
    expect(res.status).toBe(200);
    const file = path.join(cairn.volumeRoot, 'download.tar.zst');
    fs.writeFileSync(file, Buffer.from(await res.arrayBuffer()));
    const listed = execFileSync('tar', ['--zstd', '-tf', file], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map((p) => p.replace(/\/$/, ''))
      .sort();
    const backup = await cairn.prisma.backup.findUniqueOrThrow({ where: { id: backupId } });
    const index = decodeIndex(await buffer(await cairn.runtime.store.get(backup.indexKey)));
    expect(listed).toEqual(index.entries.map((e) => e.path.replace(/\/$/, '')).sort());
    fs.rmSync(file);
  });

  it('restores into the same instance after files changed: tree identical to the backup', async () => {
    fs.writeFileSync(path.join(app1, 'data/db/tables/orders.dat'), 'orders v2, changed after the backup\n');
    fs.rmSync(path.join(app1, 'config/app.yaml'));
    fs.writeFileSync(path.join(app1, 'data/new-file'), 'not in the backup');
    const res = await cairn.api('POST', `/v1/backups/${backupId}/restore`, {});
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const job = await cairn.waitForJob(res.body.job.id);
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    expect(snap(app1)).toEqual(original);
    expect(fs.readdirSync(`${cairn.volumeRoot}/app1`).sort()).toEqual(['config', 'data']);
  });

  it('restores into a second instance', async () => {
    const app2 = path.join(cairn.volumeRoot, 'app2');
    const created = await cairn.api('POST', '/v1/instances', { name: 'app2', nodeId: cairn.nodeId, tenant: cairn.tenant, volumes: volumesOf(app2) });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const res = await cairn.api('POST', `/v1/backups/${backupId}/restore`, { targetInstanceId: created.body.id });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const job = await cairn.waitForJob(res.body.job.id);
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    expect(snap(app2)).toEqual(original);
  });

  it('restores one chosen file only', async () => {
    fs.writeFileSync(path.join(app1, 'data/db/tables/orders.dat'), 'changed again\n');
    fs.writeFileSync(path.join(app1, 'config/app.yaml'), 'port: 9999\n');
    const res = await cairn.api('POST', `/v1/backups/${backupId}/restore`, { paths: ['data/db/tables/orders.dat'] });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const job = await cairn.waitForJob(res.body.job.id);
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    expect(fs.readFileSync(path.join(app1, 'data/db/tables/orders.dat'), 'utf8')).toBe('orders v1\n');
    expect(fs.readFileSync(path.join(app1, 'config/app.yaml'), 'utf8')).toBe('port: 9999\n');
  });

  it('fails a restore of a corrupted archive with a checksum error and leaves the target unchanged', async () => {
    const backup = await cairn.prisma.backup.findUniqueOrThrow({ where: { id: backupId } });
    const bytes = await buffer(await cairn.runtime.store.get(backup.storageKey));
    const corrupt = Buffer.from(bytes);
    corrupt[Math.floor(corrupt.length / 2)]! ^= 0xff;
    await cairn.runtime.store.put(backup.storageKey, corrupt);
    const before = snap(app1);
    const res = await cairn.api('POST', `/v1/backups/${backupId}/restore`, {});
    expect(res.status).toBe(202);
    const job = await cairn.waitForJob(res.body.job.id);
    expect(job.status).toBe('failed');
    expect(String(job.error)).toMatch(/checksum|corrupt|sha256|mismatch/i);
    expect(snap(app1)).toEqual(before);
    await cairn.runtime.store.put(backup.storageKey, bytes);
  });
});
