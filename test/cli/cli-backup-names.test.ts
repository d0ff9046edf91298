import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../gateway/gateway-harness.ts';
import { CLI_TEST_TIMEOUT, cliFor, rowsOf } from './cli-fixture.ts';

/** `cairn backup --name/--note/--pin`, `name`, `note`, `pin`, `unpin`, `policy` and the NAME/PINNED columns, against a gateway (no worker). */
describe('cairn names, notes, pins and the instance policy', { timeout: CLI_TEST_TIMEOUT }, () => {
  let gw: TestGateway;
  let instanceId: string;

  const cli = (...args: string[]) => cliFor(gw)(...args);

  /** Completes the backup's row and job as a node worker would, so the next backup may start. */
  async function complete(backupId: string): Promise<void> {
    await gw.prisma.backup.update({ where: { id: backupId }, data: { status: 'completed', completedAt: new Date(), format: 2, sizeBytes: 10n } });
    await gw.prisma.job.updateMany({ where: { backupId }, data: { status: 'succeeded', finishedAt: new Date() } });
  }

  beforeAll(async () => {
    gw = await startTestGateway();
    const nodeId = `cli-names-${gw.tag}`;
    await gw.node(nodeId, ['/srv/cli-names']);
    const res = await gw.api('POST', '/v1/instances', {
      body: { name: `cli-names-${gw.tag}`, nodeId, tenant: `cli-names-${gw.tag}`, volumes: [{ name: 'data', hostPath: '/srv/cli-names/data' }] },
    });
    expect(res.status).toBe(201);
    instanceId = res.body.id;
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('names, annotates, pins and unpins backups, shows them in listings and filters by them', async () => {
    const first = await cli('backup', instanceId, '--name', 'pre-upgrade', '--note', 'before 2.0', '--pin', '--no-wait');
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/^backup \S+ "pre-upgrade" \(pinned\) queued, full \(job \S+\)$/m);
    const pinnedId = /^backup (\S+) /m.exec(first.stderr)![1]!;
    await complete(pinnedId);

    const dup = await cli('backup', instanceId, '--name', 'pre-upgrade', '--no-wait');
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain('already has a backup named "pre-upgrade"');
    const bad = await cli('backup', instanceId, '--name', 'no spaces', '--no-wait');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('name: may contain only letters, digits and _ . - : @ + (found " ")');

    const plain = await cli('backup', instanceId, '--no-wait');
    const plainId = /^backup (\S+) queued/m.exec(plain.stderr)![1]!;
    await complete(plainId);

    const list = await cli('backups', instanceId);
    const [header, ...lines] = rowsOf(list.stdout);
    expect(header!.slice(-2)).toEqual(['NAME', 'PINNED']);
    expect(lines.map((l) => [l[0], ...l.slice(-2)])).toEqual([
      [plainId, '-', 'false'],
      [pinnedId, 'pre-upgrade', 'true'],
    ]);
    expect(
      rowsOf((await cli('backups', instanceId, '--pinned')).stdout)
        .slice(1)
        .map((l) => l[0]),
    ).toEqual([pinnedId]);
    expect(
      rowsOf((await cli('backups', instanceId, '--unpinned')).stdout)
        .slice(1)
        .map((l) => l[0]),
    ).toEqual([plainId]);
    expect(
      rowsOf((await cli('backups', instanceId, '--name-prefix', 'pre-')).stdout)
        .slice(1)
        .map((l) => l[0]),
    ).toEqual([pinnedId]);
    expect((await cli('backups', instanceId, '--pinned', '--unpinned')).code).toBe(2);

    const show = await cli('show', pinnedId);
    expect(show.stdout).toMatch(/^note: before 2\.0$/m);

    // Deleting the pinned backup is refused until it is unpinned.
    const del = await cli('delete', pinnedId, '--json');
    expect(del.code).toBe(1);
    expect(JSON.parse(del.stdout).results[0]).toMatchObject({ ok: false, error: { code: 'conflict' } });
    expect((await cli('delete', pinnedId)).stderr).toContain(`cairn: backup ${pinnedId}: `);

    const named = await cli('name', plainId, 'nightly-1');
    expect(named.code, named.stderr).toBe(0);
    expect(named.stdout.trim()).toBe(`backup ${plainId} "nightly-1": name set`);
    expect((await cli('note', plainId, 'checked by hand')).stdout.trim()).toBe(`backup ${plainId} "nightly-1": note set`);
    expect((await gw.prisma.backup.findUniqueOrThrow({ where: { id: plainId } })).note).toBe('checked by hand');
    expect((await cli('note', plainId, '--clear')).stdout.trim()).toBe(`backup ${plainId} "nightly-1": note removed`);
    expect((await cli('name', plainId)).code).toBe(2);

    const pin = await cli('pin', plainId, 'no-such-backup');
    expect(pin.code).toBe(1);
    expect(pin.stdout.trim()).toBe(`backup ${plainId} "nightly-1" (pinned) pinned`);
    expect(pin.stderr).toContain('backup no-such-backup: backup no-such-backup not found');
    const unpin = await cli('unpin', pinnedId, plainId);
    expect(unpin.code, unpin.stderr).toBe(0);
    expect(unpin.stdout.trim().split('\n')).toEqual([`backup ${pinnedId} "pre-upgrade" unpinned`, `backup ${plainId} "nightly-1" unpinned`]);
    expect(await gw.prisma.backup.count({ where: { instanceId, pinned: true } })).toBe(0);
  });

  it('shows and changes the instance policy, and previews manual retention', async () => {
    const shown = await cli('policy', instanceId);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ instanceId, manualBackupLimit: null, manualRetention: null });

    const set = await cli('policy', instanceId, '--manual-limit', '7', '--keep-last', '1', '--tz', 'Europe/Berlin');
    expect(set.code, set.stderr).toBe(0);
    expect(JSON.parse(set.stdout)).toMatchObject({
      manualBackupLimit: 7,
      effectiveManualBackupLimit: 7,
      manualRetention: { keepLast: 1 },
      timezone: 'Europe/Berlin',
    });

    const preview = await cli('policy', instanceId, '--preview');
    expect(preview.code, preview.stderr).toBe(0);
    const [header, ...rows] = rowsOf(preview.stdout);
    expect(header).toEqual(['BACKUPID', 'CREATEDAT', 'ACTION', 'WHY']);
    expect(rows.map((r) => r[2])).toEqual(['keep', 'delete']);

    const reset = await cli('policy', instanceId, '--manual-limit', 'default', '--no-retention');
    expect(JSON.parse(reset.stdout)).toMatchObject({ manualBackupLimit: null, manualRetention: null });
    expect((await cli('policy', instanceId, '--manual-limit', 'lots')).code).toBe(2);
    expect((await cli('policy', instanceId, '--no-retention', '--keep-last', '2')).code).toBe(2);
  });
});
