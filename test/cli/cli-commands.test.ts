import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cairn, startCairn } from '../support/cairn-harness.ts';
import { CAIRN_BIN, CLI_TEST_TIMEOUT, cliFor, rowsOf, runCli, spawnCli } from './cli-fixture.ts';

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The installed bin, configuration (flags > env > cairn login's file > default), names for ids, --json, exit codes, progress and Ctrl-C. */
describe('cairn commands', { timeout: CLI_TEST_TIMEOUT }, () => {
  let cairn: Cairn;
  let cli: ReturnType<typeof cliFor>;
  let dir: string;
  let elsewhere: string;

  beforeAll(async () => {
    cairn = await startCairn();
    cli = cliFor(cairn);
    dir = path.join(cairn.volumeRoot, 'cmd-app', 'data');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'hello.txt'), 'hello\n');
    fs.writeFileSync(path.join(dir, 'big.bin'), Buffer.alloc(3 * 1024 * 1024, 7));
    elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-cli-cwd-'));
  });
  afterAll(async () => {
    await cairn?.close();
    if (elsewhere) fs.rmSync(elsewhere, { recursive: true, force: true });
  });

  it('runs as an installed bin from any directory, without npm output; --help says how to point it at a gateway', async () => {
    const help = await runCli(['--help'], { cwd: elsewhere });
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: cairn /);
    expect(help.stdout).toContain('CAIRN_URL');
    expect(help.stdout).toContain('cairn login');
    expect(help.stdout + help.stderr).not.toMatch(/^> /m);
    // The bin npm links for the workspace (node_modules/.bin/cairn, what `npx cairn` runs).
    const linked = path.resolve('node_modules/.bin/cairn');
    expect(fs.realpathSync(linked)).toBe(fs.realpathSync(CAIRN_BIN));
    const nodes = await runCli(['nodes', '--url', cairn.url, '--token', cairn.adminToken], { cwd: elsewhere });
    expect(nodes.code, nodes.stderr).toBe(0);
    expect(nodes.stdout).toContain(cairn.nodeId);
  });

  it('says how to point it elsewhere when the gateway cannot be reached (exit 3)', async () => {
    const port = await closedPort();
    const res = await runCli(['instances'], { env: { CAIRN_URL: `http://127.0.0.1:${port}`, CAIRN_TOKEN: 'x' } });
    expect(res.code).toBe(3);
    expect(res.stderr).toContain(`cannot reach Cairn at http://127.0.0.1:${port}`);
    expect(res.stderr).toContain('--url URL, the CAIRN_URL variable, or cairn login');
    const noToken = await runCli(['instances'], { cwd: elsewhere, env: { CAIRN_URL: cairn.url } });
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toMatch(/no token: pass --token, set CAIRN_TOKEN, run cairn login/);
  });

  it('cairn login saves URL and token (mode 0600, token never printed); flags beat env beat the file beat the default', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-cli-login-'));
    const opts = (env: Record<string, string | undefined> = {}) => ({ cwd: elsewhere, env: { XDG_CONFIG_HOME: home, ...env } });
    const file = path.join(home, 'cairn', 'config.json');
    const port = await closedPort();
    const dead = `http://127.0.0.1:${port}`;

    const fresh = JSON.parse((await runCli(['config', '--json'], opts())).stdout);
    expect(fresh).toEqual({ url: 'http://127.0.0.1:8080', urlSource: 'default', tokenSource: null, configFile: file });

    const wrong = await runCli(['login', '--url', cairn.url, '--token', 'cairn_wrong'], opts());
    expect(wrong.code).toBe(1);
    expect(fs.existsSync(file)).toBe(false);

    const login = await runCli(['login', '--url', cairn.url, '--token', cairn.adminToken], opts());
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toContain(`logged in to ${cairn.url}`);
    expect(login.stdout + login.stderr).not.toContain(cairn.adminToken);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual({ url: cairn.url, token: cairn.adminToken });

    const fromFile = await runCli(['nodes', '--json'], opts());
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(JSON.parse(fromFile.stdout).items.map((n: { id: string }) => n.id)).toContain(cairn.nodeId);
    const shown = await runCli(['config'], opts());
    expect(shown.stdout).toContain(`url:    ${cairn.url} (from config file)`);
    expect(shown.stdout).not.toContain(cairn.adminToken);

    // env over the file, the flag over env; the token still from the file.
    expect((await runCli(['nodes'], opts({ CAIRN_URL: dead }))).code).toBe(3);
    expect((await runCli(['nodes', '--url', cairn.url], opts({ CAIRN_URL: dead }))).code).toBe(0);
    const badEnvToken = await runCli(['nodes'], opts({ CAIRN_TOKEN: 'cairn_wrong' }));
    expect(badEnvToken.code).toBe(1);
    expect(badEnvToken.stderr).toMatch(/^cairn: /);
    expect((await runCli(['nodes', '--token', cairn.adminToken], opts({ CAIRN_TOKEN: 'cairn_wrong' }))).code).toBe(0);

    expect((await runCli(['logout'], opts())).code).toBe(0);
    expect(fs.existsSync(file)).toBe(false);
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('creates, shows, updates and deletes instances, by name as well as by id; an ambiguous name is a clear error', async () => {
    const created = await cli(
      'instances',
      'create',
      '--name',
      'cmd-app',
      '--node',
      cairn.nodeId,
      '--tenant',
      cairn.tenant,
      '--volume',
      `data=${dir}`,
      '--json',
    );
    expect(created.code, created.stderr).toBe(0);
    const instance = JSON.parse(created.stdout);
    expect(instance).toMatchObject({ name: 'cmd-app', tenant: cairn.tenant, nodeId: cairn.nodeId, volumes: [{ name: 'data', hostPath: dir, excludes: [] }] });

    const shown = await cli('instances', 'show', 'cmd-app', '--json');
    expect(JSON.parse(shown.stdout).id).toBe(instance.id);
    const updated = await cli('instances', 'update', 'cmd-app', '--exclude', 'data=*.tmp');
    expect(updated.code, updated.stderr).toBe(0);
    expect(updated.stdout).toContain(`volume data: ${dir} (excludes *.tmp)`);

    // The same name in another tenant: the bare name is ambiguous, tenant/name is not.
    const other = path.join(cairn.volumeRoot, 'cmd-app-other');
    const twin = await cli('register', '--name', 'cmd-app', '--node', cairn.nodeId, '--tenant', `${cairn.tenant}-b`, '--volume', `data=${other}`, '--json');
    expect(twin.code, twin.stderr).toBe(0);
    const ambiguous = await cli('backups', 'cmd-app');
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toContain(`instance name cmd-app is ambiguous: `);
    expect(ambiguous.stderr).toContain(`${cairn.tenant}/cmd-app (${instance.id})`);
    expect((await cli('instances', 'show', `${cairn.tenant}-b/cmd-app`, '--json')).stdout).toContain(JSON.parse(twin.stdout).id);
    const deleted = await cli('instances', 'delete', `${cairn.tenant}-b/cmd-app`);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(deleted.stdout).toBe(`instance ${JSON.parse(twin.stdout).id} deleted\n`);

    const missing = await cli('instances', 'show', 'no-such-instance');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('cairn: instance no-such-instance not found (by id or name)\n');
  });

  it('backs up by name with a progress bar on a terminal (real percentages and sizes), lists sizes human-readable, --json raw', async () => {
    // `script` gives the CLI a pseudo-terminal, as a user's shell would.
    const { execFile } = await import('node:child_process');
    const command = `'${process.execPath}' '${CAIRN_BIN}' backup cmd-app --kind full`;
    const tty = await new Promise<string>((resolve, reject) =>
      execFile('script', ['-qec', command, '/dev/null'], { env: { ...process.env, CAIRN_URL: cairn.url, CAIRN_TOKEN: cairn.adminToken } }, (err, stdout) =>
        err ? reject(err) : resolve(stdout),
      ),
    );
    expect(tty).toMatch(/\[[█░]+\] \d{1,3}% \| [\d.]+ (B|KiB|MiB) of [\d.]+ (B|KiB|MiB) \| \d+\/\d+ files/);
    expect(tty).toMatch(/100% \| /);
    expect(tty).not.toContain('{percent}');
    expect(tty).not.toMatch(/of 100\b/);
    expect(tty).toMatch(/job \S+ succeeded/);

    const list = await cli('backups', 'cmd-app');
    const [header, row] = rowsOf(list.stdout);
    const stored = row![header!.indexOf('LOGICALBYTES')];
    expect(stored).toMatch(/^[\d.]+ MiB$/);
    const json = JSON.parse((await cli('backups', 'cmd-app', '--json')).stdout);
    expect(json.items[0].logicalBytes).toBeGreaterThan(3 * 1024 * 1024);
    expect(json.nextCursor).toBeNull();
  });

  it('prints the API JSON with --json: nodes, jobs, schedules (create, update, run, delete), tokens', async () => {
    const nodes = JSON.parse((await cli('nodes', 'show', cairn.nodeId, '--json')).stdout);
    expect(nodes).toMatchObject({ id: cairn.nodeId, status: 'online', volumeRoots: [cairn.volumeRoot] });

    const schedule = JSON.parse((await cli('schedules', 'create', 'cmd-app', '--cron', '0 3 * * *', '--keep-last', '2', '--json')).stdout);
    expect(schedule).toMatchObject({ cron: '0 3 * * *', timezone: 'UTC', retention: { keepLast: 2 }, enabled: true });
    const paused = await cli('schedules', 'update', schedule.id, '--disable', '--keep-daily', '3', '--json');
    expect(JSON.parse(paused.stdout)).toMatchObject({ id: schedule.id, enabled: false, retention: { keepDaily: 3 }, nextRunAt: null });
    const listed = await cli('schedules', 'cmd-app');
    expect(rowsOf(listed.stdout)[1]!.slice(0, 4)).toEqual([schedule.id, '0 3 * * *', 'UTC', 'false']);
    const ran = await cli('schedules', 'run', schedule.id, '--json');
    expect(ran.code, ran.stderr).toBe(0);
    expect(JSON.parse(ran.stdout)).toMatchObject({ type: 'backup', status: 'succeeded' });
    const del = await cli('schedules', 'delete', schedule.id);
    expect(del.stdout).toBe(`schedule ${schedule.id} deleted; its 1 backup(s) kept\n`);

    const jobs = JSON.parse((await cli('jobs', '--instance', 'cmd-app', '--json')).stdout);
    expect(jobs.items.length).toBeGreaterThanOrEqual(2);
    expect(jobs.items.every((j: { instanceId: string }) => j.instanceId === jobs.items[0].instanceId)).toBe(true);

    const token = JSON.parse((await cli('tokens', 'create', '--name', 'cli-test', '--role', 'member', '--tenant', cairn.tenant, '--json')).stdout);
    expect(token).toMatchObject({ name: 'cli-test', role: 'member', tenant: cairn.tenant, token: expect.stringMatching(/^cairn_/) });
    const asMember = await runCli(['instances', '--json'], { env: { CAIRN_URL: cairn.url, CAIRN_TOKEN: token.token } });
    expect(JSON.parse(asMember.stdout).items.map((i: { name: string }) => i.name)).toEqual(['cmd-app']);
    const revoked = JSON.parse((await cli('tokens', 'revoke', token.id, '--json')).stdout);
    expect(revoked).toMatchObject({ id: token.id, revokedAt: expect.any(String) });
    const refused = await runCli(['instances'], { env: { CAIRN_URL: cairn.url, CAIRN_TOKEN: token.token } });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^cairn: .+/);
    expect((await cli('tokens', 'create', '--name', 'x', '--role', 'root')).code).toBe(2);
  });

  it('Ctrl-C while waiting says the job keeps running and how to cancel it (exit 130); jobs cancel stops it', async () => {
    await cairn.stopInProcessNodeWorker(); // the job stays queued for as long as the test needs
    try {
      const started = await cli('backup', 'cmd-app', '--no-wait');
      const jobId = started.stdout.trim();
      const watch = spawnCli(['jobs', 'watch', jobId], { env: { CAIRN_URL: cairn.url, CAIRN_TOKEN: cairn.adminToken } });
      const deadline = Date.now() + 60_000;
      while (!watch.output.stderr.includes(`${jobId}: queued`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      watch.child.kill('SIGINT');
      expect(await watch.exit).toBe(130);
      expect(watch.output.stderr).toContain(`stopped watching; job ${jobId} keeps running on the server.\nTo cancel it: cairn jobs cancel ${jobId}\n`);
      expect((await cairn.api('GET', `/v1/jobs/${jobId}`)).body.status).toBe('queued');

      const cancelled = await cli('jobs', 'cancel', jobId);
      expect(cancelled.code, cancelled.stderr).toBe(0);
      expect(cancelled.stdout).toBe(`job ${jobId}: cancelled\n`);
      const again = await cli('jobs', 'cancel', jobId);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/^cairn: .+/);
    } finally {
      await cairn.startInProcessNodeWorker();
    }
  });
});
