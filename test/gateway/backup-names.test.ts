import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTROL_QUEUE, applyManualRetention, archiveKey, indexKey, newId, type BackupStatus, type BackupTrigger } from '@cairn/core';
import { startTestGateway, type TestGateway } from './gateway-harness.ts';

/**
 * Named and pinned backups, per-instance policy (issue 13), through the API against the run's
 * Postgres and Redis (no node worker: backups are marked completed here, as a worker would).
 */

let gw: TestGateway;
let nodeId: string;
let member: string;
let stranger: string;
const root = '/srv/names';
let n = 0;
const DAY = 86_400_000;

beforeAll(async () => {
  gw = await startTestGateway({ MANUAL_BACKUP_LIMIT: '3' });
  nodeId = `names-${gw.tag}`;
  await gw.node(nodeId, [root]);
  member = (await gw.token('member', `names-${gw.tag}`)).token;
  stranger = (await gw.token('member', `names-other-${gw.tag}`)).token;
});

afterAll(async () => {
  await gw?.close();
});

async function instance(): Promise<{ id: string; name: string }> {
  const name = `nm${++n}`;
  const res = await gw.api('POST', '/v1/instances', { token: member, body: { name, nodeId, volumes: [{ name: 'data', hostPath: `${root}/${name}/data` }] } });
  expect(res.status, res.text).toBe(201);
  return res.body;
}

const start = (instanceId: string, body: Record<string, unknown> = {}) => gw.api('POST', `/v1/instances/${instanceId}/backups`, { token: member, body });
const patch = (backupId: string, body: unknown, token = member) => gw.api('PATCH', `/v1/backups/${backupId}`, { token, body });
const list = (instanceId: string, q = '') => gw.api('GET', `/v1/instances/${instanceId}/backups${q}`, { token: member });
const row = (id: string) => gw.prisma.backup.findUniqueOrThrow({ where: { id } });

/** Marks a started backup completed and its job succeeded, as a node worker would (the instance is free again). */
async function complete(res: { status: number; text: string; body: { backup: { id: string }; job: { id: string } } }): Promise<string> {
  expect(res.status, res.text).toBe(202);
  const { backup, job } = res.body;
  await gw.prisma.backup.update({ where: { id: backup.id }, data: { status: 'completed', completedAt: new Date(), format: 2, sizeBytes: 10n, sha256: 'x' } });
  await gw.prisma.job.update({ where: { id: job.id }, data: { status: 'succeeded', finishedAt: new Date() } });
  return backup.id;
}

/** A backup row written directly (histories for retention), created at `createdAt`. */
async function insertBackup(
  instanceId: string,
  createdAt: Date,
  options: { status?: BackupStatus; trigger?: BackupTrigger; pinned?: boolean; name?: string; scheduleId?: string } = {},
): Promise<string> {
  const id = newId();
  const status = options.status ?? 'completed';
  await gw.prisma.backup.create({
    data: {
      id,
      instanceId,
      status,
      trigger: options.trigger ?? 'manual',
      scheduleId: options.scheduleId ?? null,
      volumes: ['data'],
      storageKey: archiveKey(instanceId, id, 'zstd'),
      indexKey: indexKey(instanceId, id),
      compression: 'zstd',
      requestedBy: 'test',
      createdAt,
      completedAt: status === 'completed' ? createdAt : null,
      pinned: options.pinned ?? false,
      name: options.name ?? null,
    },
  });
  return id;
}

describe('names and notes', () => {
  it('a backup is started with a name and a note; a second one of the same name is a 409 naming it, and nothing is written', async () => {
    const inst = await instance();
    const first = await start(inst.id, { name: 'pre-upgrade', note: 'before 2.0\nrollback point' });
    expect(first.status, first.text).toBe(202);
    expect(first.body.backup).toMatchObject({ name: 'pre-upgrade', note: 'before 2.0\nrollback point', pinned: false });
    const id = await complete(first);
    expect(await row(id)).toMatchObject({ name: 'pre-upgrade', note: 'before 2.0\nrollback point', pinned: false });

    const dup = await start(inst.id, { name: 'pre-upgrade' });
    expect(dup.status).toBe(409);
    expect(dup.body.error).toMatchObject({ code: 'conflict', details: { name: 'pre-upgrade', backupId: id } });
    expect(dup.body.error.message).toContain(`already has a backup named "pre-upgrade" (${id}, completed)`);
    expect(await gw.prisma.backup.count({ where: { instanceId: inst.id } })).toBe(1);
    expect(await gw.prisma.job.count({ where: { instanceId: inst.id } })).toBe(1);

    // Another instance may use the name.
    const other = await instance();
    expect((await start(other.id, { name: 'pre-upgrade' })).status).toBe(202);
  });

  it('refuses bad names and notes with a 400 naming the rule broken', async () => {
    const inst = await instance();
    const cases: [unknown, string][] = [
      ['', 'must not be empty'],
      ['x'.repeat(101), 'must be at most 100 characters (it has 101)'],
      ['-lead', 'must start with a letter or digit'],
      ['has space', 'may contain only letters, digits and _ . - : @ + (found " ")'],
      ['a/b', 'may contain only letters, digits and _ . - : @ + (found "/")'],
      ['Ä', 'must start with a letter or digit'],
      [42, 'Invalid input: expected string, received number'],
    ];
    for (const [name, message] of cases) {
      const res = await start(inst.id, { name });
      expect(res.status, JSON.stringify(name)).toBe(400);
      expect(res.body.error.details).toEqual([{ path: 'name', message }]);
      expect(res.body.error.message).toContain(`name: ${message}`);
    }
    const note = await start(inst.id, { note: 'bell\u0007' });
    expect(note.status).toBe(400);
    expect(note.body.error.details).toEqual([{ path: 'note', message: 'must not contain control characters (line breaks and tabs are fine)' }]);
    const long = await start(inst.id, { note: 'n'.repeat(1001) });
    expect(long.body.error.details).toEqual([{ path: 'note', message: 'must be at most 1000 characters' }]);
    expect(await gw.prisma.backup.count({ where: { instanceId: inst.id } })).toBe(0);
    // The longest and the most varied valid names pass.
    const ok = await start(inst.id, { name: `A0_.:@+-${'z'.repeat(92)}` });
    expect(ok.status, ok.text).toBe(202);
  });

  it('PATCH renames (409 on a taken name, naming it), sets and clears note and name, and answers the changed backup', async () => {
    const inst = await instance();
    const a = await complete(await start(inst.id, { name: 'alpha' }));
    const b = await complete(await start(inst.id, { name: 'beta' }));

    const taken = await patch(b, { name: 'alpha' });
    expect(taken.status).toBe(409);
    expect(taken.body.error.message).toContain('"alpha"');
    expect(taken.body.error.details).toMatchObject({ name: 'alpha', backupId: a });
    expect((await row(b)).name).toBe('beta');

    const same = await patch(b, { name: 'beta', note: 'kept' });
    expect(same.status, same.text).toBe(200);
    expect(same.body).toMatchObject({ id: b, name: 'beta', note: 'kept', pinned: false });
    const renamed = await patch(b, { name: 'gamma' });
    expect(renamed.body).toMatchObject({ name: 'gamma', note: 'kept' });
    // The old name is free again.
    expect((await patch(a, { name: 'beta' })).body.name).toBe('beta');
    const cleared = await patch(b, { name: null, note: null });
    expect(cleared.body).toMatchObject({ name: null, note: null });
    expect(await row(b)).toMatchObject({ name: null, note: null });

    expect((await patch(b, {})).body.error.details).toEqual([{ path: '', message: 'nothing to change: give name, note or pinned' }]);
    expect((await patch(b, { name: 'bad name' })).body.error.details).toEqual([
      { path: 'name', message: 'may contain only letters, digits and _ . - : @ + (found " ")' },
    ]);
    expect((await patch(b, { label: 'x' })).body.error.details).toEqual([{ path: 'label', message: 'unknown field' }]);
    // Another tenant's backup does not exist for them.
    expect((await patch(b, { note: 'mine' }, stranger)).status).toBe(404);
  });

  it('deleting a named backup frees its name; a deleting backup can no longer be changed', async () => {
    const inst = await instance();
    const old = await complete(await start(inst.id, { name: 'weekly' }));
    const del = await gw.api('DELETE', `/v1/backups/${old}`, { token: member });
    expect(del.status, del.text).toBe(202);
    expect(del.body.backup).toMatchObject({ status: 'deleting', name: 'weekly' });
    const again = await start(inst.id, { name: 'weekly' });
    expect(again.status, again.text).toBe(202);
    expect(again.body.backup.name).toBe('weekly');

    const late = await patch(old, { note: 'too late' });
    expect(late.status).toBe(409);
    expect(late.body.error.message).toContain('is deleting');
  });
});

describe('pinned backups', () => {
  it('a pinned backup refuses deletion (409), single and in a batch, until it is unpinned', async () => {
    const inst = await instance();
    const pinned = await complete(await start(inst.id, { name: 'keep-me', pinned: true }));
    const plain = await complete(await start(inst.id));

    const single = await gw.api('DELETE', `/v1/backups/${pinned}`, { token: member });
    expect(single.status).toBe(409);
    expect(single.body.error).toMatchObject({ code: 'conflict', details: { backupId: pinned, pinned: true } });
    expect(single.body.error.message).toContain(`backup ${pinned} (keep-me) is pinned; unpin it`);

    const batch = await gw.api('POST', '/v1/backups/delete', { token: member, body: { ids: [pinned, plain] } });
    expect(batch.status).toBe(200);
    expect(batch.body.results).toEqual([
      { id: pinned, ok: false, error: { code: 'conflict', message: expect.stringContaining('is pinned'), details: { backupId: pinned, pinned: true } } },
      { id: plain, ok: true, status: 'deleting', jobId: expect.any(String) },
    ]);
    expect(await row(pinned)).toMatchObject({ status: 'completed', pinned: true, deletedAt: null });
    expect(await gw.prisma.job.count({ where: { backupId: pinned, type: 'cleanup' } })).toBe(0);

    // The instance cannot go either, not even forced; nothing is cancelled or removed.
    const gone = await gw.api('DELETE', `/v1/instances/${inst.id}?force=true`, { token: member });
    expect(gone.status).toBe(409);
    expect(gone.body.error).toMatchObject({ code: 'conflict', details: { pinned: [pinned] } });
    expect(await gw.prisma.instance.count({ where: { id: inst.id } })).toBe(1);

    const unpin = await patch(pinned, { pinned: false });
    expect(unpin.status).toBe(200);
    expect(unpin.body.pinned).toBe(false);
    const now = await gw.api('DELETE', `/v1/backups/${pinned}`, { token: member });
    expect(now.status, now.text).toBe(202);
    expect(now.body.backup.status).toBe('deleting');
  });

  it('pinning clears expiresAt; only a pending, running or completed backup can be pinned', async () => {
    const inst = await instance();
    const done = await complete(await start(inst.id));
    await gw.prisma.backup.update({ where: { id: done }, data: { expiresAt: new Date(Date.now() + DAY) } });
    const pin = await patch(done, { pinned: true });
    expect(pin.body).toMatchObject({ pinned: true, expiresAt: null });
    expect((await row(done)).expiresAt).toBeNull();

    const failed = await insertBackup(inst.id, new Date(), { status: 'failed' });
    const refused = await patch(failed, { pinned: true });
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toContain('only a pending, running or completed backup can be pinned');
    expect((await row(failed)).pinned).toBe(false);
    // Naming it is fine.
    expect((await patch(failed, { name: 'broken' })).status).toBe(200);

    // Pinned at the start, while pending: the deletion of a running pinned backup is refused too.
    const running = await start(inst.id, { pinned: true });
    expect(running.body.backup).toMatchObject({ status: 'pending', pinned: true });
    expect((await gw.api('DELETE', `/v1/backups/${running.body.backup.id}`, { token: member })).status).toBe(409);
    expect((await row(running.body.backup.id)).status).toBe('pending');
  });
});

describe('listing by name prefix and pin', () => {
  it('filters by name, name prefix and pinned, alone and together', async () => {
    const inst = await instance();
    const t0 = Date.now() - 10 * DAY;
    const n1 = await insertBackup(inst.id, new Date(t0), { name: 'nightly-1' });
    const n2 = await insertBackup(inst.id, new Date(t0 + DAY), { name: 'nightly-2', pinned: true });
    const rel = await insertBackup(inst.id, new Date(t0 + 2 * DAY), { name: 'release_1.0', pinned: true });
    const anon = await insertBackup(inst.id, new Date(t0 + 3 * DAY));
    const ids = async (q: string) => {
      const res = await list(inst.id, q);
      expect(res.status, res.text).toBe(200);
      return res.body.items.map((b: { id: string }) => b.id);
    };
    expect(await ids('')).toEqual([anon, rel, n2, n1]);
    expect(await ids('?namePrefix=nightly-')).toEqual([n2, n1]);
    expect(await ids('?namePrefix=release_')).toEqual([rel]);
    expect(await ids('?namePrefix=release%25')).toEqual([]);
    expect(await ids('?namePrefix=r_lease')).toEqual([]);
    expect(await ids('?name=nightly-1')).toEqual([n1]);
    expect(await ids('?name=nightly')).toEqual([]);
    expect(await ids('?pinned=true')).toEqual([rel, n2]);
    expect(await ids('?pinned=false')).toEqual([anon, n1]);
    expect(await ids('?pinned=1&namePrefix=nightly')).toEqual([n2]);
    expect(await ids('?pinned=false&namePrefix=nightly&limit=1')).toEqual([n1]);
    const page = await list(inst.id, '?namePrefix=nightly&limit=1');
    expect(page.body.nextCursor).toBe(n2);
    expect((await list(inst.id, `?namePrefix=nightly&limit=1&cursor=${n2}`)).body.items.map((b: { id: string }) => b.id)).toEqual([n1]);

    const bad = await list(inst.id, '?pinned=maybe');
    expect(bad.status).toBe(400);
    expect(bad.body.error.details).toEqual([{ path: 'pinned', message: 'must be true or false' }]);
    const listed = (await list(inst.id, '?pinned=true')).body.items[0];
    expect(listed).toMatchObject({ id: rel, name: 'release_1.0', note: null, pinned: true });
  });
});

describe('the manual backup limit and its per-instance override', () => {
  it('counts only unpinned manual backups: a pinned one is always accepted, pinning frees a place', async () => {
    const inst = await instance();
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await complete(await start(inst.id)));
    await insertBackup(inst.id, new Date(), { trigger: 'schedule' });
    const full = await start(inst.id);
    expect(full.status).toBe(429);
    expect(full.body.error).toMatchObject({ code: 'limit', details: { limit: 3, count: 3, source: 'MANUAL_BACKUP_LIMIT' } });
    expect(full.body.error.message).toContain('already has 3 unpinned manual backups (limit 3, from the MANUAL_BACKUP_LIMIT)');

    const pinned = await complete(await start(inst.id, { pinned: true, name: 'golden' }));
    expect((await row(pinned)).pinned).toBe(true);
    expect((await start(inst.id)).status).toBe(429);
    expect((await patch(ids[0]!, { pinned: true })).status).toBe(200);
    const fits = await start(inst.id);
    expect(fits.status, fits.text).toBe(202);
    await complete(fits);

    const policy = await gw.api('GET', `/v1/instances/${inst.id}/policy`, { token: member });
    expect(policy.status).toBe(200);
    expect(policy.body).toEqual({
      instanceId: inst.id,
      manualBackupLimit: null,
      effectiveManualBackupLimit: 3,
      manualRetention: null,
      timezone: 'UTC',
      manualBackups: { counted: 3, pinned: 2 },
      updatedAt: null,
    });
  });

  it('the instance limit overrides MANUAL_BACKUP_LIMIT, up and down; null restores the configured one', async () => {
    const inst = await instance();
    for (let i = 0; i < 3; i++) await complete(await start(inst.id));
    const raise = await gw.api('PATCH', `/v1/instances/${inst.id}/policy`, { token: member, body: { manualBackupLimit: 4 } });
    expect(raise.status, raise.text).toBe(200);
    expect(raise.body).toMatchObject({ manualBackupLimit: 4, effectiveManualBackupLimit: 4, manualBackups: { counted: 3, pinned: 0 } });
    expect(raise.body.updatedAt).toEqual(expect.any(String));
    await complete(await start(inst.id));
    const over = await start(inst.id);
    expect(over.status).toBe(429);
    expect(over.body.error.details).toEqual({ limit: 4, count: 4, source: 'instance policy' });

    const lower = await gw.api('PATCH', `/v1/instances/${inst.id}/policy`, { token: member, body: { manualBackupLimit: 1 } });
    expect(lower.body.effectiveManualBackupLimit).toBe(1);
    expect((await start(inst.id)).body.error.details).toMatchObject({ limit: 1, source: 'instance policy' });
    const reset = await gw.api('PATCH', `/v1/instances/${inst.id}/policy`, { token: member, body: { manualBackupLimit: null } });
    expect(reset.body).toMatchObject({ manualBackupLimit: null, effectiveManualBackupLimit: 3 });

    for (const [body, detail] of [
      [{ manualBackupLimit: 0 }, { path: 'manualBackupLimit', message: 'must be a whole number ≥ 1' }],
      [{ manualBackupLimit: 1.5 }, { path: 'manualBackupLimit', message: 'must be a whole number ≥ 1' }],
      [{}, { path: '', message: 'nothing to change: give manualBackupLimit, manualRetention or timezone' }],
      [{ manualRetention: {} }, { path: 'manualRetention', message: expect.stringContaining('at least one rule') }],
      [{ manualRetention: { keepLast: -1 } }, { path: 'manualRetention.keepLast', message: 'must be a whole number ≥ 0' }],
      [{ timezone: 'Mars/Olympus' }, { path: 'timezone', message: 'must be an IANA time zone such as Europe/Berlin or UTC' }],
    ] as const) {
      const res = await gw.api('PATCH', `/v1/instances/${inst.id}/policy`, { token: member, body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.details).toEqual([detail]);
    }
    // Another tenant sees no such instance.
    expect((await gw.api('GET', `/v1/instances/${inst.id}/policy`, { token: stranger })).status).toBe(404);
    expect((await gw.api('PATCH', `/v1/instances/${inst.id}/policy`, { token: stranger, body: { manualBackupLimit: 9 } })).status).toBe(404);
  });
});

describe('retention of manual backups', () => {
  it('previews like a schedule, applies to unpinned completed manual backups only, and pinned ones survive maxAgeDays', async () => {
    const inst = await instance();
    const now = Date.now();
    const at = (daysAgo: number) => new Date(now - daysAgo * DAY);
    const newest = await insertBackup(inst.id, at(1));
    const second = await insertBackup(inst.id, at(2));
    const third = await insertBackup(inst.id, at(3), { name: 'third' });
    const ancientPinned = await insertBackup(inst.id, at(400), { pinned: true, name: 'ancient' });
    const oldPinned = await insertBackup(inst.id, at(5), { pinned: true });
    const running = await insertBackup(inst.id, at(0.1), { status: 'running' });
    const scheduled = await insertBackup(inst.id, at(300), { trigger: 'schedule' });
    const migrated = await insertBackup(inst.id, at(300), { trigger: 'migrate' });

    // No policy yet: a preview needs one.
    const none = await gw.api('POST', `/v1/instances/${inst.id}/policy/retention/preview`, { token: member });
    expect(none.status).toBe(400);
    expect(none.body.error.details).toEqual([{ path: 'retention', message: expect.stringContaining('has no manual retention policy') }]);

    const tried = await gw.api('POST', `/v1/instances/${inst.id}/policy/retention/preview`, {
      token: member,
      body: { retention: { keepLast: 1, maxAgeDays: 30 }, timezone: 'europe/berlin' },
    });
    expect(tried.status, tried.text).toBe(200);
    expect(tried.body).toEqual({
      instanceId: inst.id,
      timezone: 'Europe/Berlin',
      at: expect.any(String),
      keep: [
        {
          backupId: newest,
          createdAt: at(1).toISOString(),
          reasons: [{ rule: 'last', bucket: '#1' }],
          expiresAt: new Date(at(1).getTime() + 30 * DAY).toISOString(),
        },
      ],
      drop: [
        { backupId: second, createdAt: at(2).toISOString(), reason: expect.stringContaining('not kept by any rule') },
        { backupId: third, createdAt: at(3).toISOString(), reason: expect.stringContaining('not kept by any rule') },
      ],
      untouched: 1,
      pinned: [oldPinned, ancientPinned],
    });
    // A dry run: nothing changed.
    expect(await gw.prisma.backup.count({ where: { instanceId: inst.id, status: 'completed' } })).toBe(7);
    expect(await gw.prisma.job.count({ where: { instanceId: inst.id, type: 'cleanup' } })).toBe(0);

    // Setting the policy stores it and asks the control workers to apply it.
    const set = await gw.api('PATCH', `/v1/instances/${inst.id}/policy`, {
      token: member,
      body: { manualRetention: { keepLast: 2, maxAgeDays: 30 }, timezone: 'Europe/Berlin', manualBackupLimit: 10 },
    });
    expect(set.status, set.text).toBe(200);
    expect(set.body).toMatchObject({ manualRetention: { keepLast: 2, maxAgeDays: 30 }, timezone: 'Europe/Berlin' });
    const queued = await gw.jobQueues.queue(CONTROL_QUEUE).getJobs(['waiting', 'delayed', 'prioritized']);
    expect(queued.filter((j) => j.name === 'retention' && j.data.instanceId === inst.id)).toHaveLength(1);
    const own = await gw.api('POST', `/v1/instances/${inst.id}/policy/retention/preview`, { token: member, body: {} });
    expect(own.body.keep.map((k: { backupId: string }) => k.backupId)).toEqual([newest, second]);
    expect(own.body.drop.map((d: { backupId: string }) => d.backupId)).toEqual([third]);

    // What the retention job runs (the control worker is not part of this test).
    const report = await applyManualRetention({ records: gw.records, queues: gw.jobQueues }, inst.id);
    expect(report).toEqual({ instanceId: inst.id, status: 'applied', kept: 2, expiresUpdated: 2, deleted: [third], failed: [] });
    const rows = new Map((await gw.prisma.backup.findMany({ where: { instanceId: inst.id } })).map((b) => [b.id, b]));
    expect(rows.get(third)).toMatchObject({ status: 'deleting', name: 'third' });
    expect(rows.get(newest)).toMatchObject({ status: 'completed', expiresAt: new Date(at(1).getTime() + 30 * DAY) });
    expect(rows.get(second)).toMatchObject({ status: 'completed', expiresAt: new Date(at(2).getTime() + 30 * DAY) });
    for (const id of [ancientPinned, oldPinned]) expect(rows.get(id)).toMatchObject({ status: 'completed', pinned: true, expiresAt: null });
    for (const id of [running]) expect(rows.get(id)!.status).toBe('running');
    for (const id of [scheduled, migrated]) expect(rows.get(id)).toMatchObject({ status: 'completed', expiresAt: null });
    expect(await gw.prisma.job.findFirst({ where: { backupId: third, type: 'cleanup' } })).toMatchObject({
      params: { reason: 'retention', instanceId: inst.id, policy: 'manual' },
      requestedBy: 'system',
    });

    // The name of the expired backup is free again; the third backup of that name can be taken.
    expect((await start(inst.id, { name: 'third' })).status).toBe(202);

    // Unpinned, the ancient backup is past maxAgeDays: the next run deletes it.
    expect((await patch(ancientPinned, { pinned: false })).status).toBe(200);
    const next = await applyManualRetention({ records: gw.records, queues: gw.jobQueues }, inst.id);
    expect(next.deleted).toEqual([ancientPinned]);

    // Clearing the policy clears the expiresAt it gave; runs then change nothing.
    const cleared = await gw.api('PATCH', `/v1/instances/${inst.id}/policy`, { token: member, body: { manualRetention: null } });
    expect(cleared.body).toMatchObject({ manualRetention: null, timezone: 'Europe/Berlin' });
    expect((await row(newest)).expiresAt).toBeNull();
    expect((await row(second)).expiresAt).toBeNull();
    expect(await applyManualRetention({ records: gw.records, queues: gw.jobQueues }, inst.id)).toMatchObject({ status: 'no-policy', deleted: [] });
  });

  it('a schedule’s retention and its preview leave pinned backups alone', async () => {
    const inst = await instance();
    const sched = await gw.api('POST', `/v1/instances/${inst.id}/schedules`, {
      token: member,
      body: { cron: '0 3 * * *', timezone: 'UTC', retention: { keepLast: 1 }, enabled: false },
    });
    expect(sched.status, sched.text).toBe(201);
    const scheduleId = sched.body.id;
    const now = Date.now();
    const newest = await insertBackup(inst.id, new Date(now - DAY), { trigger: 'schedule', scheduleId });
    const pinned = await insertBackup(inst.id, new Date(now - 2 * DAY), { trigger: 'schedule', scheduleId, pinned: true });
    const old = await insertBackup(inst.id, new Date(now - 3 * DAY), { trigger: 'schedule', scheduleId });
    const preview = await gw.api('POST', `/v1/schedules/${scheduleId}/retention/preview`, { token: member });
    expect(preview.body.keep.map((k: { backupId: string }) => k.backupId)).toEqual([newest]);
    expect(preview.body.drop.map((d: { backupId: string }) => d.backupId)).toEqual([old]);
    expect(preview.body.pinned).toEqual([pinned]);
  });
});

describe('the OpenAPI document', () => {
  it('describes the new fields, the PATCH of a backup and the instance policy routes', async () => {
    const doc = (await gw.api('GET', '/openapi.json', { token: null })).body;
    const schemas = doc.components.schemas;
    expect(Object.keys(schemas.StartBackupRequest.properties)).toEqual(expect.arrayContaining(['name', 'note', 'pinned']));
    expect(schemas.Backup.required).toEqual(expect.arrayContaining(['name', 'note', 'pinned']));
    expect(doc.paths['/v1/backups/{id}'].patch.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/UpdateBackupRequest' });
    const listParams = doc.paths['/v1/instances/{id}/backups'].get.parameters.map((p: { name: string }) => p.name);
    expect(listParams).toEqual(expect.arrayContaining(['name', 'namePrefix', 'pinned']));
    expect(Object.keys(doc.paths['/v1/instances/{id}/policy'])).toEqual(['get', 'patch']);
    expect(doc.paths['/v1/instances/{id}/policy/retention/preview'].post.responses['200'].content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/ManualRetentionPreview',
    });
    expect(schemas.ManualRetentionPreview.required).toEqual(expect.arrayContaining(['instanceId', 'keep', 'drop', 'pinned']));
  });
});
