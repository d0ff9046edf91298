import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../gateway/gateway-harness.ts';
import { CLI_TEST_TIMEOUT, cliFor, rowsOf } from './cli-fixture.ts';

/** `cairn backup --kind` and the backup columns of `cairn backups` / `cairn show`, against a gateway (no worker: jobs stay queued). */
describe('cairn backup --kind', { timeout: CLI_TEST_TIMEOUT }, () => {
  let gw: TestGateway;
  let instanceId: string;

  const cli = (...args: string[]) => cliFor(gw)(...args);

  beforeAll(async () => {
    gw = await startTestGateway();
    const nodeId = `cli-kinds-${gw.tag}`;
    await gw.node(nodeId, ['/srv/cli-kinds']);
    const res = await gw.api('POST', '/v1/instances', {
      body: { name: `cli-kinds-${gw.tag}`, nodeId, tenant: `cli-kinds-${gw.tag}`, volumes: [{ name: 'data', hostPath: '/srv/cli-kinds/data' }] },
    });
    expect(res.status).toBe(201);
    instanceId = res.body.id;
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('refuses an unknown kind as a usage error', async () => {
    const bad = await cli('backup', instanceId, '--kind', 'delta');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--kind must be auto, full, incremental/);
  });

  it('passes the kind to the API: incremental with nothing to build on is refused, full is queued and listed with its kind', async () => {
    const inc = await cli('backup', instanceId, '--kind', 'incremental', '--no-wait');
    expect(inc.code).toBe(1);
    expect(inc.stderr).toMatch(/cannot take an incremental backup: no completed backup of volumes data/);

    const full = await cli('backup', instanceId, '--kind', 'full', '--no-wait');
    expect(full.code, full.stderr).toBe(0);
    expect(full.stderr).toMatch(/^backup \S+ queued, full \(job \S+\)$/m);
    const backupId = /^backup (\S+) queued/m.exec(full.stderr)![1]!;
    await gw.prisma.backup.update({
      where: { id: backupId },
      data: { status: 'completed', completedAt: new Date(), format: 2, sizeBytes: 2048n, logicalBytes: 4096n, reusedBytes: 0n },
    });
    await gw.prisma.job.updateMany({ where: { backupId }, data: { status: 'succeeded', finishedAt: new Date() } });

    const auto = await cli('backup', instanceId, '--no-wait');
    expect(auto.code, auto.stderr).toBe(0);
    expect(auto.stderr).toContain(`queued, incremental on ${backupId}`);

    const list = await cli('backups', instanceId);
    const [header, ...lines] = rowsOf(list.stdout);
    expect(header).toEqual([
      'ID',
      'STATUS',
      'TRIGGER',
      'KIND',
      'PARENTID',
      'CREATEDAT',
      'STOREDBYTES',
      'REUSEDBYTES',
      'LOGICALBYTES',
      'FILECOUNT',
      'NAME',
      'PINNED',
    ]);
    expect(lines[0]!.slice(1, 5)).toEqual(['pending', 'manual', 'incremental', backupId]);
    // Sizes read as KiB/MiB in tables; --json keeps the API's byte counts.
    expect(lines[1]).toEqual([backupId, 'completed', 'manual', 'full', '-', expect.any(String), '2.0 KiB', '0 B', '4.0 KiB', '-', '-', 'false']);
    const listed = JSON.parse((await cli('backups', instanceId, '--json')).stdout);
    expect(listed.items[1]).toMatchObject({ id: backupId, storedBytes: 2048, reusedBytes: 0, logicalBytes: 4096 });

    const show = await cli('show', backupId);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/EXCLUSIVEBYTES/);
    expect(rowsOf(show.stdout)[1]).toContain('2.0 KiB');
  });
});
