import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_TEST_TIMEOUT, cliFor, rowsOf } from './cli-fixture.ts';
import { startCairn, type Cairn } from '../support/cairn-harness.ts';

describe('cairn CLI', { timeout: CLI_TEST_TIMEOUT }, () => {
  let cairn: Cairn;
  let dir: string;

  /** Runs the CLI as a user would; resolves with exit code and output instead of throwing. */
  const cli = (...args: string[]) => cliFor(cairn)(...args);

  beforeAll(async () => {
    cairn = await startCairn();
    dir = path.join(cairn.volumeRoot, 'cli-app/data');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'hello.txt'), 'hello\n');
  });
  afterAll(async () => {
    await cairn?.close();
  });

  it('registers, backs up (waiting for the job), browses and restores', async () => {
    const reg = await cli('register', '--name', 'cli-app', '--node', cairn.nodeId, '--tenant', cairn.tenant, '--volume', `data=${dir}`, '--json');
    expect(reg.code, reg.stderr).toBe(0);
    const instanceId = JSON.parse(reg.stdout).id as string;

    const backup = await cli('backup', instanceId);
    expect(backup.code, backup.stderr).toBe(0);
    expect(backup.stdout).toMatch(/^job \S+ succeeded$/m);

    const list = await cli('backups', instanceId);
    const backupId = list.stdout.split('\n')[1]!.split(/\s+/)[0]!;
    expect(list.stdout).toContain('completed');

    const files = await cli('files', backupId);
    expect(rowsOf(files.stdout)).toContainEqual(['data/hello.txt', 'file', '6 B', '0644', expect.any(String)]);

    fs.writeFileSync(path.join(dir, 'hello.txt'), 'changed\n');
    // A replace restore shows what it would change first; a script must confirm with --yes.
    const plan = await cli('restore', backupId, '--dry-run');
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/would create 0, change 1, delete 0, leave \d+ unchanged/);
    expect(plan.stdout).toContain('data/hello.txt');
    expect(fs.readFileSync(path.join(dir, 'hello.txt'), 'utf8')).toBe('changed\n');
    const unconfirmed = await cli('restore', backupId);
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toMatch(/replaces 1 and deletes 0 entries: pass --yes/);
    expect(fs.readFileSync(path.join(dir, 'hello.txt'), 'utf8')).toBe('changed\n');
    const restore = await cli('restore', backupId, '--yes');
    expect(restore.code, restore.stderr).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'hello.txt'), 'utf8')).toBe('hello\n');
  });

  it('reports API errors with their message and exit code 1, usage errors with 2', async () => {
    const missing = await cli('backup', 'no-such-instance');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/not found/);
    const usage = await cli('restore');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/missing backup id/);
    const bad = await cli('register', '--name', 'x', '--node', cairn.nodeId, '--volume', 'data=relative/path');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--volume must be name=\/absolute\/path/);
  });
});
