import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTROL_QUEUE, archiveKey, indexKey, newId, schedulerIdOf, type BackupStatus } from '@cairn/core';
import { createRuntime } from '@cairn/core/runtime.ts';
import { startGateway } from '@cairn/gateway/main.ts';
import { startTestGateway, type TestGateway } from './gateway-harness.ts';

/** Schedule routes (SPEC §9, §11) against the real Postgres and Redis of the run. */

let gw: TestGateway;
let nodeId: string;
let member: { id: string; token: string };
let stranger: { id: string; token: string };
const root = '/srv/sched';
let n = 0;

beforeAll(async () => {
  gw = await startTestGateway();
  nodeId = `sched-${gw.tag}`;
  await gw.node(nodeId, [root]);
  member = await gw.token('member', `sched-${gw.tag}`);
  stranger = await gw.token('member', `sched-other-${gw.tag}`);
});

afterAll(async () => {
  await gw?.close();
});

async function instance(volumes = ['data', 'logs']): Promise<{ id: string; name: string }> {
  const name = `s${++n}`;
  const res = await gw.api('POST', '/v1/instances', {
    token: member.token,
    body: { name, nodeId, volumes: volumes.map((v) => ({ name: v, hostPath: `${root}/${name}/${v}` })) },
  });
  expect(res.status, res.text).toBe(201);
  return res.body;
}

async function schedule(instanceId: string, body: Record<string, unknown> = {}) {
  const res = await gw.api('POST', `/v1/instances/${instanceId}/schedules`, {
    token: member.token,
    body: { cron: '0 3 * * *', timezone: 'UTC', retention: { keepLast: 3 }, ...body },
  });
  expect(res.status, res.text).toBe(201);
  return res.body as { id: string; nextRunAt: string | null };
}

/** The BullMQ job scheduler of a schedule in the gateway's control queue (its QUEUE_PREFIX). */
const scheduler = (scheduleId: string) => gw.jobQueues.queue(CONTROL_QUEUE).getJobScheduler(schedulerIdOf(scheduleId));

async function backupRow(instanceId: string, scheduleId: string, status: BackupStatus, createdAt: Date) {
  const id = newId();
  await gw.prisma.backup.create({
    data: {
      id,
      instanceId,
      scheduleId,
      status,
      trigger: 'schedule',
      volumes: ['data'],
      storageKey: archiveKey(instanceId, id, 'gzip'),
      indexKey: indexKey(instanceId, id),
      compression: 'gzip',
      requestedBy: 'system',
      createdAt,
    },
  });
  return id;
}

describe('creating, showing and listing schedules', () => {
  it('answers 201 with the schedule and keeps a BullMQ job scheduler for it', async () => {
    const inst = await instance();
    const res = await gw.api('POST', `/v1/instances/${inst.id}/schedules`, {
      token: member.token,
      body: { cron: '30 2 * * mon-fri', timezone: 'europe/berlin', retention: { keepDaily: 7, keepWeekly: 4 }, volumes: ['data'] },
    });
    expect(res.status, res.text).toBe(201);
    const s = res.body;
    expect(s).toEqual({
      id: expect.any(String),
      instanceId: inst.id,
      cron: '30 2 * * mon-fri',
      timezone: 'Europe/Berlin',
      volumes: ['data'],
      retention: { keepDaily: 7, keepWeekly: 4 },
      enabled: true,
      lastFiredAt: null,
      lastBackupId: null,
      lastSkippedAt: null,
      lastSkipReason: null,
      nextRunAt: expect.any(String),
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
    });
    const bull = await scheduler(s.id);
    expect(bull).toMatchObject({ pattern: '30 2 * * 1-5', tz: 'Europe/Berlin', name: 'schedule-fire', template: { data: { scheduleId: s.id } } });
    expect(s.nextRunAt).toBe(new Date(bull!.next!).toISOString());

    const got = await gw.api('GET', `/v1/schedules/${s.id}`, { token: member.token });
    expect(got.status).toBe(200);
    expect(got.body).toEqual(s);
  });

  it('lists the schedules of an instance with a cursor', async () => {
    const inst = await instance();
    const a = await schedule(inst.id);
    const b = await schedule(inst.id, { cron: '@hourly', retention: { maxAgeDays: 2 } });
    const page1 = await gw.api('GET', `/v1/instances/${inst.id}/schedules?limit=1`, { token: member.token });
    expect(page1.status).toBe(200);
    expect(page1.body.items.map((i: { id: string }) => i.id)).toEqual([a.id]);
    expect(page1.body.nextCursor).toBe(a.id);
    const page2 = await gw.api('GET', `/v1/instances/${inst.id}/schedules?limit=1&cursor=${page1.body.nextCursor}`, { token: member.token });
    expect(page2.body).toEqual({
      items: [expect.objectContaining({ id: b.id, cron: '@hourly', volumes: null, retention: { maxAgeDays: 2 } })],
      nextCursor: null,
    });
    const all = await gw.api('GET', `/v1/instances/${inst.id}/schedules`, { token: member.token });
    expect(all.body.items).toHaveLength(2);
    expect((await gw.api('GET', `/v1/instances/${inst.id}/schedules?limit=0`, { token: member.token })).status).toBe(400);
  });

  it('refuses bad fields with 400, naming each one, and creates nothing', async () => {
    const inst = await instance();
    const post = (body: unknown) => gw.api('POST', `/v1/instances/${inst.id}/schedules`, { token: member.token, body });
    const base = { cron: '0 3 * * *', timezone: 'UTC', retention: { keepLast: 3 } };

    const cron = await post({ ...base, cron: '0 0 * * 9' });
    expect(cron.status).toBe(400);
    expect(cron.body.error.code).toBe('validation');
    expect(cron.body.error.message).toContain('cron: day-of-week field "9": ');
    expect(cron.body.error.details).toEqual([{ path: 'cron', message: expect.stringMatching(/^day-of-week field "9": 9 is out of range 0-7/) }]);
    const seconds = await post({ ...base, cron: '*/5 * * * * *' });
    expect(seconds.status).toBe(400);
    expect(seconds.body.error.details).toEqual([{ path: 'cron', message: expect.stringContaining('expected 5 fields') }]);

    const tz = await post({ ...base, timezone: 'Mars/Olympus_Mons' });
    expect(tz.status).toBe(400);
    expect(tz.body.error.details).toEqual([{ path: 'timezone', message: expect.stringContaining('IANA time zone') }]);

    const empty = await post({ ...base, retention: {} });
    expect(empty.status).toBe(400);
    expect(empty.body.error.details).toEqual([{ path: 'retention', message: expect.stringContaining('at least one rule') }]);
    const negative = await post({ ...base, retention: { keepDaily: -1 } });
    expect(negative.status).toBe(400);
    expect(negative.body.error.details).toEqual([{ path: 'retention.keepDaily', message: 'must be a whole number ≥ 0' }]);

    const unknown = await post({ ...base, colour: 'blue', retention: { keepLast: 1, keepForever: true } });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.details).toEqual(
      expect.arrayContaining([
        { path: 'colour', message: 'unknown field' },
        { path: 'retention.keepForever', message: 'unknown field' },
      ]),
    );

    const volume = await post({ ...base, volumes: ['data', 'nope'] });
    expect(volume.status).toBe(400);
    expect(volume.body.error.details).toEqual([{ path: 'volumes.1', message: 'the instance has no volume nope (it has data, logs)' }]);
    expect(volume.body.error.message).toContain('volumes.1: the instance has no volume nope');

    const several = await post({ cron: 'every day', timezone: 'Nowhere', retention: {} });
    expect(several.status).toBe(400);
    expect(several.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(['cron', 'retention', 'timezone']);

    const missing = await post({});
    expect(missing.status).toBe(400);
    expect(missing.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(['cron', 'retention', 'timezone']);

    expect(await gw.prisma.schedule.count({ where: { instanceId: inst.id } })).toBe(0);
    expect((await gw.api('POST', '/v1/instances/01UNKNOWN/schedules', { token: member.token, body: base })).status).toBe(404);
  });
});

describe('changing and deleting schedules', () => {
  it('PATCH moves the scheduler to the new cron and time zone; disabling removes it, enabling restores it', async () => {
    const inst = await instance();
    const s = await schedule(inst.id, { volumes: ['data'] });
    const changed = await gw.api('PATCH', `/v1/schedules/${s.id}`, {
      token: member.token,
      body: { cron: '15 4 1 * *', timezone: 'America/New_York', volumes: null, retention: { keepMonthly: 12 } },
    });
    expect(changed.status, changed.text).toBe(200);
    expect(changed.body).toMatchObject({
      id: s.id,
      cron: '15 4 1 * *',
      timezone: 'America/New_York',
      volumes: null,
      retention: { keepMonthly: 12 },
      enabled: true,
    });
    expect(await scheduler(s.id)).toMatchObject({ pattern: '15 4 1 * *', tz: 'America/New_York' });
    // The new policy is applied at once by a retention job (deduplicated per schedule).
    const retention = (await gw.jobQueues.queue(CONTROL_QUEUE).getJobs(['waiting', 'prioritized', 'delayed'])).filter(
      (j) => j.name === 'retention' && j.data.scheduleId === s.id,
    );
    expect(retention).toHaveLength(1);
    expect(retention[0]!.deduplicationId).toBe(`retention-${s.id}`);

    const paused = await gw.api('PATCH', `/v1/schedules/${s.id}`, { token: member.token, body: { enabled: false } });
    expect(paused.status).toBe(200);
    expect(paused.body).toMatchObject({ enabled: false, nextRunAt: null });
    expect(await scheduler(s.id)).toBeFalsy();
    const resumed = await gw.api('PATCH', `/v1/schedules/${s.id}`, { token: member.token, body: { enabled: true } });
    expect(resumed.body.nextRunAt).not.toBeNull();
    expect(await scheduler(s.id)).toMatchObject({ pattern: '15 4 1 * *' });

    const nothing = await gw.api('PATCH', `/v1/schedules/${s.id}`, { token: member.token, body: {} });
    expect(nothing.status).toBe(400);
    expect(nothing.body.error.message).toContain('nothing to change');
    const bad = await gw.api('PATCH', `/v1/schedules/${s.id}`, { token: member.token, body: { cron: '61 * * * *', volumes: ['cache'] } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details[0].path).toBe('cron');
    const badVolume = await gw.api('PATCH', `/v1/schedules/${s.id}`, { token: member.token, body: { volumes: ['cache'] } });
    expect(badVolume.status).toBe(400);
    expect(badVolume.body.error.details).toEqual([{ path: 'volumes.0', message: expect.stringContaining('no volume cache') }]);
    expect((await gw.api('GET', `/v1/schedules/${s.id}`, { token: member.token })).body).toMatchObject({ cron: '15 4 1 * *', volumes: null });
  });

  it('DELETE removes the schedule and its scheduler and keeps its backups', async () => {
    const inst = await instance();
    const s = await schedule(inst.id);
    const run = await gw.api('POST', `/v1/schedules/${s.id}/run`, { token: member.token });
    expect(run.status).toBe(202);
    await gw.prisma.backup.update({
      where: { id: run.body.backup.id },
      data: { status: 'completed', completedAt: new Date(), expiresAt: new Date(Date.now() + 86_400_000) },
    });
    await gw.prisma.job.update({ where: { id: run.body.job.id }, data: { status: 'succeeded' } });
    expect(await scheduler(s.id)).toBeTruthy();

    const res = await gw.api('DELETE', `/v1/schedules/${s.id}`, { token: member.token });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ id: s.id, keptBackups: 1 });
    expect(await scheduler(s.id)).toBeFalsy();
    expect(await gw.prisma.schedule.findUnique({ where: { id: s.id } })).toBeNull();
    const kept = await gw.api('GET', `/v1/backups/${run.body.backup.id}`, { token: member.token });
    expect(kept.status).toBe(200);
    // Nothing expires it any more: kept until deleted by hand.
    expect(kept.body).toMatchObject({ status: 'completed', trigger: 'schedule', expiresAt: null });
    expect((await gw.api('GET', `/v1/schedules/${s.id}`, { token: member.token })).status).toBe(404);
    expect((await gw.api('DELETE', `/v1/schedules/${s.id}`, { token: member.token })).status).toBe(404);
  });
});

describe('running a schedule now', () => {
  it('answers 202 with a scheduled backup enqueued on node.<id>; a second run while it is queued is a 409', async () => {
    const inst = await instance();
    const s = await schedule(inst.id, { volumes: ['logs'], enabled: false });
    const res = await gw.api('POST', `/v1/schedules/${s.id}/run`, { token: member.token });
    expect(res.status, res.text).toBe(202);
    const { backup, job } = res.body;
    expect(backup).toMatchObject({ instanceId: inst.id, status: 'pending', trigger: 'schedule', volumes: ['logs'] });
    expect(job).toMatchObject({
      type: 'backup',
      status: 'queued',
      instanceId: inst.id,
      backupId: backup.id,
      nodeId,
      queue: `node.${nodeId}`,
      requestedBy: member.id,
    });
    const row = await gw.prisma.backup.findUnique({ where: { id: backup.id } });
    expect(row).toMatchObject({ scheduleId: s.id, requestedBy: member.id });
    const queued = await gw.jobQueues.nodeQueue(nodeId).getJob(job.id);
    expect(queued).toMatchObject({ name: 'backup', data: { jobId: job.id } });
    expect(await queued!.getState()).toBe('waiting');
    expect((await gw.api('GET', `/v1/schedules/${s.id}`, { token: member.token })).body.lastBackupId).toBe(backup.id);

    const again = await gw.api('POST', `/v1/schedules/${s.id}/run`, { token: member.token });
    expect(again.status).toBe(409);
    expect(again.body.error).toEqual({ code: 'conflict', message: expect.stringContaining(job.id), details: { jobId: job.id } });
    // The one-at-a-time rule is shared with manual backups.
    const manual = await gw.api('POST', `/v1/instances/${inst.id}/backups`, { token: member.token });
    expect(manual.status).toBe(409);
    expect(manual.body.error.details).toEqual({ jobId: job.id });
    expect(await gw.prisma.backup.count({ where: { instanceId: inst.id } })).toBe(1);
  });
});

describe('tenancy', () => {
  it("answers 404 for another tenant's schedules and instances; the admin sees them", async () => {
    const inst = await instance();
    const s = await schedule(inst.id);
    const other = { token: stranger.token };
    for (const [method, route, body] of [
      ['GET', `/v1/schedules/${s.id}`],
      ['PATCH', `/v1/schedules/${s.id}`, { enabled: false }],
      ['DELETE', `/v1/schedules/${s.id}`],
      ['POST', `/v1/schedules/${s.id}/run`],
      ['POST', `/v1/schedules/${s.id}/retention/preview`, {}],
      ['GET', `/v1/instances/${inst.id}/schedules`],
      ['POST', `/v1/instances/${inst.id}/schedules`, { cron: '@daily', timezone: 'UTC', retention: { keepLast: 1 } }],
    ] as const) {
      const res = await gw.api(method, route, { ...other, ...(body ? { body } : {}) });
      expect(res.status, `${method} ${route}`).toBe(404);
      expect(res.body.error.code).toBe('not-found');
    }
    // Nothing of the other tenant's attempts happened.
    expect(await scheduler(s.id)).toBeTruthy();
    expect(await gw.prisma.schedule.count({ where: { instanceId: inst.id } })).toBe(1);
    expect(await gw.prisma.backup.count({ where: { instanceId: inst.id } })).toBe(0);
    expect((await gw.api('GET', `/v1/schedules/${s.id}`)).status).toBe(200);
    expect((await gw.api('GET', `/v1/instances/${inst.id}/schedules`)).body.items.map((i: { id: string }) => i.id)).toEqual([s.id]);
  });
});

describe('fleet view (GET /v1/schedules)', () => {
  it('lists every schedule for an admin, filtered by node, instance and enabled; a member sees its tenant only', async () => {
    const ours = await instance();
    const a = await schedule(ours.id);
    const b = await schedule(ours.id, { enabled: false });
    const theirs = (
      await gw.api('POST', '/v1/instances', {
        token: stranger.token,
        body: { name: `fleet-${gw.tag}`, nodeId, volumes: [{ name: 'data', hostPath: `${root}/fleet-theirs/data` }] },
      })
    ).body;
    const c = (
      await gw.api('POST', `/v1/instances/${theirs.id}/schedules`, {
        token: stranger.token,
        body: { cron: '@hourly', timezone: 'UTC', retention: { keepLast: 1 } },
      })
    ).body;
    const ids = (res: { body: { items: { id: string }[] } }) => res.body.items.map((i) => i.id);

    const onNode = await gw.api('GET', `/v1/schedules?node=${nodeId}&limit=500`);
    expect(onNode.status, onNode.text).toBe(200);
    expect(ids(onNode)).toEqual(expect.arrayContaining([a.id, b.id, c.id]));
    expect(onNode.body.items.find((i: { id: string }) => i.id === c.id)).toMatchObject({ instanceId: theirs.id, cron: '@hourly', enabled: true });
    // Oldest first: by id (ids made within one millisecond may sort either way).
    const [first, second] = [a.id, b.id].sort();
    expect(ids(await gw.api('GET', `/v1/schedules?instance=${ours.id}`))).toEqual([first, second]);
    expect(ids(await gw.api('GET', `/v1/schedules?instance=${ours.id}&enabled=false`))).toEqual([b.id]);
    const page = await gw.api('GET', `/v1/schedules?instance=${ours.id}&limit=1`);
    expect(ids(page)).toEqual([first]);
    expect(ids(await gw.api('GET', `/v1/schedules?instance=${ours.id}&limit=1&cursor=${page.body.nextCursor}`))).toEqual([second]);
    expect(ids(await gw.api('GET', `/v1/schedules?node=nowhere-${gw.tag}`))).toEqual([]);

    const mine = ids(await gw.api('GET', '/v1/schedules?limit=500', { token: stranger.token }));
    expect(mine).toEqual([c.id]);

    const bad = await gw.api('GET', '/v1/schedules?enabled=maybe&colour=red');
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(['colour', 'enabled']);
  });
});

describe('retention preview', () => {
  it('shows what the policy (or an override) would keep and drop, with reasons, and changes nothing', async () => {
    const inst = await instance();
    const s = await schedule(inst.id, { retention: { keepLast: 1, keepDaily: 2 } });
    const day = 86_400_000;
    const midnight = Math.floor(Date.now() / day) * day;
    const at = (daysAgo: number, hour: number) => new Date(midnight - daysAgo * day + hour * 3_600_000);
    const newest = await backupRow(inst.id, s.id, 'completed', at(1, 12));
    const sameDay = await backupRow(inst.id, s.id, 'completed', at(1, 6));
    const older = await backupRow(inst.id, s.id, 'completed', at(2, 12));
    const oldest = await backupRow(inst.id, s.id, 'completed', at(5, 12));
    await backupRow(inst.id, s.id, 'failed', at(6, 12));
    const dayOf = (d: Date) => d.toISOString().slice(0, 10);

    const res = await gw.api('POST', `/v1/schedules/${s.id}/retention/preview`, { token: member.token });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({
      scheduleId: s.id,
      timezone: 'UTC',
      at: expect.any(String),
      keep: [
        {
          backupId: newest,
          createdAt: at(1, 12).toISOString(),
          expiresAt: null,
          reasons: [
            { rule: 'last', bucket: '#1' },
            { rule: 'daily', bucket: dayOf(at(1, 12)) },
          ],
        },
        { backupId: older, createdAt: at(2, 12).toISOString(), expiresAt: null, reasons: [{ rule: 'daily', bucket: dayOf(at(2, 12)) }] },
      ],
      drop: [
        { backupId: sameDay, createdAt: at(1, 6).toISOString(), reason: expect.stringContaining('not kept by any rule') },
        { backupId: oldest, createdAt: at(5, 12).toISOString(), reason: expect.stringContaining('not kept by any rule') },
      ],
      untouched: 1,
      pinned: [],
    });

    const override = await gw.api('POST', `/v1/schedules/${s.id}/retention/preview`, {
      token: member.token,
      body: { retention: { keepLast: 3, maxAgeDays: 3 } },
    });
    expect(override.status).toBe(200);
    expect(override.body.keep.map((k: { backupId: string }) => k.backupId)).toEqual([newest, sameDay, older]);
    expect(override.body.keep[0].expiresAt).toBe(new Date(at(1, 12).getTime() + 3 * day).toISOString());
    expect(override.body.drop).toEqual([
      { backupId: oldest, createdAt: at(5, 12).toISOString(), reason: expect.stringContaining('older than maxAgeDays (3 days') },
    ]);

    const invalid = await gw.api('POST', `/v1/schedules/${s.id}/retention/preview`, { token: member.token, body: { retention: {} } });
    expect(invalid.status).toBe(400);
    expect(invalid.body.error.details).toEqual([{ path: 'retention', message: expect.stringContaining('at least one rule') }]);
    const extra = await gw.api('POST', `/v1/schedules/${s.id}/retention/preview`, { token: member.token, body: { dryRun: false } });
    expect(extra.status).toBe(400);
    expect(extra.body.error.details).toEqual([{ path: 'dryRun', message: 'unknown field' }]);

    // A dry run: every backup is as it was, no cleanup job exists.
    const rows = await gw.prisma.backup.findMany({ where: { scheduleId: s.id }, select: { status: true, expiresAt: true } });
    expect(rows.filter((r) => r.status === 'completed')).toHaveLength(4);
    expect(rows.every((r) => r.expiresAt === null)).toBe(true);
    expect(await gw.prisma.job.count({ where: { instanceId: inst.id, type: 'cleanup' } })).toBe(0);
  });
});

describe('instances and schedules', () => {
  it('force-deleting an instance removes the job schedulers of its schedules', async () => {
    const inst = await instance();
    const a = await schedule(inst.id);
    const b = await schedule(inst.id, { cron: '@weekly' });
    const paused = await schedule(inst.id, { enabled: false });
    const run = await gw.api('POST', `/v1/schedules/${a.id}/run`, { token: member.token });
    expect(run.status).toBe(202);
    expect(await scheduler(a.id)).toBeTruthy();
    expect(await scheduler(b.id)).toBeTruthy();

    const refused = await gw.api('DELETE', `/v1/instances/${inst.id}`, { token: member.token });
    expect(refused.status).toBe(409);
    expect(await scheduler(a.id)).toBeTruthy();

    const res = await gw.api('DELETE', `/v1/instances/${inst.id}?force=true`, { token: member.token });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({ id: inst.id, deletedBackups: 1, cancelledJobs: [run.body.job.id] });
    expect(await scheduler(a.id)).toBeFalsy();
    expect(await scheduler(b.id)).toBeFalsy();
    expect(await scheduler(paused.id)).toBeFalsy();
    expect(await gw.prisma.schedule.count({ where: { instanceId: inst.id } })).toBe(0);
    const schedulerIds = (await gw.jobQueues.queue(CONTROL_QUEUE).getJobSchedulers(0, -1, true)).map((j) => j.key);
    expect(schedulerIds).not.toEqual(expect.arrayContaining([schedulerIdOf(a.id)]));
  });
});

describe('OpenAPI', () => {
  it('lists the schedule routes with their schemas', async () => {
    const doc = (await gw.api('GET', '/openapi.json', { token: null })).body;
    for (const [p, method] of [
      ['/v1/instances/{id}/schedules', 'post'],
      ['/v1/instances/{id}/schedules', 'get'],
      ['/v1/schedules/{id}', 'get'],
      ['/v1/schedules/{id}', 'patch'],
      ['/v1/schedules/{id}', 'delete'],
      ['/v1/schedules/{id}/run', 'post'],
      ['/v1/schedules/{id}/retention/preview', 'post'],
    ] as const) {
      expect(doc.paths[p]?.[method], `${method} ${p}`).toBeDefined();
      expect(doc.paths[p][method].tags).toEqual(['schedules']);
    }
    const create = doc.paths['/v1/instances/{id}/schedules'].post;
    expect(create.requestBody).toMatchObject({
      required: true,
      content: { 'application/json': { schema: { $ref: '#/components/schemas/CreateScheduleRequest' } } },
    });
    expect(create.responses['201'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Schedule' });
    expect(create.responses['400'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Error' });
    expect(doc.paths['/v1/instances/{id}/schedules'].get.parameters.map((p: { name: string }) => p.name)).toEqual(['id', 'cursor', 'limit']);
    expect(doc.paths['/v1/schedules/{id}'].patch.requestBody.content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/UpdateScheduleRequest',
    });
    expect(doc.paths['/v1/schedules/{id}'].delete.responses['200'].content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/DeletedSchedule',
    });
    const run = doc.paths['/v1/schedules/{id}/run'].post;
    expect(run.responses['202'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/BackupStarted' });
    expect(run.responses['409']).toBeDefined();
    const preview = doc.paths['/v1/schedules/{id}/retention/preview'].post;
    expect(preview.requestBody).toMatchObject({
      required: false,
      content: { 'application/json': { schema: { $ref: '#/components/schemas/RetentionPreviewRequest' } } },
    });
    expect(preview.responses['200'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/RetentionPreview' });

    const schemas = doc.components.schemas;
    expect(schemas.CreateScheduleRequest.additionalProperties).toBe(false);
    expect(schemas.CreateScheduleRequest.required).toEqual(expect.arrayContaining(['cron', 'timezone', 'retention']));
    expect(schemas.RetentionPolicy.properties).toHaveProperty('keepDaily');
    expect(schemas.ScheduleList.properties).toHaveProperty('nextCursor');
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]!);
    for (const ref of refs) expect(schemas[ref], ref).toBeDefined();
  });
});

describe('gateway start', () => {
  it('rebuilds missing job schedulers from the schedule table, in the background', async () => {
    const inst = await instance();
    const s = await schedule(inst.id, { cron: '45 1 * * *' });
    const paused = await schedule(inst.id, { enabled: false });
    // A lost scheduler (flushed Redis) and a stray one (its schedule paused meanwhile).
    await gw.jobQueues.queue(CONTROL_QUEUE).removeJobScheduler(schedulerIdOf(s.id));
    await gw.jobQueues
      .queue(CONTROL_QUEUE)
      .upsertJobScheduler(schedulerIdOf(paused.id), { pattern: '0 3 * * *', tz: 'UTC' }, { name: 'schedule-fire', data: { scheduleId: paused.id } });
    expect(await scheduler(s.id)).toBeFalsy();

    // A second gateway on the same Redis prefix (not the harness: closing that would wipe the prefix).
    const runtime = createRuntime(gw.config, { name: 'gateway' });
    const second = await startGateway(runtime);
    try {
      await expect
        .poll(() => scheduler(s.id), { timeout: 15_000 })
        .toMatchObject({ pattern: '45 1 * * *', tz: 'UTC', template: { data: { scheduleId: s.id } } });
      await expect.poll(() => scheduler(paused.id), { timeout: 15_000 }).toBeFalsy();
    } finally {
      await second.close();
      await runtime.close();
    }
  });
});
