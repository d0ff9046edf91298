import { buffer } from 'node:stream/consumers';
import type { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { ListFilesQuery } from '@cairn/core/api/index.ts';
import { gatewayFixture, member, rejection } from './gateway-fixture.ts';

async function setup() {
  const f = gatewayFixture();
  f.node('n1', ['/srv/a']);
  const owner = member(f.tenant('acme').id);
  const inst = await f.instance(
    {
      nodeId: 'n1',
      volumes: [
        { name: 'conf', hostPath: '/srv/a/conf' },
        { name: 'data', hostPath: '/srv/a/data' },
      ],
    },
    owner,
  );
  const { backup, job } = await f.backups.start(owner, inst.id, {});
  await f.complete(backup.id, job.id);
  const row = (await f.records.backups.get(backup.id))!;
  const archive = await f.storeArchive(row, {
    conf: { 'app.ini': '[app]\n' },
    data: { 'readme.txt': 'hello\n', 'docs/a.txt': 'a'.repeat(1000), 'docs/sub/b.txt': 'bbb', 'docs-other.txt': 'x' },
  });
  await f.records.backups.updateWhere({ id: backup.id }, { sizeBytes: BigInt(archive.length) });
  return { f, owner, inst, backup: row, archive };
}

async function tarEntries(stream: Readable): Promise<Record<string, string>> {
  const extract = tarStream.extract();
  const out: Record<string, string> = {};
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, body, next) => {
      buffer(body).then((b) => {
        out[header.name] = header.type === 'file' ? b.toString() : `<${header.type}>`;
        next();
      }, reject);
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  stream.pipe(extract);
  await done;
  return out;
}

describe('BackupFilesService', () => {
  it('lists a directory recursively or its direct children, from the index only', async () => {
    const { f, owner, backup } = await setup();
    const all = await f.files.list(owner, backup.id, { prefix: 'data/docs', recursive: true, limit: 200 });
    expect(all.items.map((e) => e.path)).toEqual(['data/docs', 'data/docs/a.txt', 'data/docs/sub', 'data/docs/sub/b.txt']);
    expect(all.items[1]).toMatchObject({ type: 'file', size: 1000 });
    // The query as the route hands it over: a trailing '/' is dropped by the schema.
    const children = await f.files.list(owner, backup.id, ListFilesQuery.parse({ prefix: 'data/docs/', recursive: 'false' }));
    expect(children.items.map((e) => e.path)).toEqual(['data/docs/a.txt', 'data/docs/sub']);
    const roots = await f.files.list(owner, backup.id, { prefix: '', recursive: false, limit: 200 });
    expect(roots.items.map((e) => e.path)).toEqual(['conf', 'data']);
  });

  it('pages a listing by path', async () => {
    const { f, owner, backup } = await setup();
    const first = await f.files.list(owner, backup.id, { prefix: 'data', recursive: true, limit: 3 });
    // Byte order: '-' sorts before '/'.
    expect(first.items.map((e) => e.path)).toEqual(['data', 'data/docs', 'data/docs-other.txt']);
    expect(first.nextCursor).toBe('data/docs-other.txt');
    const rest = await f.files.list(owner, backup.id, { prefix: 'data', recursive: true, limit: 10, cursor: first.nextCursor! });
    expect(rest.items.map((e) => e.path)).toEqual(['data/docs/a.txt', 'data/docs/sub', 'data/docs/sub/b.txt', 'data/readme.txt']);
    expect(rest.nextCursor).toBeNull();
    // A prefix is a backup path (or empty), checked by the route's schema like download?path=.
    for (const bad of ['/data', '..', 'data/../conf', 'data/\u0000', '\ud800']) expect(ListFilesQuery.safeParse({ prefix: bad }).success, bad).toBe(false);
  });

  it('downloads the archive as stored, or one directory of it as a plain tar', async () => {
    const { f, owner, backup, archive } = await setup();
    const whole = await f.files.download(owner, backup.id, undefined);
    expect(whole).toMatchObject({ contentType: 'application/gzip', filename: `${backup.id}.tar.gz`, length: archive.length });
    expect(await buffer(whole.stream)).toEqual(archive);

    const docs = await f.files.download(owner, backup.id, 'data/docs');
    expect(docs).toMatchObject({ contentType: 'application/x-tar', filename: 'docs.tar' });
    const entries = await tarEntries(docs.stream);
    expect(entries['data/docs/a.txt']).toBe('a'.repeat(1000));
    expect(entries['data/docs/sub/b.txt']).toBe('bbb');
    expect(Object.keys(entries).some((p) => p.includes('docs-other'))).toBe(false);
  });

  it('answers 404 for a path not in the backup and for another tenant, 409 for a backup not completed', async () => {
    const { f, owner, inst, backup } = await setup();
    expect((await rejection(f.files.download(owner, backup.id, 'data/nope'))).code).toBe('not-found');
    const stranger = member(f.tenant('other').id);
    expect((await rejection(f.files.list(stranger, backup.id, { prefix: '', recursive: true, limit: 10 }))).code).toBe('not-found');
    const pending = await f.backups.start(owner, inst.id, {});
    const err = await rejection(f.files.list(owner, pending.backup.id, { prefix: '', recursive: true, limit: 10 }));
    expect(err).toMatchObject({ code: 'conflict', details: { status: 'pending' } });
  });

  it('reports a missing archive or index object as archive-missing (409)', async () => {
    const { f, owner, backup } = await setup();
    await f.store.delete(backup.storageKey);
    expect(await rejection(f.files.download(owner, backup.id, undefined))).toMatchObject({ code: 'archive-missing' });
    await f.store.delete(backup.indexKey);
    expect(await rejection(f.files.list(owner, backup.id, { prefix: '', recursive: true, limit: 10 }))).toMatchObject({ code: 'archive-missing' });
  });
});
