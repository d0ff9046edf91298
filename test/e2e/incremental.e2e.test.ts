/**
 * Incremental backups end to end (issue 11) through the REST API, with the real Postgres, Redis,
 * S3 server and node worker: a full backup, a changed tree (every kind of change, and a 200 MiB
 * file with 1% of its 1 MiB blocks rewritten in place), an `auto` backup that is incremental and
 * stores about what changed; restore into an empty instance and the download through GNU tar
 * both give exactly the changed tree; deleting the parent keeps the incremental whole, and the
 * last deletion leaves no object behind.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupPrefix } from '@cairn/core';
import { startCairn, type Cairn } from '../support/cairn-harness.ts';
import { snapshotTree } from '../support/tree.ts';

const MiB = 1024 * 1024;
const BIG = 200 * MiB;

function writeRandom(p: string, size: number): void {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  const fd = fs.openSync(p, 'w');
  for (let done = 0; done < size; done += 8 * MiB) fs.writeSync(fd, randomBytes(Math.min(8 * MiB, size - done)));
  fs.closeSync(fd);
}

function populate(data: string): void {
  for (let d = 0; d < 4; d++) for (let f = 0; f < 50; f++) fs.mkdirSync(path.join(data, `d${d}`), { recursive: true });
  for (let d = 0; d < 4; d++) for (let f = 0; f < 50; f++) fs.writeFileSync(path.join(data, `d${d}`, `f${f}.txt`), `file ${d}/${f}\n`.repeat(200 + f));
  fs.writeFileSync(path.join(data, 'edit.txt'), 'version 1\n'.repeat(1000));
  fs.writeFileSync(path.join(data, 'append.log'), 'line\n'.repeat(1000));
  fs.writeFileSync(path.join(data, 'truncate.bin'), Buffer.alloc(40_000, 7));
  fs.writeFileSync(path.join(data, 'delete.me'), 'bye');
  fs.writeFileSync(path.join(data, 'rename-from'), 'moving');
  fs.writeFileSync(path.join(data, 'chmod.sh'), '#!/bin/sh\n');
  fs.writeFileSync(path.join(data, 'was-file'), 'file');
  fs.mkdirSync(path.join(data, 'was-dir'));
  fs.writeFileSync(path.join(data, 'was-dir/inner'), 'inner');
  fs.writeFileSync(path.join(data, 'link-target'), 'linked content');
  fs.linkSync(path.join(data, 'link-target'), path.join(data, 'link-old'));
  fs.symlinkSync('edit.txt', path.join(data, 'sym'));
  writeRandom(path.join(data, 'db/pages.img'), BIG);
}

/** Every kind of change; 1% of the big file's 1 MiB blocks rewritten in place. */
function change(data: string): void {
  const p = (rel: string) => path.join(data, rel);
  fs.writeFileSync(p('edit.txt'), 'version 2\n'.repeat(1000));
  fs.appendFileSync(p('append.log'), 'more\n'.repeat(100));
  fs.truncateSync(p('truncate.bin'), 1234);
  fs.rmSync(p('delete.me'));
  fs.writeFileSync(p('added.txt'), 'new file');
  fs.renameSync(p('rename-from'), p('d2/renamed'));
  fs.chmodSync(p('chmod.sh'), 0o755);
  fs.rmSync(p('was-file'));
  fs.mkdirSync(p('was-file'));
  fs.writeFileSync(p('was-file/now-inside'), 'inside');
  fs.rmSync(p('was-dir'), { recursive: true });
  fs.writeFileSync(p('was-dir'), 'now a file');
  fs.rmSync(p('sym'));
  fs.symlinkSync('append.log', p('sym'));
  fs.rmSync(p('link-old'));
  fs.linkSync(p('link-target'), p('link-new'));
  const fd = fs.openSync(p('db/pages.img'), 'r+');
  for (const block of [3, 101]) fs.writeSync(fd, randomBytes(MiB), 0, MiB, block * MiB);
  fs.closeSync(fd);
}

describe('incremental backups end to end', () => {
  let cairn: Cairn;
  let data: string;
  let instanceId: string;
  let fullId: string;
  let incId: string;
  let changed: ReturnType<typeof snapshotTree>;
  let emptyCount = 0;

  const backup = async (body: object = {}): Promise<any> => {
    const res = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, body);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const job = await cairn.waitForJob(res.body.job.id, undefined, 180_000);
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    return (await cairn.api('GET', `/v1/backups/${res.body.backup.id}`)).body;
  };

  /** Restores `backupId` into a new, empty instance; returns its data directory. */
  const restoreIntoEmpty = async (backupId: string): Promise<string> => {
    const dir = path.join(cairn.volumeRoot, `empty${++emptyCount}`, 'data');
    fs.mkdirSync(dir, { recursive: true });
    const created = await cairn.api('POST', '/v1/instances', {
      name: `empty${emptyCount}`,
      nodeId: cairn.nodeId,
      tenant: cairn.tenant,
      volumes: [{ name: 'data', hostPath: dir }],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const res = await cairn.api('POST', `/v1/backups/${backupId}/restore`, { targetInstanceId: created.body.id });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const job = await cairn.waitForJob(res.body.job.id, undefined, 180_000);
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    return dir;
  };

  const deleteAndClean = async (backupId: string): Promise<void> => {
    const res = await cairn.api('DELETE', `/v1/backups/${backupId}`);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const job = await cairn.waitForJob(res.body.job.id);
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
  };

  const objectKeys = async (): Promise<string[]> => {
    const keys: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: { key: string }[]; nextCursor: string | null } = await cairn.runtime.store.list(
        `instances/${instanceId}/`,
        cursor ? { cursor } : {},
      );
      keys.push(...page.items.map((i) => i.key));
      cursor = page.nextCursor;
    } while (cursor);
    return keys.sort();
  };

  beforeAll(async () => {
    cairn = await startCairn();
    data = path.join(cairn.volumeRoot, 'app', 'data');
    fs.mkdirSync(data, { recursive: true });
    populate(data);
    const res = await cairn.api('POST', '/v1/instances', {
      name: 'app',
      nodeId: cairn.nodeId,
      tenant: cairn.tenant,
      volumes: [{ name: 'data', hostPath: data }],
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    instanceId = res.body.id;
  }, 120_000);
  afterAll(async () => {
    await cairn?.close();
  });

  it('the first auto backup is full', async () => {
    const b = await backup();
    expect(b.kind).toBe('full');
    expect(b.parentId).toBeNull();
    fullId = b.id;
  }, 240_000);

  it('after every kind of change, the next auto backup is incremental and stores about what changed', async () => {
    change(data);
    changed = snapshotTree(data);
    const b = await backup();
    incId = b.id;
    process.stderr.write(`incremental after the changes: stored ${b.storedBytes} B, reused ${b.reusedBytes} B, logical ${b.logicalBytes} B\n`);
    expect(b.kind).toBe('incremental');
    expect(b.parentId).toBe(fullId);
    // 2 MiB of random blocks rewritten, plus the small files whose frames changed: the 200 MiB file
    // contributes its two changed chunks, far under 5% of its size.
    expect(Number(b.storedBytes)).toBeGreaterThan(2 * MiB);
    expect(Number(b.storedBytes)).toBeLessThan(0.05 * BIG);
    expect(Number(b.reusedBytes)).toBeGreaterThan(BIG - 3 * MiB);
    expect(Number(b.logicalBytes)).toBeGreaterThan(BIG);
  }, 240_000);

  it('restoring the incremental into an empty instance gives exactly the changed tree', async () => {
    const dir = await restoreIntoEmpty(incId);
    expect(snapshotTree(dir)).toEqual(changed);
  }, 240_000);

  it('its download, extracted by GNU tar, is exactly the changed tree', async () => {
    const res = await fetch(`${cairn.url}/v1/backups/${incId}/download`, { headers: { authorization: `Bearer ${cairn.adminToken}` } });
    expect(res.status).toBe(200);
    const file = path.join(cairn.volumeRoot, 'inc.tar.zst');
    await pipeline(Readable.fromWeb(res.body as never), fs.createWriteStream(file));
    const out = path.join(cairn.volumeRoot, 'extracted');
    fs.mkdirSync(out);
    execFileSync('tar', ['--zstd', '-xpf', file, '-C', out]);
    expect(snapshotTree(path.join(out, 'data'))).toEqual(changed);
  }, 240_000);

  it('deleting the parent keeps the incremental restorable; the last deletion removes every object', async () => {
    await deleteAndClean(fullId);
    const prefix = (id: string) => backupPrefix(instanceId, id);
    const keys = await objectKeys();
    // The full's archive stays (the incremental reads from it); its index goes.
    expect(keys.filter((k) => k.startsWith(prefix(fullId)))).toEqual([expect.stringMatching(/archive\.tar\.zst$/)]);
    const dir = await restoreIntoEmpty(incId);
    expect(snapshotTree(dir)).toEqual(changed);
    await deleteAndClean(incId);
    expect(await objectKeys()).toEqual([]);
  }, 240_000);
});

describe('a cleanup racing an incremental backup of the parent it deletes', () => {
  let cairn: Cairn;
  let data: string;
  let instanceId: string;

  beforeAll(async () => {
    cairn = await startCairn();
    data = path.join(cairn.volumeRoot, 'race', 'data');
    for (let f = 0; f < 200; f++) {
      fs.mkdirSync(path.join(data, `d${f % 5}`), { recursive: true });
      fs.writeFileSync(path.join(data, `d${f % 5}`, `f${f}`), randomBytes(20_000));
    }
    const res = await cairn.api('POST', '/v1/instances', {
      name: 'race',
      nodeId: cairn.nodeId,
      tenant: cairn.tenant,
      volumes: [{ name: 'data', hostPath: data }],
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    instanceId = res.body.id;
  });
  afterAll(async () => {
    await cairn?.close();
  });

  it('never loses a byte the new backup references: each round downloads whole and exact', async () => {
    const first = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, {});
    expect((await cairn.waitForJob(first.body.job.id)).status).toBe('succeeded');
    let parentId: string = first.body.backup.id;
    const kinds: string[] = [];
    for (let round = 0; round < 4; round++) {
      fs.writeFileSync(path.join(data, `d${round}`, `round${round}`), randomBytes(5000));
      const want = snapshotTree(data);
      // The backup is requested (its parent chosen) and the parent deleted at once: the cleanup
      // and the backup's referenceParent race; either the backup references the parent first (its
      // archive then stays) or it finds the parent gone and writes a full backup.
      const started = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, {});
      expect(started.status, JSON.stringify(started.body)).toBe(202);
      const deleted = await cairn.api('DELETE', `/v1/backups/${parentId}`);
      expect(deleted.status, JSON.stringify(deleted.body)).toBe(202);
      const job = await cairn.waitForJob(started.body.job.id, undefined, 120_000);
      expect(job.status, JSON.stringify(job)).toBe('succeeded');
      expect((await cairn.waitForJob(deleted.body.job.id)).status).toBe('succeeded');
      const b = (await cairn.api('GET', `/v1/backups/${started.body.backup.id}`)).body;
      kinds.push(b.kind);
      const res = await fetch(`${cairn.url}/v1/backups/${b.id}/download`, { headers: { authorization: `Bearer ${cairn.adminToken}` } });
      expect(res.status).toBe(200);
      const file = path.join(cairn.volumeRoot, `race-${round}.tar.zst`);
      await pipeline(Readable.fromWeb(res.body as never), fs.createWriteStream(file));
      const out = path.join(cairn.volumeRoot, `race-out-${round}`);
      fs.mkdirSync(out);
      execFileSync('tar', ['--zstd', '-xpf', file, '-C', out]);
      expect(snapshotTree(path.join(out, 'data'))).toEqual(want);
      parentId = b.id;
    }
    // Both outcomes are legitimate; the point is that each backup is whole.
    expect(kinds.every((k) => k === 'full' || k === 'incremental')).toBe(true);
  }, 300_000);
});
