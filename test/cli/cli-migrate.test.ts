import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_TEST_TIMEOUT, cliFor } from './cli-fixture.ts';
import { startCairn, type Cairn } from '../support/cairn-harness.ts';

/** `cairn migrate` against a whole Cairn (gateway, control worker, one node worker). */
describe('cairn migrate', { timeout: CLI_TEST_TIMEOUT }, () => {
  let cairn: Cairn;

  const cli = (...args: string[]) => cliFor(cairn)(...args);

  async function register(name: string): Promise<{ id: string; dir: string }> {
    const dir = path.join(cairn.volumeRoot, name, 'data');
    fs.mkdirSync(dir, { recursive: true });
    const res = await cairn.api('POST', '/v1/instances', { name, nodeId: cairn.nodeId, tenant: cairn.tenant, volumes: [{ name: 'data', hostPath: dir }] });
    expect(res.status).toBe(201);
    return { id: res.body.id, dir };
  }

  beforeAll(async () => {
    cairn = await startCairn();
  });
  afterAll(async () => {
    await cairn?.close();
  });

  it('copies an instance into another one, following the job to its end', async () => {
    const src = await register('cli-mig-src');
    const dst = await register('cli-mig-dst');
    fs.writeFileSync(path.join(src.dir, 'hello.txt'), 'hello\n');
    fs.writeFileSync(path.join(dst.dir, 'stale.txt'), 'replaced\n');
    const res = await cli('migrate', src.id, '--to-instance', dst.id);
    expect(res.code, res.stderr + res.stdout).toBe(0);
    expect(res.stderr).toMatch(new RegExp(`migrate queued: copy into instance ${dst.id} \\(job \\S+\\)`));
    expect(res.stdout).toMatch(/^job \S+ succeeded$/m);
    expect(fs.readFileSync(path.join(dst.dir, 'hello.txt'), 'utf8')).toBe('hello\n');
    expect(fs.existsSync(path.join(dst.dir, 'stale.txt'))).toBe(false);

    const jobId = /^job (\S+) succeeded$/m.exec(res.stdout)![1]!;
    const job = await cairn.api('GET', `/v1/jobs/${jobId}`);
    expect(job.body.children.map((c: { type: string; status: string }) => `${c.type}:${c.status}`)).toEqual(['backup:succeeded', 'restore:succeeded']);
  });

  it('reports pre-flight refusals (exit 1) and bad flags (exit 2); --no-wait prints the job id', async () => {
    const src = await register('cli-mig-flags');
    const unknown = await cli('migrate', src.id, '--to-node', 'no-such-node');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/node no-such-node not found/);
    const same = await cli('migrate', src.id, '--to-node', cairn.nodeId);
    expect(same.code).toBe(1);
    expect(same.stderr).toMatch(new RegExp(`targetNodeId: instance cli-mig-flags is already on node ${cairn.nodeId}`));
    const both = await cli('migrate', src.id, '--to-node', 'x', '--to-instance', 'y');
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/exactly one of --to-node \(move\) or --to-instance \(copy\)/);

    const dst = await register('cli-mig-flags-dst');
    const queued = await cli('migrate', src.id, '--to-instance', dst.id, '--no-wait');
    expect(queued.code, queued.stderr).toBe(0);
    const jobId = queued.stdout.trim();
    expect((await cairn.api('GET', `/v1/jobs/${jobId}`)).body).toMatchObject({ id: jobId, type: 'migrate' });
    await cairn.waitForJob(jobId);
  });

  it('exits 1 with the stage and the error when the migrate fails', async () => {
    // An empty volume: the migrate's backup has nothing to back up.
    const src = await register('cli-mig-empty');
    const dst = await register('cli-mig-empty-dst');
    const res = await cli('migrate', src.id, '--to-instance', dst.id);
    expect(res.code, res.stderr + res.stdout).toBe(1);
    expect(res.stdout).toMatch(/^job \S+ failed at stage \S+: .*nothing to back up/m);
  });
});
