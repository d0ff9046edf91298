import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tarStream from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeIndex, packArchive } from '@cairn/core/archive/index.ts';
import { startTestGateway, type TestGateway } from './gateway-harness.ts';

let gw: TestGateway;
let member: string;
let backupId: string;
let archiveBytes: Buffer;
let dir: string;

/**
 * A real completed backup: a small directory tree packed by the archive engine, its archive and
 * index put into the run's S3 under the keys of the Backup row, as a worker would leave them.
 */
beforeAll(async () => {
  gw = await startTestGateway({ COMPRESSION: 'gzip' });
  const nodeId = `files-${gw.tag}`;
  await gw.node(nodeId, ['/srv/files']);
  member = (await gw.token('member', `files-${gw.tag}`)).token;
  const inst = (
    await gw.api('POST', '/v1/instances', {
      token: member,
      body: {
        name: 'app',
        nodeId,
        volumes: [
          { name: 'data', hostPath: '/srv/files/app/data' },
          { name: 'conf', hostPath: '/srv/files/app/conf' },
        ],
      },
    })
  ).body;
  const { backup, job } = (await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member })).body;
  backupId = backup.id;

  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-gw-files-'));
  fs.mkdirSync(path.join(dir, 'data/docs/sub'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'data/readme.txt'), 'hello\n');
  fs.writeFileSync(path.join(dir, 'data/docs/a.txt'), 'a'.repeat(1000));
  fs.writeFileSync(path.join(dir, 'data/docs/sub/b.txt'), 'bbb');
  fs.writeFileSync(path.join(dir, 'data/docs-other.txt'), 'not in docs');
  fs.symlinkSync('readme.txt', path.join(dir, 'data/link'));
  fs.mkdirSync(path.join(dir, 'conf'));
  fs.writeFileSync(path.join(dir, 'conf/app.ini'), '[app]\n');

  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  const result = await packArchive(
    {
      volumes: [
        { name: 'data', dir: path.join(dir, 'data') },
        { name: 'conf', dir: path.join(dir, 'conf') },
      ],
      codec: 'gzip',
      blockSize: 64 * 1024,
      meta: { backupId },
    },
    sink,
  );
  archiveBytes = Buffer.concat(chunks);
  await gw.store.put(backup.storageKey, archiveBytes, { contentType: 'application/gzip' });
  await gw.store.put(backup.indexKey, encodeIndex(result.index));
  await gw.prisma.backup.update({
    where: { id: backupId },
    data: { status: 'completed', completedAt: new Date(), sizeBytes: BigInt(archiveBytes.length), sha256: result.sha256, fileCount: result.fileCount },
  });
  await gw.prisma.job.update({ where: { id: job.id }, data: { status: 'succeeded', finishedAt: new Date() } });
});

afterAll(async () => {
  await gw?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const files = (query: string) => gw.api('GET', `/v1/backups/${backupId}/files${query}`, { token: member });

/** Entry names and contents of a tar stream. */
async function untar(stream: Readable): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const extract = tarStream.extract();
  extract.on('entry', (header, body, next) => {
    const parts: Buffer[] = [];
    body.on('data', (c: unknown) => parts.push(c as Buffer));
    body.on('end', () => {
      out.set(header.name.replace(/\/$/, ''), header.type === 'symlink' ? `-> ${header.linkname}` : Buffer.concat(parts).toString());
      next();
    });
  });
  await pipeline(stream, extract);
  return out;
}

describe('browsing a backup', () => {
  it('lists every entry under a prefix, sorted by path, with file metadata', async () => {
    const res = await files('?prefix=data/docs');
    expect(res.status).toBe(200);
    expect(res.body.items.map((e: { path: string }) => e.path)).toEqual(['data/docs', 'data/docs/a.txt', 'data/docs/sub', 'data/docs/sub/b.txt']);
    const a = res.body.items[1];
    expect(a).toMatchObject({ type: 'file', size: 1000, mode: expect.any(Number), sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(new Date(a.mtime).getTime()).toBeGreaterThan(Date.now() - 3600_000);
    expect(res.body.nextCursor).toBeNull();
  });

  it('lists direct children only when recursive=false, and the volumes at the top', async () => {
    const top = await files('?recursive=false');
    expect(top.body.items.map((e: { path: string }) => e.path)).toEqual(['conf', 'data']);
    const data = await files('?prefix=data&recursive=false');
    expect(data.body.items.map((e: { path: string }) => e.path)).toEqual(['data/docs', 'data/docs-other.txt', 'data/link', 'data/readme.txt']);
    expect(data.body.items.find((e: { path: string }) => e.path === 'data/link')).toMatchObject({ type: 'symlink', linkTarget: 'readme.txt' });
  });

  it('paginates with the last path as cursor', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await files(`?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(res.status).toBe(200);
      expect(res.body.items.length).toBeLessThanOrEqual(3);
      seen.push(...res.body.items.map((e: { path: string }) => e.path));
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...seen].sort());
    expect(seen).toEqual(expect.arrayContaining(['conf', 'conf/app.ini', 'data', 'data/readme.txt', 'data/docs/sub/b.txt']));
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('refuses backups that are not completed, and hides other tenants', async () => {
    const other = (await gw.token('member', `files-o-${gw.tag}`)).token;
    expect((await gw.api('GET', `/v1/backups/${backupId}/files`, { token: other })).status).toBe(404);
    const pending = await gw.prisma.backup.findFirst({ where: { status: 'pending' } });
    if (pending) expect((await gw.api('GET', `/v1/backups/${pending.id}/files`)).status).toBe(409);
  });
});

describe('downloading', () => {
  it('streams the whole archive as stored, with its content type and file name', async () => {
    const res = await fetch(`${gw.url}/v1/backups/${backupId}/download`, { headers: { authorization: `Bearer ${member}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/gzip');
    expect(res.headers.get('content-disposition')).toContain(`${backupId}.tar.gz`);
    expect(Number(res.headers.get('content-length'))).toBe(archiveBytes.length);
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.equals(archiveBytes)).toBe(true);
    // It is an ordinary .tar.gz.
    const entries = await untar(Readable.from([body]).pipe(createGunzip()));
    expect(entries.get('data/readme.txt')).toBe('hello\n');
    expect(entries.get('conf/app.ini')).toBe('[app]\n');
  });

  it('exports one directory as a plain tar', async () => {
    const res = await fetch(`${gw.url}/v1/backups/${backupId}/download?path=data/docs`, { headers: { authorization: `Bearer ${member}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-tar');
    expect(res.headers.get('content-disposition')).toContain('docs.tar');
    const entries = await untar(Readable.from([Buffer.from(await res.arrayBuffer())]));
    expect(entries.get('data/docs/a.txt')).toBe('a'.repeat(1000));
    expect(entries.get('data/docs/sub/b.txt')).toBe('bbb');
    expect(entries.has('data/readme.txt')).toBe(false);
    expect(entries.has('data/docs-other.txt')).toBe(false);
  });

  it('answers 404 for a path the backup does not hold and 400 for an unsafe one', async () => {
    expect((await gw.api('GET', `/v1/backups/${backupId}/download?path=data/nope`, { token: member })).status).toBe(404);
    const unsafe = await gw.api('GET', `/v1/backups/${backupId}/download?path=data/../etc`, { token: member });
    expect(unsafe.status).toBe(400);
    expect(unsafe.body.error.details[0].path).toBe('path');
  });

  it('checks restore paths against the index', async () => {
    const res = await gw.api('POST', `/v1/backups/${backupId}/restore`, { token: member, body: { paths: ['data/docs/a.txt', 'data/missing.txt'] } });
    expect(res.status).toBe(400);
    expect(res.body.error.details).toEqual([{ path: 'paths.1', message: expect.stringContaining('not in backup') }]);
    const ok = await gw.api('POST', `/v1/backups/${backupId}/restore`, { token: member, body: { paths: ['data/docs'] } });
    expect(ok.status).toBe(202);
    expect(ok.body.job.params).toEqual({ volumes: ['data'], paths: ['data/docs'], mode: 'replace' });
  });
});
