import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../gateway/gateway-harness.ts';

const exec = promisify(execFile);

/** `cairn backup --kind` and the backup columns of `cairn backups` / `cairn show`, against a gateway (no worker: jobs stay queued). */
describe('cairn backup --kind', () => {
  let gw: TestGateway;
  let instanceId: string;

  async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const r = await exec(process.execPath, ['--import', 'tsx', 'services/cli/src/main.ts', ...args], {
        env: { ...process.env, CAIRN_URL: gw.url, CAIRN_TOKEN: gw.adminToken },
      });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  }

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
    const [header, ...lines] = list.stdout.trim().split('\n');
    expect(header!.split(/\s+/)).toEqual([
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
    expect(lines[0]!.split(/\s+/).slice(1, 5)).toEqual(['pending', 'manual', 'incremental', backupId]);
    expect(lines[1]!.split(/\s+/)).toEqual([backupId, 'completed', 'manual', 'full', '-', expect.any(String), '2048', '0', '4096', '-', '-', 'false']);

    const show = await cli('show', backupId);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/EXCLUSIVEBYTES/);
    expect(show.stdout.trim().split('\n')[1]!.split(/\s+/)).toContain('2048');
  });
});
