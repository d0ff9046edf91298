import { spawn } from 'node:child_process';
import type { HookCommandDef } from './hook-commands.ts';
import { OutputTail } from './output-tail.ts';

/** How a hook's run ended (a command's or a webhook's). */
export interface HookRunResult {
  status: 'succeeded' | 'failed' | 'timeout' | 'cancelled';
  exitCode: number | null;
  signal: string | null;
  httpStatus: number | null;
  outputTail: string;
  error: string | null;
  durationMs: number;
}

export interface CommandRunOptions {
  /** Added to the command's own environment (CAIRN_HOOK_*). */
  env: Record<string, string>;
  /** Written to the command's standard input (the event, as JSON). */
  stdin: string;
  timeoutMs: number;
  /** Aborting it (the job was cancelled) stops the command like a timeout does. */
  signal?: AbortSignal;
  /** Between SIGTERM and SIGKILL of the process group. */
  killGraceMs?: number;
}

/** What a hook command inherits from the worker: only this, never its credentials (DATABASE_URL, S3 keys...). */
const INHERITED_ENV = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'USER', 'LOGNAME'];
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** How long the output pipes may stay open after the command exited (a background child holding them). */
const PIPE_DRAIN_MS = 200;

/**
 * Runs one admin-defined hook command: argv as given (no shell), in a process group of its own
 * (detached: setsid), with the admin's env and cwd, the event on stdin, stdout and stderr
 * collected into one tail. A timeout (or a cancel) sends SIGTERM to the whole group, then SIGKILL
 * after `killGraceMs`, so nothing the command started outlives it. Never rejects.
 */
export function runCommandHook(def: HookCommandDef, opts: CommandRunOptions): Promise<HookRunResult> {
  const started = Date.now();
  const tail = new OutputTail();
  const env: Record<string, string> = { PATH: DEFAULT_PATH };
  for (const k of INHERITED_ENV) if (process.env[k] !== undefined) env[k] = process.env[k]!;
  Object.assign(env, def.env ?? {}, opts.env);

  return new Promise((resolve) => {
    let settled = false;
    let stopped: 'timeout' | 'cancelled' | null = null;
    let killTimer: NodeJS.Timeout | undefined;
    let drainTimer: NodeJS.Timeout | undefined;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;

    const child = spawn(def.argv[0]!, def.argv.slice(1), {
      cwd: def.cwd ?? '/',
      env,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
      shell: false,
      windowsHide: true,
    });

    const killGroup = (sig: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        // ESRCH: the whole group is gone already.
      }
    };
    const stop = (why: 'timeout' | 'cancelled') => {
      if (stopped || settled) return;
      stopped = why;
      killGroup('SIGTERM');
      // Always the whole group, even when the leader obeyed SIGTERM: its children may not have.
      killTimer = setTimeout(() => killGroup('SIGKILL'), opts.killGraceMs ?? 2000);
      killTimer.unref();
    };
    const timer = setTimeout(() => stop('timeout'), opts.timeoutMs);
    const onAbort = () => stop('cancelled');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();

    const finish = (spawnError?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(drainTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      child.stdout?.destroy();
      child.stderr?.destroy();
      if (stopped) {
        // The leader is gone; make sure the rest of its group is too before reporting.
        killGroup('SIGKILL');
        clearTimeout(killTimer);
      }
      const code = exit?.code ?? null;
      const signal = exit?.signal ?? null;
      const status: HookRunResult['status'] = stopped ?? (spawnError || code !== 0 ? 'failed' : 'succeeded');
      const error = spawnError
        ? `could not start ${def.argv[0]}: ${spawnError.message}`
        : status === 'failed' && code === null && signal
          ? `killed by ${signal}`
          : status === 'failed'
            ? `exit code ${code}`
            : null;
      resolve({ status, exitCode: code, signal, httpStatus: null, outputTail: tail.text(), error, durationMs: Date.now() - started });
    };

    child.on('error', (err) => finish(err));
    child.stdout!.on('data', (d: Buffer) => tail.push(d));
    child.stderr!.on('data', (d: Buffer) => tail.push(d));
    child.stdin!.on('error', () => {}); // a command that does not read its input
    child.stdin!.end(opts.stdin);
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      // The output may still be in the pipes; a background child holding them must not hold us.
      drainTimer = setTimeout(() => finish(), PIPE_DRAIN_MS);
    });
    child.on('close', () => finish());
  });
}
