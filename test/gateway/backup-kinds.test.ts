import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from './gateway-harness.ts';

/** `POST /v1/instances/:id/backups {kind}`: full, incremental, auto (issue 11 "Backup kinds"), against real Postgres. */

let gw: TestGateway;
let nodeId: string;
let member: string;
const root = '/srv/kinds';
let n = 0;

beforeAll(async () => {
  gw = await startTestGateway({ FULL_BACKUP_EVERY: '3' });
  nodeId = `kinds-${gw.tag}`;
  await gw.node(nodeId, [root]);
  member = (await gw.token('member', `kinds-${gw.tag}`)).token;
});

afterAll(async () => {
  await gw?.close();
});

async function instance(volumes = ['data', 'logs']): Promise<{ id: string; name: string }> {
  const name = `k${++n}`;
  const res = await gw.api('POST', '/v1/instances', {
    token: member,
    body: { name, nodeId, volumes: volumes.map((v) => ({ name: v, hostPath: `${root}/${name}/${v}` })) },
  });
  expect(res.status).toBe(201);
  return res.body;
}

async function start(instanceId: string, body: Record<string, unknown> = {}) {
  return gw.api('POST', `/v1/instances/${instanceId}/backups`, { token: member, body });
}

/** Marks a backup completed in archive format 2 (and its job succeeded), as a node worker would. */
async function complete(res: { body: { backup: { id: string }; job: { id: string } } }, data: Record<string, unknown> = {}): Promise<string> {
  const { backup, job } = res.body;
  await gw.prisma.backup.update({
    where: { id: backup.id },
    data: { status: 'completed', completedAt: new Date(), format: 2, sizeBytes: 1000n, logicalBytes: 5000n, reusedBytes: 0n, sha256: 'x', ...data },
  });
  await gw.prisma.job.update({ where: { id: job.id }, data: { status: 'succeeded', finishedAt: new Date() } });
  return backup.id;
}

describe('the kind of a new backup', () => {
  it('refuses an unknown kind with a 400 naming the field', async () => {
    const inst = await instance();
    const res = await start(inst.id, { kind: 'delta' });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation');
    expect(res.body.error.details).toEqual([{ path: 'kind', message: 'must be one of auto, full, incremental' }]);
    const notString = await start(inst.id, { kind: 3 });
    expect(notString.status).toBe(400);
    expect(notString.body.error.details[0].path).toBe('kind');
    expect(await gw.prisma.backup.count({ where: { instanceId: inst.id } })).toBe(0);
  });

  it('incremental with nothing to build on is a 409 saying why, and writes nothing', async () => {
    const inst = await instance();
    const res = await start(inst.id, { kind: 'incremental' });
    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({
      code: 'conflict',
      message: expect.stringMatching(/cannot take an incremental backup: no completed backup of volumes data, logs .*the instance has no completed backup/),
    });
    expect(await gw.prisma.backup.count({ where: { instanceId: inst.id } })).toBe(0);
    expect(await gw.prisma.job.count({ where: { instanceId: inst.id } })).toBe(0);

    // A completed backup in archive format 1 cannot be a parent either.
    const legacy = await complete(await start(inst.id, { kind: 'full' }), { format: 1 });
    const again = await start(inst.id, { kind: 'incremental' });
    expect(again.status).toBe(409);
    expect(again.body.error.message).toContain(`the newest completed backup ${legacy} cannot be a parent: it is in archive format 1`);
    // auto falls back to full instead.
    const auto = await start(inst.id);
    expect(auto.status).toBe(202);
    expect(auto.body.backup).toMatchObject({ kind: 'full', parentId: null });
  });

  it('auto builds on the newest completed backup of the same volumes and codec; the row records kind and parent', async () => {
    const inst = await instance();
    const first = await start(inst.id);
    expect(first.status).toBe(202);
    expect(first.body.backup).toMatchObject({ kind: 'full', parentId: null, storedBytes: null, reusedBytes: null, logicalBytes: null });
    const full = await complete(first);

    const second = await start(inst.id, { kind: 'auto' });
    expect(second.status).toBe(202);
    expect(second.body.backup).toMatchObject({ kind: 'incremental', parentId: full });
    const row = await gw.prisma.backup.findUnique({ where: { id: second.body.backup.id } });
    expect(row).toMatchObject({ kind: 'incremental', parentId: full });
    const shown = await gw.api('GET', `/v1/backups/${second.body.backup.id}`, { token: member });
    expect(shown.body).toMatchObject({ kind: 'incremental', parentId: full, status: 'pending' });
    expect(shown.body).not.toHaveProperty('exclusiveBytes');
  });

  it('skips failed, deleted, other-volume and other-codec backups when looking for a parent', async () => {
    const inst = await instance();
    const good = await complete(await start(inst.id));
    // Newer, but none of them can be a parent.
    const dataOnly = await complete(await start(inst.id, { volumes: ['data'] }));
    await complete(await start(inst.id, { kind: 'full' }), { compression: gw.config.COMPRESSION === 'gzip' ? 'zstd' : 'gzip' });
    await complete(await start(inst.id, { kind: 'full' }), { status: 'failed', completedAt: new Date() });
    await complete(await start(inst.id, { kind: 'full' }), { status: 'deleted', deletedAt: new Date() });
    const res = await start(inst.id, { kind: 'incremental' });
    expect(res.status).toBe(202);
    expect(res.body.backup).toMatchObject({ kind: 'incremental', parentId: good });

    // A subset of the volumes has its own chain.
    await gw.prisma.job.update({ where: { id: res.body.job.id }, data: { status: 'succeeded' } });
    await gw.prisma.backup.update({ where: { id: res.body.backup.id }, data: { status: 'failed' } });
    const subset = await start(inst.id, { volumes: ['data'] });
    expect(subset.body.backup).toMatchObject({ kind: 'incremental', volumes: ['data'], parentId: dataOnly });
  });

  it('full is full; auto takes a full backup every FULL_BACKUP_EVERY (3) backups', async () => {
    const inst = await instance();
    const kinds: string[] = [];
    let last: string | null = null;
    for (let i = 0; i < 7; i++) {
      const res = await start(inst.id);
      expect(res.status).toBe(202);
      kinds.push(res.body.backup.kind);
      expect(res.body.backup.parentId).toBe(res.body.backup.kind === 'incremental' ? last : null);
      last = await complete(res);
    }
    expect(kinds).toEqual(['full', 'incremental', 'incremental', 'full', 'incremental', 'incremental', 'full']);

    const full = await start(inst.id, { kind: 'full' });
    expect(full.body.backup).toMatchObject({ kind: 'full', parentId: null });
    await complete(full);
    // An explicit incremental may go past FULL_BACKUP_EVERY.
    for (let i = 0; i < 3; i++) expect((await complete(await start(inst.id, { kind: 'incremental' }))).length).toBeGreaterThan(0);
    const rows = await gw.prisma.backup.findMany({ where: { instanceId: inst.id }, orderBy: { id: 'asc' } });
    expect(rows.slice(-4).map((r) => r.kind)).toEqual(['full', 'incremental', 'incremental', 'incremental']);
  });

  it('still answers 409 for a busy instance first', async () => {
    const inst = await instance();
    const first = await start(inst.id);
    const second = await start(inst.id, { kind: 'incremental' });
    expect(second.status).toBe(409);
    expect(second.body.error.details).toEqual({ jobId: first.body.job.id });
  });
});

describe('backup sizes in the API', () => {
  it('shows stored, logical and reused bytes, and for a completed backup the bytes only it holds', async () => {
    const inst = await instance();
    const full = await complete(await start(inst.id), { sizeBytes: 1000n, logicalBytes: 5000n, reusedBytes: 0n });
    const shown = await gw.api('GET', `/v1/backups/${full}`, { token: member });
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ kind: 'full', sizeBytes: 1000, storedBytes: 1000, logicalBytes: 5000, reusedBytes: 0, exclusiveBytes: 1000 });

    const inc = await complete(await start(inst.id), { sizeBytes: 40n, logicalBytes: 5100n, reusedBytes: 960n });
    await gw.records.backups.addReferences(inc, [full]);
    const incShown = await gw.api('GET', `/v1/backups/${inc}`, { token: member });
    expect(incShown.body).toMatchObject({ kind: 'incremental', parentId: full, storedBytes: 40, reusedBytes: 960, logicalBytes: 5100, exclusiveBytes: 40 });
    // The full backup's object is read by a live incremental: deleting the full frees nothing.
    expect((await gw.api('GET', `/v1/backups/${full}`, { token: member })).body.exclusiveBytes).toBe(0);
    // The list carries the sizes too (exclusiveBytes only on GET of one backup).
    const list = await gw.api('GET', `/v1/instances/${inst.id}/backups`, { token: member });
    expect(list.body.items.map((b: Record<string, unknown>) => [b.id, b.kind, b.storedBytes, b.reusedBytes, 'exclusiveBytes' in b])).toEqual([
      [inc, 'incremental', 40, 960, false],
      [full, 'full', 1000, 0, false],
    ]);
  });
});
