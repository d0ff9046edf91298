import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { newId } from '@cairn/core';
import { encodeIndex, packArchive } from '@cairn/core/archive/index.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from './gateway-harness.ts';

/**
 * `POST /v1/instances/:id/migrate` and `POST /v1/backups/:id/migrate` (issue 12) against the
 * run's Postgres and Redis, no workers: the pre-flight answers, the parent Job row and its BullMQ
 * job on `control`, children on GET, cancel of the parent.
 */

let gw: TestGateway;
let member: string;
let stranger: string;
let nodeA: string;
let nodeB: string;
let offline: string;
let silent: string;
let n = 0;

beforeAll(async () => {
  gw = await startTestGateway();
  nodeA = `ma-${gw.tag}`;
  nodeB = `mb-${gw.tag}`;
  offline = `mc-${gw.tag}`;
  silent = `md-${gw.tag}`;
  await gw.node(nodeA, ['/srv/ma', '/srv/shared']);
  await gw.node(nodeB, ['/srv/mb', '/srv/shared']);
  await gw.node(offline, ['/srv/mc'], 10 * 60_000);
  await gw.node(silent, ['/srv/md'], null);
  member = (await gw.token('member', `mig-${gw.tag}`)).token;
  stranger = (await gw.token('member', `mig-other-${gw.tag}`)).token;
});

afterAll(async () => {
  await gw?.close();
});

interface Inst {
  id: string;
  name: string;
  nodeId: string;
  tenant: string;
  volumes: { name: string; hostPath: string }[];
}

/** An instance on `nodeId` (default node A) with volumes at `<root>/<name>/<volume>` (default root /srv/shared, inside both A's and B's roots). */
async function instance(options: { nodeId?: string; root?: string; volumes?: string[]; token?: string } = {}): Promise<Inst> {
  const name = `m${++n}`;
  const root = options.root ?? '/srv/shared';
  const res = await gw.api('POST', '/v1/instances', {
    token: options.token ?? member,
    body: {
      name,
      nodeId: options.nodeId ?? nodeA,
      volumes: (options.volumes ?? ['data', 'logs']).map((v) => ({ name: v, hostPath: `${root}/${name}/${v}` })),
    },
  });
  expect(res.status, res.text).toBe(201);
  return res.body;
}

const pathOf = (inst: Inst, volume: string) => inst.volumes.find((v) => v.name === volume)!.hostPath;
const migrate = (id: string, body: unknown, token = member) => gw.api('POST', `/v1/instances/${id}/migrate`, { token, body });
const migrateBackup = (id: string, body: unknown, token = member) => gw.api('POST', `/v1/backups/${id}/migrate`, { token, body });

/** A completed backup of the instance (as a node worker leaves it). */
async function completedBackup(inst: Inst, volumes?: string[]): Promise<string> {
  const res = await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member, body: volumes ? { volumes } : {} });
  expect(res.status, res.text).toBe(202);
  await gw.prisma.backup.update({ where: { id: res.body.backup.id }, data: { status: 'completed', completedAt: new Date(), sizeBytes: 10n, sha256: 'x' } });
  await gw.prisma.job.update({ where: { id: res.body.job.id }, data: { status: 'succeeded', finishedAt: new Date() } });
  return res.body.backup.id;
}

/** Packs `tree` (volume → file → content) and stores its index under the backup's index key, as a node worker leaves it. */
async function storeIndex(backupId: string, tree: Record<string, Record<string, string>>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-gw-migrate-'));
  try {
    for (const [volume, files] of Object.entries(tree)) {
      fs.mkdirSync(path.join(dir, volume), { recursive: true });
      for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, volume, name), content);
    }
    const sink = new Writable({ write: (_chunk, _enc, cb) => cb() });
    const volumes = Object.keys(tree).map((name) => ({ name, dir: path.join(dir, name) }));
    const result = await packArchive({ volumes, codec: 'gzip', blockSize: 64 * 1024, meta: { backupId } }, sink);
    const row = await gw.prisma.backup.findUniqueOrThrow({ where: { id: backupId } });
    await gw.store.put(row.indexKey, encodeIndex(result.index));
    result.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The answer is `status`, its message matches, and (when given) a detail names `path`. */
function expectError(res: { status: number; body: any; text: string }, status: number, message: RegExp, path?: string): void {
  expect(res.status, res.text).toBe(status);
  expect(res.body.error.message).toMatch(message);
  if (path !== undefined) expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(path);
}

async function migrateJobs(instanceId: string): Promise<number> {
  return gw.prisma.job.count({ where: { type: 'migrate', OR: [{ instanceId }, { targetInstanceId: instanceId }] } });
}

describe('move (targetNodeId)', () => {
  it('answers 202 {job}: one queued migrate Job on control with every host path filled in, enqueued as "migrate"', async () => {
    const inst = await instance();
    const res = await migrate(inst.id, { targetNodeId: nodeB, hostPaths: { data: `/srv/mb/${inst.name}/data` } });
    expect(res.status, res.text).toBe(202);
    const { job } = res.body;
    const params = {
      mode: 'move',
      sourceInstanceId: inst.id,
      targetNodeId: nodeB,
      hostPaths: { data: `/srv/mb/${inst.name}/data`, logs: pathOf(inst, 'logs') },
    };
    expect(job).toMatchObject({
      type: 'migrate',
      status: 'queued',
      instanceId: inst.id,
      backupId: null,
      targetInstanceId: inst.id,
      nodeId: null,
      queue: 'control',
      params,
      parentJobId: null,
      progress: null,
      children: [],
    });
    const row = await gw.prisma.job.findUnique({ where: { id: job.id } });
    expect(row).toMatchObject({ type: 'migrate', status: 'queued', queue: 'control', nodeId: null, parentJobId: null, instanceId: inst.id, backupId: null });
    expect(row!.params).toEqual(params);
    const queued = await gw.jobQueues.queue('control').getJob(job.id);
    expect(queued?.name).toBe('migrate');
    expect(queued?.data).toEqual({ jobId: job.id });
    expect(await queued!.getState()).toBe('waiting');

    expect((await gw.api('GET', `/v1/jobs/${job.id}`, { token: member })).body).toEqual(job);
    expect((await gw.api('GET', `/v1/jobs/${job.id}`, { token: stranger })).status).toBe(404);
  });

  it('refuses an unknown node (404), an offline one (409) and the node the instance is on (400), each named', async () => {
    const inst = await instance();
    expectError(await migrate(inst.id, { targetNodeId: 'no-such-node' }), 404, /node no-such-node not found/);
    expectError(await migrate(inst.id, { targetNodeId: offline }), 409, new RegExp(`node ${offline} is offline: its last heartbeat was \\d+ s ago`));
    expectError(await migrate(inst.id, { targetNodeId: silent }), 409, new RegExp(`node ${silent} is offline: its worker has never sent a heartbeat`));
    expectError(await migrate(inst.id, { targetNodeId: nodeA }), 400, new RegExp(`already on node ${nodeA}`), 'targetNodeId');
    expect(await migrateJobs(inst.id)).toBe(0);
  });

  it('refuses host paths outside the node’s roots (default ones too), unknown volumes, relative or unnormalised paths, and nested ones (400)', async () => {
    const inst = await instance({ root: '/srv/ma' });
    // The defaults (/srv/ma/...) are not inside node B's roots.
    const defaults = await migrate(inst.id, { targetNodeId: nodeB });
    expectError(defaults, 400, /volume data: its current path \/srv\/ma\/\S+ \(the default\) is not inside a volume root of node/, 'hostPaths.data');
    expect(defaults.body.error.details.map((d: { path: string }) => d.path)).toEqual(['hostPaths.data', 'hostPaths.logs']);
    const outside = await migrate(inst.id, { targetNodeId: nodeB, hostPaths: { data: '/srv/mb/x/data', logs: '/elsewhere/logs' } });
    expectError(outside, 400, /volume logs: \/elsewhere\/logs is not inside a volume root of node/, 'hostPaths.logs');
    expect(outside.body.error.details).toHaveLength(1);
    // A root that only shares a prefix is not a root.
    expectError(await migrate(inst.id, { targetNodeId: nodeB, hostPaths: { data: '/srv/mbx/d', logs: '/srv/mb/l' } }), 400, /volume data/, 'hostPaths.data');

    expectError(
      await migrate(inst.id, { targetNodeId: nodeB, hostPaths: { data: '/srv/mb/d', logs: '/srv/mb/l', cache: '/srv/mb/c' } }),
      400,
      /has no volume cache/,
      'hostPaths.cache',
    );
    expectError(await migrate(inst.id, { targetNodeId: nodeB, hostPaths: { data: 'srv/mb/d' } }), 400, /absolute/, 'hostPaths.data');
    expectError(await migrate(inst.id, { targetNodeId: nodeB, hostPaths: { data: '/srv/mb/../d' } }), 400, /'\.\.'/, 'hostPaths.data');
    expectError(await migrate(inst.id, { targetNodeId: nodeB, hostPaths: { data: '/srv/mb/d/' } }), 400, /normalised/, 'hostPaths.data');
    expectError(
      await migrate(inst.id, { targetNodeId: nodeB, hostPaths: { data: '/srv/mb/d', logs: '/srv/mb/d/logs' } }),
      400,
      /overlaps volume data/,
      'hostPaths.logs',
    );
    expect(await migrateJobs(inst.id)).toBe(0);
  });

  it('refuses a host path equal to, inside or containing another instance’s volume on the target node (409 naming it)', async () => {
    const there = await instance({ nodeId: nodeB, root: '/srv/mb', volumes: ['files'] });
    const theirs = await instance({ nodeId: nodeB, root: '/srv/mb', volumes: ['files'], token: stranger });
    const inst = await instance();
    const logs = pathOf(inst, 'logs');
    const taken = pathOf(there, 'files');
    for (const data of [taken, `${taken}/inner`, taken.slice(0, taken.lastIndexOf('/'))]) {
      const res = await migrate(inst.id, { targetNodeId: nodeB, hostPaths: { data, logs } });
      expectError(res, 409, new RegExp(`volume data: ${data} (is|overlaps) volume files of instance ${there.name} \\(${there.id}\\)`), 'hostPaths.data');
    }
    // Another tenant's instance is not named to a member.
    const hidden = await migrate(inst.id, { targetNodeId: nodeB, hostPaths: { data: pathOf(theirs, 'files'), logs } });
    expectError(hidden, 409, /is a volume of another instance on that node/, 'hostPaths.data');
    expect(hidden.text).not.toContain(theirs.id);
    // An admin sees which one.
    const admin = await migrate(inst.id, { targetNodeId: nodeB, hostPaths: { data: pathOf(theirs, 'files'), logs } }, gw.adminToken);
    expectError(admin, 409, new RegExp(`instance ${theirs.name}`));
    // Paths another instance is moving to are taken as well.
    const mover = await instance();
    expect((await migrate(mover.id, { targetNodeId: nodeB, hostPaths: { data: '/srv/mb/moving/data', logs: '/srv/mb/moving/logs' } })).status).toBe(202);
    const clash = await migrate(inst.id, { targetNodeId: nodeB, hostPaths: { data: '/srv/mb/moving', logs } });
    expectError(clash, 409, new RegExp(`instance ${mover.name} \\(${mover.id}\\) is moving its volume data to`), 'hostPaths.data');
    expect(await migrateJobs(inst.id)).toBe(0);
  });
});

describe('copy (targetInstanceId)', () => {
  it('answers 202 {job} with the volumes filled in (all of the source’s; those of paths), targetInstanceId the target', async () => {
    const src = await instance({ volumes: ['data', 'logs'] });
    const dst = await instance({ nodeId: nodeB, root: '/srv/mb', volumes: ['data', 'logs', 'extra'] });
    const res = await migrate(src.id, { targetInstanceId: dst.id });
    expect(res.status, res.text).toBe(202);
    expect(res.body.job).toMatchObject({
      type: 'migrate',
      status: 'queued',
      instanceId: src.id,
      targetInstanceId: dst.id,
      backupId: null,
      nodeId: null,
      queue: 'control',
      params: { mode: 'copy', sourceInstanceId: src.id, targetInstanceId: dst.id, volumes: ['data', 'logs'] },
    });
    expect((await gw.jobQueues.queue('control').getJob(res.body.job.id))?.name).toBe('migrate');

    const src2 = await instance();
    const dst2 = await instance({ nodeId: nodeB, root: '/srv/mb', volumes: ['logs'] });
    const merge = await migrate(src2.id, { targetInstanceId: dst2.id, paths: ['logs/app/today.log'] });
    expect(merge.status, merge.text).toBe(202);
    expect(merge.body.job.params).toEqual({
      mode: 'copy',
      sourceInstanceId: src2.id,
      targetInstanceId: dst2.id,
      volumes: ['logs'],
      paths: ['logs/app/today.log'],
    });
  });

  it('refuses volumes missing on the target or the source (400 naming them), the source itself, and paths outside the selection', async () => {
    const src = await instance({ volumes: ['data', 'logs'] });
    const dst = await instance({ nodeId: nodeB, root: '/srv/mb', volumes: ['data'] });
    expectError(
      await migrate(src.id, { targetInstanceId: dst.id }),
      400,
      new RegExp(`target instance ${dst.name} has no volume named logs`),
      'targetInstanceId',
    );
    expectError(await migrate(src.id, { targetInstanceId: dst.id, volumes: ['data', 'logs'] }), 400, /has no volume named logs/, 'volumes.1');
    expectError(
      await migrate(src.id, { targetInstanceId: dst.id, volumes: ['cache'] }),
      400,
      new RegExp(`instance ${src.name} has no volume cache`),
      'volumes.0',
    );
    expectError(await migrate(src.id, { targetInstanceId: dst.id, volumes: ['data'], paths: ['logs/a'] }), 400, /not inside a selected volume/, 'paths.0');
    expectError(await migrate(src.id, { targetInstanceId: src.id }), 400, /is the source instance/, 'targetInstanceId');
    expect((await migrate(src.id, { targetInstanceId: dst.id, volumes: ['data'] })).status).toBe(202);
  });

  it('refuses another tenant’s target or source as not found (404); an admin may not copy across tenants (400)', async () => {
    const src = await instance();
    const theirs = await instance({ nodeId: nodeB, root: '/srv/mb', token: stranger });
    expectError(await migrate(src.id, { targetInstanceId: theirs.id }), 404, new RegExp(`target instance ${theirs.id} not found`));
    expectError(await migrate(src.id, { targetInstanceId: 'no-such-instance' }), 404, /target instance no-such-instance not found/);
    expectError(await migrate(theirs.id, { targetNodeId: nodeA }), 404, new RegExp(`instance ${theirs.id} not found`));
    expectError(await migrate('no-such-instance', { targetNodeId: nodeB }), 404, /instance no-such-instance not found/);
    expectError(await migrate(src.id, { targetInstanceId: theirs.id }, gw.adminToken), 400, /a copy stays within one tenant/, 'targetInstanceId');
    expect(await migrateJobs(src.id)).toBe(0);
  });
});

describe('request shape', () => {
  it('needs exactly one target; volumes/paths go with a copy, hostPaths with a move (400 naming the field)', async () => {
    const src = await instance();
    const dst = await instance({ nodeId: nodeB, root: '/srv/mb' });
    expectError(await migrate(src.id, { targetInstanceId: dst.id, targetNodeId: nodeB }), 400, /not both/, 'targetNodeId');
    expectError(await migrate(src.id, {}), 400, /give a target/);
    expectError(await migrate(src.id, undefined), 400, /give a target/);
    expectError(await migrate(src.id, { targetNodeId: nodeB, paths: ['data/x'] }), 400, /only with targetInstanceId/, 'paths');
    expectError(await migrate(src.id, { targetNodeId: nodeB, volumes: ['data'] }), 400, /only with targetInstanceId/, 'volumes');
    expectError(await migrate(src.id, { targetInstanceId: dst.id, hostPaths: { data: '/srv/mb/x' } }), 400, /only with targetNodeId/, 'hostPaths');
    expectError(await migrate(src.id, { targetInstanceId: dst.id, mode: 'move' }), 400, /unknown field/, 'mode');
    expectError(await migrate(src.id, { targetInstanceId: dst.id, paths: ['/data/x'] }), 400, /leading/, 'paths.0');
    expect(await migrateJobs(src.id)).toBe(0);
  });

  it('is in the OpenAPI document', async () => {
    const doc = (await gw.api('GET', '/openapi.json', { token: null })).body;
    for (const p of ['/v1/instances/{id}/migrate', '/v1/backups/{id}/migrate']) {
      const op = doc.paths[p].post;
      expect(op.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/MigrateRequest' });
      expect(op.responses['202'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/JobStarted' });
      expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['400', '404', '409']));
    }
    expect(Object.keys(doc.components.schemas.MigrateRequest.properties).sort()).toEqual(['hostPaths', 'paths', 'targetInstanceId', 'targetNodeId', 'volumes']);
    expect(doc.components.schemas.Job.properties.children).toBeDefined();
  });
});

describe('one migrate per instance', () => {
  it('refuses a second migrate of the source, or one into a target that is being migrated (409 with the job id)', async () => {
    const inst = await instance();
    const first = await migrate(inst.id, { targetNodeId: nodeB });
    expect(first.status, first.text).toBe(202);
    const again = await migrate(inst.id, { targetNodeId: nodeB });
    expectError(again, 409, new RegExp(`migrate job queued \\(${first.body.job.id}\\)`));
    expect(again.body.error.details).toEqual({ jobId: first.body.job.id });

    // The instance being moved cannot receive a copy either, nor be copied from.
    const other = await instance();
    const into = await migrate(other.id, { targetInstanceId: inst.id });
    expectError(into, 409, new RegExp(`instance ${inst.name} already has a migrate job`));
    expect(into.body.error.details).toEqual({ jobId: first.body.job.id });
    expectError(await migrate(inst.id, { targetInstanceId: other.id }), 409, /already has a migrate job/);

    // Once it ended, the next one may start.
    await gw.prisma.job.update({ where: { id: first.body.job.id }, data: { status: 'failed', finishedAt: new Date() } });
    expect((await migrate(inst.id, { targetNodeId: nodeB })).status).toBe(202);
  });

  it('refuses a migrate while a backup of the source or a restore into the target is in flight (409 with that job id)', async () => {
    const inst = await instance();
    const backup = await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member, body: {} });
    expect(backup.status).toBe(202);
    const res = await migrate(inst.id, { targetNodeId: nodeB });
    expectError(res, 409, /already has a backup job queued/);
    expect(res.body.error.details).toEqual({ jobId: backup.body.job.id });
    const src = await instance();
    expectError(await migrate(src.id, { targetInstanceId: inst.id }), 409, new RegExp(`instance ${inst.name} already has a backup job`));
  });

  it('lets one of several concurrent migrates of an instance through', async () => {
    const inst = await instance();
    const results = await Promise.all(Array.from({ length: 4 }, () => migrate(inst.id, { targetNodeId: nodeB })));
    expect(results.map((r) => r.status).sort()).toEqual([202, 409, 409, 409]);
    expect(await migrateJobs(inst.id)).toBe(1);
  });
});

describe('from a backup (POST /v1/backups/:id/migrate)', () => {
  it('starts from a completed backup: fromBackupId in params, backupId on the Job, volumes those of the backup', async () => {
    const src = await instance({ volumes: ['data', 'logs'] });
    const dst = await instance({ nodeId: nodeB, root: '/srv/mb', volumes: ['data'] });
    const backupId = await completedBackup(src, ['data']);
    const res = await migrateBackup(backupId, { targetInstanceId: dst.id });
    expect(res.status, res.text).toBe(202);
    expect(res.body.job).toMatchObject({
      type: 'migrate',
      instanceId: src.id,
      backupId,
      targetInstanceId: dst.id,
      queue: 'control',
      params: { mode: 'copy', sourceInstanceId: src.id, targetInstanceId: dst.id, volumes: ['data'], fromBackupId: backupId },
    });
    await gw.prisma.job.update({ where: { id: res.body.job.id }, data: { status: 'succeeded', finishedAt: new Date() } });
    expectError(
      await migrateBackup(backupId, { targetInstanceId: dst.id, volumes: ['logs'] }),
      400,
      new RegExp(`backup ${backupId} has no volume logs`),
      'volumes.0',
    );

    const move = await migrateBackup(backupId, { targetNodeId: nodeB });
    expect(move.status, move.text).toBe(202);
    expect(move.body.job).toMatchObject({
      backupId,
      targetInstanceId: src.id,
      params: {
        mode: 'move',
        sourceInstanceId: src.id,
        targetNodeId: nodeB,
        fromBackupId: backupId,
        hostPaths: { data: pathOf(src, 'data'), logs: pathOf(src, 'logs') },
      },
    });
  });

  it('refuses a backup that is not completed (409), unknown or another tenant’s (404), and paths not in it (400, read from its index)', async () => {
    const src = await instance();
    const dst = await instance({ nodeId: nodeB, root: '/srv/mb' });
    const pending = await gw.api('POST', `/v1/instances/${src.id}/backups`, { token: member, body: {} });
    expectError(await migrateBackup(pending.body.backup.id, { targetInstanceId: dst.id }), 409, /is pending: only a completed backup can be migrated/);
    await gw.prisma.job.update({ where: { id: pending.body.job.id }, data: { status: 'failed', finishedAt: new Date() } });
    await gw.prisma.backup.update({ where: { id: pending.body.backup.id }, data: { status: 'failed' } });
    expectError(await migrateBackup('no-such-backup', { targetInstanceId: dst.id }), 404, /backup no-such-backup not found/);
    const backupId = await completedBackup(src);
    expectError(await migrateBackup(backupId, { targetNodeId: nodeB }, stranger), 404, new RegExp(`backup ${backupId} not found`));
    await storeIndex(backupId, { data: { 'present.txt': 'here' }, logs: {} });
    const res = await migrateBackup(backupId, { targetInstanceId: dst.id, paths: ['data/present.txt', 'data/absent.txt'] });
    expectError(res, 400, new RegExp(`data/absent.txt is not in backup ${backupId}`), 'paths.1');
    expect(res.body.error.details).toHaveLength(1);
    expect(await migrateJobs(src.id)).toBe(0);
    const ok = await migrateBackup(backupId, { targetInstanceId: dst.id, paths: ['data/present.txt'] });
    expect(ok.status, ok.text).toBe(202);
    expect(ok.body.job.params).toMatchObject({ mode: 'copy', volumes: ['data'], paths: ['data/present.txt'], fromBackupId: backupId });
  });
});

describe('children and cancel', () => {
  async function child(parentJobId: string, type: 'backup' | 'restore', status: 'queued' | 'running' | 'succeeded', nodeId: string, instanceId: string) {
    const id = newId();
    // Written past the records layer, so the tenant it would record on create is set here.
    const { tenantId } = await gw.prisma.instance.findUniqueOrThrow({ where: { id: instanceId } });
    await gw.prisma.job.create({
      data: {
        id,
        type,
        status,
        instanceId,
        tenantId,
        nodeId,
        queue: `node.${nodeId}`,
        params: {},
        requestedBy: 'system',
        parentJobId,
        progress: status === 'running' ? { stage: 'upload', bytesDone: 5, bytesTotal: 10, filesDone: 1, filesTotal: 2, percent: 50, etaSeconds: 3 } : undefined,
      },
    });
    return id;
  }

  it('GET /v1/jobs/:id of a migrate lists its children, oldest first; other jobs have no children field', async () => {
    const inst = await instance();
    const { job } = (await migrate(inst.id, { targetNodeId: nodeB })).body;
    const a = await child(job.id, 'backup', 'succeeded', nodeA, inst.id);
    const b = await child(job.id, 'restore', 'running', nodeB, inst.id);
    const got = await gw.api('GET', `/v1/jobs/${job.id}`, { token: member });
    expect(got.status).toBe(200);
    expect(got.body.children).toEqual([
      { id: a, type: 'backup', status: 'succeeded', nodeId: nodeA, progress: null },
      {
        id: b,
        type: 'restore',
        status: 'running',
        nodeId: nodeB,
        progress: { stage: 'upload', bytesDone: 5, bytesTotal: 10, filesDone: 1, filesTotal: 2, percent: 50, etaSeconds: 3 },
      },
    ]);
    const childView = await gw.api('GET', `/v1/jobs/${a}`, { token: member });
    expect(childView.body.parentJobId).toBe(job.id);
    expect('children' in childView.body).toBe(false);
    const list = await gw.api('GET', `/v1/jobs?instance=${inst.id}&type=migrate`, { token: member });
    expect(list.body.items.map((j: { id: string }) => j.id)).toEqual([job.id]);
  });

  it('cancelling the migrate cancels its queued children, leaves ended ones alone; then 409', async () => {
    const inst = await instance();
    const { job } = (await migrate(inst.id, { targetNodeId: nodeB })).body;
    const done = await child(job.id, 'backup', 'succeeded', nodeA, inst.id);
    const queued = await child(job.id, 'restore', 'queued', nodeB, inst.id);
    const res = await gw.api('POST', `/v1/jobs/${job.id}/cancel`, { token: member });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ id: job.id, status: 'cancelled' });
    expect(res.body.children).toEqual([
      expect.objectContaining({ id: done, status: 'succeeded' }),
      expect.objectContaining({ id: queued, status: 'cancelled' }),
    ]);
    expect((await gw.prisma.job.findUnique({ where: { id: queued } }))!.status).toBe('cancelled');
    expect((await gw.prisma.job.findUnique({ where: { id: done } }))!.status).toBe('succeeded');
    expect(await gw.jobQueues.queue('control').getJob(job.id)).toBeFalsy();
    expect((await gw.api('POST', `/v1/jobs/${job.id}/cancel`, { token: member })).status).toBe(409);
    expect((await gw.api('POST', `/v1/jobs/${job.id}/cancel`, { token: stranger })).status).toBe(404);
  });
});
