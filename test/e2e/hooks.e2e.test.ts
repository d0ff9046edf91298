/**
 * Pre/post hooks end to end (issue 13): a node worker in a process of its own with a hooks file
 * (CAIRN_NODE_HOOKS), webhooks served by an HTTP server of this test that checks every signature,
 * command hooks that write what they were given into a journal, through the API.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyHookSignature } from '@cairn/core/domain/hooks.ts';
import { startCairn, type Cairn } from '../support/cairn-harness.ts';

const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-e2e-hooks-'));
const hooksFile = path.join(stateDir, 'hooks.json');
/** Every hook appends `<event type> <event JSON>` here, commands and webhooks alike: the order they ran in. */
const journal = path.join(stateDir, 'journal');

interface Entry {
  type: string;
  via: 'command' | 'webhook';
  event: any;
}

function entries(instanceId: string): Entry[] {
  if (!fs.existsSync(journal)) return [];
  return fs
    .readFileSync(journal, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [via, type, ...rest] = l.split(' ');
      return { via: via as Entry['via'], type: type!, event: JSON.parse(rest.join(' ')) };
    })
    .filter((e) => e.event.instance.id === instanceId);
}

/** The hooks file: what instances' command hooks may name on this node. */
function writeHooksFile(volumeRoot: string): void {
  const journalLine = `{ printf 'command %s ' "$CAIRN_HOOK_EVENT"; cat; } >> ${journal}`;
  const commands = {
    journal: { argv: ['/bin/sh', '-c', journalLine] },
    // What the pre-restore hook sees in the volume is what the application had before the restore.
    'journal-and-look': { argv: ['/bin/sh', '-c', `cat ${volumeRoot}/ordered/data/state.txt > ${stateDir}/pre-restore-saw; ${journalLine}`] },
    'exit-3': { argv: ['/bin/sh', '-c', 'echo "checkpoint refused: the database is starting up" >&2; exit 3'] },
    // Starts a child of its own and ignores SIGTERM: a timeout must still kill both.
    'hang-with-child': { argv: ['/bin/sh', '-c', `trap '' TERM; echo $$ > ${stateDir}/hang.pid; sleep 300 & echo $! > ${stateDir}/hang-child.pid; wait`] },
  };
  fs.writeFileSync(hooksFile, JSON.stringify(commands, null, 2));
}

/** Whether a process runs (a zombie nobody reaps, as in some containers, does not). */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

const terminal = (j: any) => ['succeeded', 'failed', 'cancelled', 'interrupted'].includes(j.status);

describe('hooks (issue 13)', () => {
  let cairn: Cairn;
  let worker: ChildProcess;
  let server: http.Server;
  let hookBase: string;
  /** Per instance: its hook secret (shown once at creation) and what its webhook does. */
  const secrets = new Map<string, string>();
  const behaviours = new Map<string, (event: any, res: http.ServerResponse) => void | Promise<void>>();
  const badSignatures: string[] = [];
  const held: http.ServerResponse[] = [];

  const startWorker = async () => {
    worker = cairn.spawnNodeWorker();
    // The worker is up once its heartbeat reports the hooks file.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const node = (await cairn.api('GET', `/v1/nodes/${cairn.nodeId}`)).body;
      if (node?.hookCommands?.length && node.heartbeatAgeSeconds !== null && node.heartbeatAgeSeconds < 3) return;
      if (Date.now() > deadline) throw new Error(`node worker did not start: ${JSON.stringify(node)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  const volume = (name: string, files: Record<string, string> = { 'state.txt': 'running\n', 'table.dat': 'x'.repeat(4096) }) => {
    const dir = path.join(cairn.volumeRoot, name, 'data');
    fs.mkdirSync(dir, { recursive: true });
    for (const [f, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), content);
    return dir;
  };

  const register = async (name: string, hooks: Record<string, unknown>, token?: string) => {
    const dir = volume(name);
    const res = await cairn.api(
      'POST',
      '/v1/instances',
      { name, nodeId: cairn.nodeId, ...(token ? {} : { tenant: cairn.tenant }), volumes: [{ name: 'data', hostPath: dir }], hooks },
      token,
    );
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.hookSecret).toMatch(/^whsec_/);
    secrets.set(res.body.id, res.body.hookSecret);
    return { id: res.body.id as string, dir };
  };

  const webhook = (name: string, extra: Record<string, unknown> = {}) => ({
    type: 'webhook',
    url: `${hookBase}/${name}?token=t0p`,
    timeoutSeconds: 10,
    ...extra,
  });
  const command = (name: string, extra: Record<string, unknown> = {}) => ({ type: 'command', name, timeoutSeconds: 10, ...extra });

  const backup = async (instanceId: string) => {
    const res = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, {});
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return { backupId: res.body.backup.id as string, jobId: res.body.job.id as string };
  };

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', async () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const event = JSON.parse(body);
        const secret = secrets.get(event.instance.id);
        if (!secret || !verifyHookSignature(secret, body, req.headers['x-cairn-signature'] as string)) badSignatures.push(body);
        fs.appendFileSync(journal, `webhook ${event.type} ${body}\n`);
        const behave = behaviours.get(new URL(req.url!, 'http://x').pathname.slice(1));
        if (behave) await behave(event, res);
        else res.end('ok');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    hookBase = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    process.env.CAIRN_NODE_HOOKS = hooksFile; // the spawned node worker's environment is the harness's, taken from this one
    cairn = await startCairn({ nodeWorker: 'none' });
    writeHooksFile(cairn.volumeRoot);
    await startWorker();
  }, 120_000);

  afterAll(async () => {
    delete process.env.CAIRN_NODE_HOOKS;
    for (const res of held) res.destroy();
    await cairn?.close();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    fs.rmSync(stateDir, { recursive: true, force: true });
  });

  it('webhook and command hooks run in order around backup and restore, signed; pre before the first byte is read, post after', async () => {
    const { id, dir } = await register('ordered', {
      preBackup: webhook('ordered-pre'),
      postBackup: command('journal'),
      preRestore: command('journal-and-look'),
      postRestore: webhook('ordered-post-restore'),
    });
    // The pre hook quiesces the "application": what it writes must be in the backup.
    behaviours.set('ordered-pre', (_e, res) => {
      fs.writeFileSync(path.join(dir, 'state.txt'), 'quiesced by the pre-backup hook\n');
      res.end('frozen');
    });
    const { backupId, jobId } = await backup(id);
    const job = await cairn.waitForJob(jobId, terminal);
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    fs.writeFileSync(path.join(dir, 'state.txt'), 'changed after the backup\n');

    // The post-restore hook sees the restored data in place.
    let sawAtPostRestore = '';
    behaviours.set('ordered-post-restore', (_e, res) => {
      sawAtPostRestore = fs.readFileSync(path.join(dir, 'state.txt'), 'utf8');
      res.end('started');
    });
    const restore = await cairn.api('POST', `/v1/backups/${backupId}/restore`, {});
    expect(restore.status, JSON.stringify(restore.body)).toBe(202);
    const restored = await cairn.waitForJob(restore.body.job.id, terminal);
    expect(restored.status, JSON.stringify(restored)).toBe('succeeded');

    expect(fs.readFileSync(path.join(dir, 'state.txt'), 'utf8')).toBe('quiesced by the pre-backup hook\n');
    expect(fs.readFileSync(path.join(stateDir, 'pre-restore-saw'), 'utf8')).toBe('changed after the backup\n');
    expect(sawAtPostRestore).toBe('quiesced by the pre-backup hook\n');

    const seen = entries(id);
    expect(seen.map((e) => `${e.via} ${e.type}`)).toEqual(['webhook pre-backup', 'command post-backup', 'command pre-restore', 'webhook post-restore']);
    expect(badSignatures).toEqual([]);
    const [preB, postB, preR, postR] = seen.map((e) => e.event);
    expect(preB).toMatchObject({ hook: 'preBackup', jobId, backupId, nodeId: cairn.nodeId, instance: { id, name: 'ordered' }, outcome: null, recovery: false });
    expect(postB).toMatchObject({
      hook: 'postBackup',
      windowId: preB.windowId,
      outcome: { status: 'succeeded', preHook: { status: 'succeeded', httpStatus: 200 } },
    });
    expect(preR).toMatchObject({ hook: 'preRestore', jobId: restore.body.job.id, outcome: null });
    expect(postR).toMatchObject({ hook: 'postRestore', windowId: preR.windowId, outcome: { status: 'succeeded' } });

    // Recorded on the jobs: each hook's status, duration and output, and the quiesced window.
    const w = job.hooks.windows[0];
    expect(w).toMatchObject({ stage: 'backup', status: 'closed', outcome: 'succeeded', thawedBy: null });
    expect(w.pre).toMatchObject({ type: 'webhook', status: 'succeeded', httpStatus: 200, outputTail: 'frozen', target: `${hookBase}/ordered-pre` });
    expect(w.post).toMatchObject({ type: 'command', target: 'journal', status: 'succeeded', exitCode: 0 });
    expect(w.pre.durationMs).toBeGreaterThanOrEqual(0);
    expect(w.quiescedMs).toBeGreaterThanOrEqual(0);
    expect(job.hooks.quiescedMs).toBe(w.quiescedMs);
    expect(restored.hooks.windows[0]).toMatchObject({
      stage: 'restore',
      pre: { type: 'command', status: 'succeeded' },
      post: { type: 'webhook', outputTail: 'started' },
    });
    // The instance shows its hooks, never its secret again.
    const shown = await cairn.api('GET', `/v1/instances/${id}`);
    expect(shown.body.hooks.preBackup).toMatchObject({ type: 'webhook', onError: 'fail', timeoutSeconds: 10 });
    expect(JSON.stringify(shown.body)).not.toContain(secrets.get(id));
  });

  it('the post hook runs after a backup that fails, and is told why', async () => {
    const { id, dir } = await register('failing', { preBackup: webhook('failing-pre'), postBackup: webhook('failing-post') });
    // The pre hook pulls the volume away (a directory turned into a file): reading it fails.
    behaviours.set('failing-pre', (_e, res) => {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.writeFileSync(dir, 'not a directory any more');
      res.end('ok');
    });
    const { jobId } = await backup(id);
    const job = await cairn.waitForJob(jobId, terminal);
    expect(job.status, JSON.stringify(job)).toBe('failed');
    const post = entries(id).find((e) => e.type === 'post-backup')!.event;
    expect(post.outcome.status).toBe('failed');
    expect(post.outcome.error).toBeTruthy();
    expect(job.hooks.windows[0]).toMatchObject({ status: 'closed', outcome: 'failed', post: { status: 'succeeded' } });
  });

  it('the post hook runs after a backup cancelled during its pre hook; the pre hook is stopped, nothing is read', async () => {
    const { id } = await register('cancelled', { preBackup: webhook('cancelled-pre'), postBackup: webhook('cancelled-post') });
    let jobId = '';
    behaviours.set('cancelled-pre', async (_e, res) => {
      held.push(res); // never answered: the cancel must stop the request
      const cancel = await cairn.api('POST', `/v1/jobs/${jobId}/cancel`);
      expect(cancel.status, JSON.stringify(cancel.body)).toBe(202);
    });
    ({ jobId } = await backup(id));
    const job = await cairn.waitForJob(jobId, terminal);
    expect(job.status, JSON.stringify(job)).toBe('cancelled');
    const post = entries(id).find((e) => e.type === 'post-backup')!.event;
    expect(post.outcome).toMatchObject({ status: 'cancelled', preHook: { status: 'cancelled' } });
    expect(job.hooks.windows[0]).toMatchObject({ pre: { status: 'cancelled' }, post: { status: 'succeeded' }, outcome: 'cancelled' });
  });

  it('a pre hook that times out has its whole process group killed; the backup fails saying so; the post hook runs', async () => {
    const { id } = await register('timeout', { preBackup: command('hang-with-child', { timeoutSeconds: 1 }), postBackup: webhook('timeout-post') });
    const { backupId, jobId } = await backup(id);
    const job = await cairn.waitForJob(jobId, terminal);
    expect(job.status, JSON.stringify(job)).toBe('failed');
    expect(job.errorCode).toBe('hook-failed');
    expect(job.error).toContain('preBackup hook (command hang-with-child) failed: timed out after 1 s');
    expect((await cairn.api('GET', `/v1/backups/${backupId}`)).body.status).toBe('failed');
    const post = entries(id).find((e) => e.type === 'post-backup')!.event;
    expect(post.outcome).toMatchObject({ status: 'failed', preHook: { status: 'timeout' } });
    for (const f of ['hang.pid', 'hang-child.pid']) expect(alive(Number(fs.readFileSync(path.join(stateDir, f), 'utf8'))), f).toBe(false);
  });

  it('a pre hook with onError fail that exits 3 fails the backup naming the hook, exit code 3 and its output', async () => {
    const { id } = await register('exit3', { preBackup: command('exit-3'), postBackup: command('journal') });
    const { backupId, jobId } = await backup(id);
    const job = await cairn.waitForJob(jobId, terminal);
    expect(job.status).toBe('failed');
    expect(job.error).toContain('preBackup hook (command exit-3) failed: exit code 3');
    expect(job.error).toContain('checkpoint refused: the database is starting up');
    const b = (await cairn.api('GET', `/v1/backups/${backupId}`)).body;
    expect(b.status).toBe('failed');
    expect(b.error).toContain('exit code 3');
    expect(job.hooks.windows[0].pre).toMatchObject({ status: 'failed', exitCode: 3, outputTail: 'checkpoint refused: the database is starting up\n' });
    expect(entries(id).map((e) => e.type)).toEqual(['post-backup']);
  });

  it('with onError continue the backup completes, with a warning naming the hook', async () => {
    const { id } = await register('exit3-continue', { preBackup: command('exit-3', { onError: 'continue' }) });
    const { backupId, jobId } = await backup(id);
    const job = await cairn.waitForJob(jobId, terminal);
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    const b = (await cairn.api('GET', `/v1/backups/${backupId}`)).body;
    expect(b.status).toBe('completed');
    expect(b.warnings).toContainEqual(expect.objectContaining({ code: 'hook-failed', message: expect.stringContaining('exit code 3') }));
  });

  it('hook failures are counted in /metrics', async () => {
    const text = await (await fetch(`${cairn.url}/metrics`)).text();
    const line = (labels: string) => text.split('\n').find((l) => l.startsWith(`cairn_hook_failures_total{${labels}}`));
    expect(Number(line('stage="backup",hook="pre",status="failed"')?.split(' ')[1])).toBeGreaterThanOrEqual(2);
    expect(Number(line('stage="backup",hook="pre",status="timeout"')?.split(' ')[1])).toBeGreaterThanOrEqual(1);
  });

  it('a member cannot name a command the node does not define (400 naming it) nor see another tenant’s hooks (404)', async () => {
    const token = async (tenant: string) => {
      const res = await cairn.api('POST', '/v1/tokens', { name: `m-${tenant}`, role: 'member', tenant });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      return res.body.token as string;
    };
    const mine = await token(`${cairn.tenant}-a`);
    const theirs = await token(`${cairn.tenant}-b`);
    const dir = volume('member-app');
    const refused = await cairn.api(
      'POST',
      '/v1/instances',
      { name: 'member-app', nodeId: cairn.nodeId, volumes: [{ name: 'data', hostPath: dir }], hooks: { preBackup: command('rm-everything') } },
      mine,
    );
    expect(refused.status).toBe(400);
    expect(refused.body.error.message).toContain('hooks.preBackup.name');
    expect(refused.body.error.message).toContain('rm-everything');
    const { id } = await register('member-app', { preBackup: command('journal') }, mine);
    expect((await cairn.api('GET', `/v1/instances/${id}`, undefined, mine)).body.hooks.preBackup.name).toBe('journal');
    expect((await cairn.api('GET', `/v1/instances/${id}`, undefined, theirs)).status).toBe(404);
    expect((await cairn.api('PATCH', `/v1/instances/${id}`, { rotateHookSecret: true }, theirs)).status).toBe(404);
    expect((await cairn.api('GET', '/v1/instances', undefined, theirs)).body.items).toEqual([]);
    const patched = await cairn.api('PATCH', `/v1/instances/${id}`, { hooks: { postBackup: command('nope') } }, mine);
    expect(patched.status).toBe(400);
    expect(patched.body.error.message).toContain('nope');
  });

  it('SIGKILL of the node worker between pre and post: its next start runs the post hook once, first, recorded', async () => {
    const { id } = await register('killed', { preBackup: webhook('killed-pre'), postBackup: command('journal') });
    let pres = 0;
    let release: () => void = () => {};
    const inPre = new Promise<void>((resolve) => {
      release = resolve;
    });
    behaviours.set('killed-pre', (_e, res) => {
      pres++;
      if (pres === 1) {
        held.push(res); // the worker dies while its pre hook is running: the window is open
        release();
      } else res.end('ok');
    });
    const { jobId } = await backup(id);
    await inPre;
    const during = await cairn.waitForJob(jobId, (j) => j.progress?.stage === 'pre-backup-hook');
    expect(during.status).toBe('running');
    // Bull Board shows the hook stage: it is the BullMQ job's progress.
    const queue = new Queue(`node.${cairn.nodeId}`, { connection: { url: cairn.config.REDIS_URL }, prefix: cairn.config.QUEUE_PREFIX });
    expect(((await queue.getJob(jobId))?.progress as { stage?: string } | undefined)?.stage).toBe('pre-backup-hook');
    await queue.close();
    const [open] = (await cairn.api('GET', `/v1/jobs/${jobId}`)).body.hooks.windows;
    expect(open).toMatchObject({ status: 'open', pre: { status: 'running' }, post: null });

    worker.kill('SIGKILL');
    await new Promise((r) => worker.once('exit', r));
    expect(entries(id).filter((e) => e.type === 'post-backup')).toEqual([]);
    await startWorker();
    const done = await cairn.waitForJob(jobId, terminal, 120_000);

    const posts = entries(id).filter((e) => e.type === 'post-backup');
    const thaws = posts.filter((e) => e.event.windowId === open.id);
    expect(thaws).toHaveLength(1);
    expect(thaws[0]!.event).toMatchObject({ recovery: true, outcome: { status: 'interrupted' } });
    // The thaw ran before the job was picked up again: the retry's pre hook comes after it.
    const order = entries(id).map((e) => `${e.type}${e.event.windowId === open.id ? ' (killed run)' : ''}`);
    expect(order.slice(0, 2)).toEqual(['pre-backup (killed run)', 'post-backup (killed run)']);
    const windows = done.hooks.windows;
    expect(windows[0]).toMatchObject({ id: open.id, status: 'closed', thawedBy: 'node-start', outcome: 'interrupted', post: { status: 'succeeded' } });
    // The worker start recorded it in its sweep job.
    const sweeps = await cairn.prisma.job.findMany({ where: { type: 'sweep', nodeId: cairn.nodeId }, orderBy: { id: 'desc' }, take: 1 });
    expect(JSON.stringify(sweeps[0]?.result)).toContain(open.id);
    // A later start finds nothing left to thaw.
    worker.kill('SIGKILL');
    await new Promise((r) => worker.once('exit', r));
    await startWorker();
    await new Promise((r) => setTimeout(r, 1000));
    expect(entries(id).filter((e) => e.event.windowId === open.id && e.type === 'post-backup')).toHaveLength(1);
  }, 180_000);
});
