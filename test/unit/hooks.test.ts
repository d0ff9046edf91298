/**
 * Hooks (issue 13) as the node worker runs them: real child processes for command hooks, a real
 * HTTP server for webhooks, in-memory records. The end-to-end behaviour through the API, with a
 * node worker that is SIGKILLed between pre and post, is in test/e2e/hooks.e2e.test.ts.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CairnError, createLogger, MemoryRecords, newId } from '@cairn/core';
import { type HookEvent, type JobHooksSummary, verifyHookSignature } from '@cairn/core/domain/hooks.ts';
import { HookCommands, parseHookCommands, runCommandHook, runWithHooks, thawOpenWindows, type HookEnv } from '@cairn/worker/node/hooks/index.ts';

const logger = createLogger({ level: 'silent' });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-unit-hooks-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A file each command appends its event to, so the order of hooks and work can be checked. */
const journal = path.join(tmp, 'journal');
const recordEvent = (tag: string) => ['/bin/sh', '-c', `{ printf '${tag} '; cat; } >> ${journal}`];
function journalLines(): { tag: string; event: HookEvent }[] {
  if (!fs.existsSync(journal)) return [];
  return fs
    .readFileSync(journal, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => ({ tag: l.slice(0, l.indexOf(' ')), event: JSON.parse(l.slice(l.indexOf(' ') + 1)) }));
}

const commands = HookCommands.of({
  freeze: { argv: recordEvent('freeze') },
  thaw: { argv: recordEvent('thaw') },
  'exit-3': { argv: ['/bin/sh', '-c', 'echo "checkpoint refused: database is in recovery" >&2; exit 3'] },
  slow: { argv: ['/bin/sleep', '30'] },
  env: { argv: ['/usr/bin/env'], env: { PGUSER: 'postgres' }, cwd: '/tmp' },
});

async function world(hooks: Record<string, unknown>, secret: string | null = 'whsec_test') {
  const records = new MemoryRecords();
  const tenant = records.seedTenant({ id: newId(), name: 'acme' });
  records.seedNode({ id: 'n1', volumeRoots: ['/srv'] });
  const instance = await records.instances.create({ id: newId(), tenantId: tenant.id, name: 'db', nodeId: 'n1', volumes: [] });
  await records.hooks.setConfig(instance.id, { hooks, secret });
  const job = await records.jobs.create({ id: newId(), type: 'backup', status: 'running', instanceId: instance.id, nodeId: 'n1', requestedBy: 't' });
  const env: HookEnv = { records, nodeId: 'n1', commands, logger };
  const stages: string[] = [];
  const target = (signal = new AbortController().signal) => ({
    instance: { id: instance.id, name: instance.name, tenantId: tenant.id },
    stage: 'backup' as const,
    job: { id: job.id, attempt: 1, backupId: null },
    signal,
    progress: (s: string) => stages.push(s),
  });
  const summary = async () => (await records.jobs.get(job.id))!.hooks as unknown as JobHooksSummary;
  return { records, env, instance, job, target, stages, summary };
}

const command = (name: string, extra: Record<string, unknown> = {}) => ({ type: 'command', name, timeoutSeconds: 10, onError: 'fail', ...extra });

afterEach(() => fs.rmSync(journal, { force: true }));

/** Whether a process runs (a zombie waiting for a reaper that is not there, as in some containers, does not). */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

describe('hook commands file', () => {
  it('parses name -> {argv, env?, cwd?}', () => {
    const defs = parseHookCommands(
      JSON.stringify({ 'pg-checkpoint': { argv: ['/usr/bin/psql', '-c', 'CHECKPOINT'], env: { PGUSER: 'postgres' }, cwd: '/' }, sync: { argv: ['sync'] } }),
      'hooks.json',
    );
    expect([...defs.keys()]).toEqual(['pg-checkpoint', 'sync']);
    expect(defs.get('pg-checkpoint')).toEqual({ argv: ['/usr/bin/psql', '-c', 'CHECKPOINT'], env: { PGUSER: 'postgres' }, cwd: '/' });
  });

  it.each([
    ['not JSON', '{', 'is not JSON'],
    ['a list', '[]', 'must be a JSON object'],
    ['an empty argv', JSON.stringify({ a: { argv: [] } }), 'a.argv'],
    ['a relative program path', JSON.stringify({ a: { argv: ['bin/x'] } }), 'argv[0] must be an absolute path'],
    ['a relative cwd', JSON.stringify({ a: { argv: ['/bin/true'], cwd: 'tmp' } }), 'a.cwd: must be an absolute path'],
    ['a shell string instead of argv', JSON.stringify({ a: { command: 'pg_ctl stop' } }), 'Unrecognized key: "command"'],
    ['a bad name', JSON.stringify({ 'a b': { argv: ['/bin/true'] } }), 'a b'],
  ])('refuses %s, naming the problem and the file', (_what, text, message) => {
    const err = (() => {
      try {
        parseHookCommands(text, '/etc/cairn/hooks.json');
      } catch (e) {
        return e as CairnError;
      }
      throw new Error('accepted');
    })();
    expect(err.code).toBe('config');
    expect(err.message).toContain('/etc/cairn/hooks.json');
    expect(err.message).toContain(message);
  });

  it('HookCommands.load refuses a missing file (the worker does not start), reloads a changed one and keeps the old on a bad change', () => {
    expect(() => HookCommands.load(path.join(tmp, 'missing.json'))).toThrow('cannot be read');
    const file = path.join(tmp, 'hooks.json');
    fs.writeFileSync(file, JSON.stringify({ a: { argv: ['/bin/true'] } }));
    const loaded = HookCommands.load(file);
    expect(loaded.names()).toEqual(['a']);
    fs.writeFileSync(file, JSON.stringify({ a: { argv: ['/bin/true'] }, b: { argv: ['/bin/true'] } }));
    fs.utimesSync(file, new Date(), new Date(Date.now() + 5000));
    loaded.refresh(logger);
    expect(loaded.names()).toEqual(['a', 'b']);
    fs.writeFileSync(file, '{ broken');
    fs.utimesSync(file, new Date(), new Date(Date.now() + 10_000));
    loaded.refresh(logger);
    expect(loaded.names()).toEqual(['a', 'b']);
    expect(HookCommands.load('').names()).toEqual([]);
  });
});

describe('command hooks', () => {
  it('run argv without a shell, with only the admin env, PATH and CAIRN_* variables; never the worker credentials', async () => {
    process.env.DATABASE_URL_FOR_TEST = 'postgresql://secret@db/cairn';
    const r = await runCommandHook(commands.get('env')!, { env: { CAIRN_JOB_ID: 'j1' }, stdin: '{}', timeoutMs: 5000 });
    delete process.env.DATABASE_URL_FOR_TEST;
    expect(r).toMatchObject({ status: 'succeeded', exitCode: 0, signal: null });
    expect(r.outputTail).toContain('PGUSER=postgres');
    expect(r.outputTail).toContain('CAIRN_JOB_ID=j1');
    expect(r.outputTail).toContain('PATH=');
    expect(r.outputTail).not.toContain('DATABASE_URL');
    const noShell = await runCommandHook({ argv: ['/bin/echo', '$HOME', '`id`', ';', 'rm'] }, { env: {}, stdin: '', timeoutMs: 5000 });
    expect(noShell.outputTail).toBe('$HOME `id` ; rm\n');
  });

  it('a timeout kills the whole process group: the command and what it started', async () => {
    const pidFile = path.join(tmp, 'grandchild.pid');
    const started = Date.now();
    const r = await runCommandHook(
      { argv: ['/bin/sh', '-c', `trap '' TERM; sleep 300 & echo $! > ${pidFile}; echo started; wait`] },
      { env: {}, stdin: '', timeoutMs: 500, killGraceMs: 300 },
    );
    expect(r.status).toBe('timeout');
    expect(r.outputTail).toContain('started');
    expect(Date.now() - started).toBeLessThan(5000);
    const grandchild = Number(fs.readFileSync(pidFile, 'utf8'));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(alive(grandchild)).toBe(false);
  });

  it('a program that cannot be started fails with the reason', async () => {
    const r = await runCommandHook({ argv: ['/nonexistent/program'] }, { env: {}, stdin: '', timeoutMs: 5000 });
    expect(r.status).toBe('failed');
    expect(r.error).toContain('could not start /nonexistent/program');
  });
});

describe('runWithHooks', () => {
  it('runs pre, then the work, then post; the post hook gets the outcome; the window and job record it', async () => {
    const w = await world({ preBackup: command('freeze'), postBackup: command('thaw') });
    const order: string[] = [];
    const hooked = await runWithHooks(w.env, w.target(), async () => {
      order.push(...journalLines().map((l) => l.tag), 'work');
      await new Promise((resolve) => setTimeout(resolve, 50));
      return 42;
    });
    const lines = journalLines();
    expect([...order, ...lines.slice(1).map((l) => l.tag)]).toEqual(['freeze', 'work', 'thaw']);
    expect(hooked.value).toBe(42);
    expect(hooked.warnings).toEqual([]);
    expect(w.stages).toEqual(['pre-backup-hook', 'post-backup-hook']);
    const [pre, post] = lines.map((l) => l.event);
    expect(pre).toMatchObject({
      type: 'pre-backup',
      hook: 'preBackup',
      phase: 'pre',
      jobId: w.job.id,
      instance: { id: w.instance.id, name: 'db' },
      outcome: null,
    });
    expect(post).toMatchObject({
      type: 'post-backup',
      windowId: pre!.windowId,
      outcome: { status: 'succeeded', error: null, preHook: { status: 'succeeded', exitCode: 0 } },
    });
    expect(post!.recovery).toBe(false);
    const summary = await w.summary();
    expect(summary.windows).toHaveLength(1);
    expect(summary.windows[0]).toMatchObject({
      status: 'closed',
      outcome: 'succeeded',
      pre: { status: 'succeeded', exitCode: 0 },
      post: { status: 'succeeded' },
    });
    expect(summary.quiescedMs).toBeGreaterThanOrEqual(45);
    expect(hooked.window?.quiescedMs).toBe(summary.quiescedMs);
  });

  it('without hooks for the stage it just runs the work', async () => {
    const w = await world({ preRestore: command('freeze') });
    expect((await runWithHooks(w.env, w.target(), async () => 'done')).window).toBeNull();
    expect(await w.records.hooks.windows({ jobId: w.job.id })).toEqual([]);
  });

  it('the post hook runs after a failing work and is told why; the work error is what is thrown', async () => {
    const w = await world({ preBackup: command('freeze'), postBackup: command('thaw') });
    const err = await runWithHooks(w.env, w.target(), async () => {
      throw new CairnError('no-data', 'volume data is gone');
    }).catch((e: CairnError) => e);
    expect(err).toMatchObject({ code: 'no-data' });
    const post = journalLines().find((l) => l.tag === 'thaw')!.event;
    expect(post.outcome).toMatchObject({ status: 'failed', error: 'volume data is gone' });
  });

  it('a pre hook with onError fail exiting 3 fails with the hook, the exit code and the output; the work never runs; post still runs', async () => {
    const w = await world({ preBackup: command('exit-3'), postBackup: command('thaw') });
    let worked = false;
    const err = (await runWithHooks(w.env, w.target(), async () => {
      worked = true;
    }).catch((e) => e)) as CairnError;
    expect(worked).toBe(false);
    expect(err.code).toBe('hook-failed');
    expect(err.message).toContain('preBackup hook (command exit-3) failed: exit code 3');
    expect(err.message).toContain('checkpoint refused: database is in recovery');
    const post = journalLines().find((l) => l.tag === 'thaw')!.event;
    expect(post.outcome).toMatchObject({ status: 'failed', preHook: { status: 'failed', exitCode: 3 } });
    expect((await w.summary()).windows[0]).toMatchObject({ pre: { status: 'failed', exitCode: 3 }, post: { status: 'succeeded' }, outcome: 'failed' });
  });

  it('a pre hook with onError continue: the work runs and the result carries a warning', async () => {
    const w = await world({ preBackup: command('exit-3', { onError: 'continue' }) });
    const hooked = await runWithHooks(w.env, w.target(), async () => 'ok');
    expect(hooked.value).toBe('ok');
    expect(hooked.warnings).toEqual([{ code: 'hook-failed', hook: 'preBackup', message: expect.stringContaining('exit code 3') }]);
  });

  it('a pre hook that times out is stopped; the post hook still runs and is told', async () => {
    const w = await world({ preBackup: command('slow', { timeoutSeconds: 1 }), postBackup: command('thaw') });
    const err = (await runWithHooks(w.env, w.target(), async () => 'never').catch((e) => e)) as CairnError;
    expect(err.message).toContain('preBackup hook (command slow) failed: timed out after 1 s');
    const post = journalLines().find((l) => l.tag === 'thaw')!.event;
    expect(post.outcome).toMatchObject({ status: 'failed', preHook: { status: 'timeout' } });
  });

  it('a cancel during the pre hook stops it; the work does not run; the post hook runs, told cancelled', async () => {
    const w = await world({ preBackup: command('slow'), postBackup: command('thaw') });
    const abort = new AbortController();
    setTimeout(() => abort.abort(new Error('cancelled by the user')), 300);
    const err = (await runWithHooks(w.env, w.target(abort.signal), async () => 'never').catch((e) => e)) as CairnError;
    expect(err.code).toBe('cancelled');
    const post = journalLines().find((l) => l.tag === 'thaw')!.event;
    expect(post.outcome).toMatchObject({ status: 'cancelled', preHook: { status: 'cancelled' } });
  });

  it('a command the node does not define fails like any hook, naming it', async () => {
    const w = await world({ preBackup: command('not-defined') });
    const err = (await runWithHooks(w.env, w.target(), async () => 'never').catch((e) => e)) as CairnError;
    expect(err.message).toContain('node n1 defines no hook command not-defined');
  });

  it('a post hook with onError fail failing after good work fails with hook-failed and hands the value to discard', async () => {
    const w = await world({ postBackup: command('exit-3') });
    const discarded: unknown[] = [];
    const target = { ...w.target(), discard: (v: never) => discarded.push(v) };
    const err = (await runWithHooks(w.env, target, async () => 'packed').catch((e) => e)) as CairnError;
    expect(err.message).toContain('postBackup hook (command exit-3) failed: exit code 3');
    expect(discarded).toEqual(['packed']);
  });

  it('thaw: a window left open runs its post hook once (claimed), told interrupted, recorded with who ran it', async () => {
    const w = await world({ preBackup: command('freeze'), postBackup: command('thaw') });
    // A run whose worker died during the work: the window stays open.
    const dying = runWithHooks(w.env, w.target(), () => new Promise(() => {}));
    void dying;
    await new Promise((resolve) => setTimeout(resolve, 300));
    const open = await w.records.hooks.windows({ nodeId: 'n1', status: ['open', 'thawing'] });
    expect(open).toHaveLength(1);
    const [first, second] = await Promise.all([thawOpenWindows(w.env, open, 'node-start'), thawOpenWindows(w.env, open, 'sweep')]);
    expect([...first, ...second].map((t) => t.post).sort()).toEqual(['succeeded', 'taken']);
    const thaws = journalLines().filter((l) => l.tag === 'thaw');
    expect(thaws).toHaveLength(1);
    expect(thaws[0]!.event).toMatchObject({ recovery: true, outcome: { status: 'interrupted' }, windowId: open[0]!.id });
    const summary = await w.summary();
    expect(summary.windows[0]).toMatchObject({ status: 'closed', outcome: 'interrupted', post: { status: 'succeeded' } });
    expect(['node-start', 'sweep']).toContain(summary.windows[0]!.thawedBy);
  });
});

describe('webhooks', () => {
  let server: http.Server;
  let url: string;
  const received: { headers: http.IncomingHttpHeaders; body: string }[] = [];
  let answer = 200;
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        received.push({ headers: req.headers, body });
        res.statusCode = answer;
        res.end(answer === 200 ? 'ok' : 'app is not ready to freeze');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hooks?token=abc`;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));
  afterEach(() => {
    received.length = 0;
    answer = 200;
  });

  it('POST the event signed with HMAC-SHA256 under the instance secret, pre and post', async () => {
    const w = await world({
      preBackup: { type: 'webhook', url, timeoutSeconds: 5, onError: 'fail' },
      postBackup: { type: 'webhook', url, timeoutSeconds: 5, onError: 'fail' },
    });
    await runWithHooks(w.env, w.target(), async () => 1);
    expect(received).toHaveLength(2);
    for (const r of received) {
      expect(verifyHookSignature('whsec_test', r.body, r.headers['x-cairn-signature'] as string)).toBe(true);
      expect(verifyHookSignature('whsec_other', r.body, r.headers['x-cairn-signature'] as string)).toBe(false);
      expect(r.headers['content-type']).toBe('application/json');
    }
    expect(received.map((r) => r.headers['x-cairn-event'])).toEqual(['pre-backup', 'post-backup']);
    expect(JSON.parse(received[1]!.body)).toMatchObject({ outcome: { status: 'succeeded' } });
    // The record names the webhook without its query string (it may hold a token).
    expect((await w.summary()).windows[0]!.pre!.target).toBe(url.replace('?token=abc', ''));
  });

  it('a non-2xx answer fails the pre hook with the HTTP status and the response', async () => {
    const w = await world({ preBackup: { type: 'webhook', url, timeoutSeconds: 5, onError: 'fail' } });
    answer = 503;
    const err = (await runWithHooks(w.env, w.target(), async () => 1).catch((e) => e)) as CairnError;
    expect(err.message).toContain('failed: HTTP 503');
    expect(err.message).toContain('app is not ready to freeze');
    expect(err.message).not.toContain('token=abc');
  });
});
