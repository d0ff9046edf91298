import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { archiveKey } from '@cairn/core';
import { archiveLength, decodeIndex, encodeIndex, hasForeignBlocks } from '@cairn/core/archive/index.ts';
import { splitArchive } from '../../archive/helpers/multi-object.ts';
import { gatewayFixture, member, rejection } from './gateway-fixture.ts';

/**
 * Downloads of an incremental backup (format 2) whose frames partly live in another backup's
 * archive object: a real archive split into this backup's object and its parent's.
 */
async function setup() {
  const f = gatewayFixture();
  f.node('n1', ['/srv/a']);
  const owner = member(f.tenant('acme').id);
  const inst = await f.instance({ nodeId: 'n1', volumes: [{ name: 'data', hostPath: '/srv/a/data' }] }, owner);
  const { backup, job } = await f.backups.start(owner, inst.id, {});
  await f.complete(backup.id, job.id);
  const row = (await f.records.backups.get(backup.id))!;
  const files: Record<string, string> = { 'readme.txt': 'hello\n', 'docs/sub/b.txt': 'bbb' };
  // Incompressible, so it spans many 4 KiB blocks (gzip members) of both objects.
  for (let i = 0; i < 6; i++) files[`docs/part-${i}.bin`] = Array.from({ length: 3000 }, (_, k) => ((k * 7919 + i * 104729) % 65536).toString(36)).join('');
  const archive = await f.storeArchive(row, { data: files });
  const index = decodeIndex(await buffer(await f.store.get(row.indexKey)));
  const parentId = 'parent-backup-1';
  const split = splitArchive(archive, index, (i) => (i % 3 === 1 ? parentId : undefined));
  expect(hasForeignBlocks(split.index)).toBe(true);
  const parentKey = archiveKey(inst.id, parentId, 'gzip');
  await f.store.put(row.storageKey, split.own);
  await f.store.put(parentKey, split.objects.get(parentId)!);
  await f.store.put(row.indexKey, encodeIndex(split.index));
  await f.records.backups.updateWhere({ id: backup.id }, { sizeBytes: BigInt(split.own.length) });
  return { f, owner, backup: row, archive, index, files, split, parentKey };
}

describe('downloading an incremental backup', () => {
  it('streams the complete .tar.gz assembled from both objects, with its full length', async () => {
    const { f, owner, backup, archive, files, split } = await setup();
    const d = await f.files.download(owner, backup.id, undefined);
    expect(d).toMatchObject({ contentType: 'application/gzip', filename: `${backup.id}.tar.gz`, length: archiveLength(split.index) });
    const body = await buffer(d.stream);
    expect(body.length).toBe(archive.length);
    expect(body.equals(archive)).toBe(true);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-unit-mo-'));
    try {
      execFileSync('tar', ['-xzf', '-', '-C', dir], { input: body });
      for (const [rel, content] of Object.entries(files)) expect(fs.readFileSync(path.join(dir, 'data', rel), 'utf8')).toBe(content);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('exports one directory from blocks in both objects', async () => {
    const { f, owner, backup, files } = await setup();
    const d = await f.files.download(owner, backup.id, 'data/docs');
    const tar = await buffer(d.stream);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-unit-mo-'));
    try {
      execFileSync('tar', ['-xf', '-', '-C', dir], { input: tar });
      for (const [rel, content] of Object.entries(files)) {
        const p = path.join(dir, 'data', rel);
        if (rel.startsWith('docs/')) expect(fs.readFileSync(p, 'utf8')).toBe(content);
        else expect(fs.existsSync(p)).toBe(false);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a missing parent object is archive-missing naming its key, before the download starts', async () => {
    const { f, owner, backup, parentKey } = await setup();
    await f.store.delete(parentKey);
    const err = await rejection(f.files.download(owner, backup.id, undefined));
    expect(err).toMatchObject({ code: 'archive-missing' });
    expect(err.message).toContain(parentKey);
    // One path: the blocks it needs are read as the tar is sent.
    const one = await f.files.download(owner, backup.id, 'data/docs');
    const err2 = await rejection(buffer(one.stream));
    expect(err2).toMatchObject({ code: 'archive-missing' });
    expect(err2.message).toContain(parentKey);
  });

  it('a backup without foreign blocks still streams its own object as stored, in one read', async () => {
    const { f, owner, backup, archive, index } = await setup();
    await f.store.put(backup.storageKey, archive);
    await f.store.put(backup.indexKey, encodeIndex(index));
    await f.records.backups.updateWhere({ id: backup.id }, { sizeBytes: BigInt(archive.length) });
    const gets: unknown[][] = [];
    const get = f.store.get.bind(f.store);
    f.store.get = (...args) => {
      gets.push(args);
      return get(...args);
    };
    const d = await f.files.download(owner, backup.id, undefined);
    expect(d.length).toBe(archive.length);
    expect((await buffer(d.stream)).equals(archive)).toBe(true);
    expect(gets.filter(([key]) => key === backup.storageKey)).toEqual([[backup.storageKey]]);
  });
});
