import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The installed `cairn` command: the bin of @cairn/cli, run as a user runs it (no npm, no tsx flags). */
export const CAIRN_BIN = path.resolve('services/cli/bin/cairn.mjs');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Added to (or, as undefined, removed from) the environment of the call. */
  env?: Record<string, string | undefined>;
  cwd?: string;
}

/**
 * The environment every CLI call of the tests starts from: the test process's own without any
 * CAIRN_URL/CAIRN_TOKEN/CAIRN_DATA_DIR it may have, and a config directory of the test run's own, so a
 * developer's `cairn login` is never read or written.
 */
const configHome = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-cli-config-'));
function baseEnv(extra: CliOptions['env'] = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    XDG_CONFIG_HOME: configHome,
    CAIRN_URL: undefined,
    CAIRN_TOKEN: undefined,
    CAIRN_DATA_DIR: undefined,
    ...extra,
  };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  return env;
}

/** Runs `cairn args...` to its end; resolves with its exit code and output instead of throwing. */
export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CAIRN_BIN, ...args], { env: baseEnv(opts.env), cwd: opts.cwd, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}

/** Starts `cairn args...` without waiting (a test that signals it); stdout/stderr collected as they come. */
export function spawnCli(
  args: string[],
  opts: CliOptions = {},
): { child: ChildProcess; output: { stdout: string; stderr: string }; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [CAIRN_BIN, ...args], { env: baseEnv(opts.env), cwd: opts.cwd });
  const output = { stdout: '', stderr: '' };
  child.stdout!.on('data', (d: Buffer) => {
    output.stdout += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    output.stderr += d.toString();
  });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output, exit };
}

/** `cli(...args)` against one gateway, as its admin: what most CLI tests need. */
export function cliFor(target: { url: string; adminToken: string }, opts: CliOptions = {}): (...args: string[]) => Promise<CliResult> {
  return (...args) => runCli(args, { ...opts, env: { CAIRN_URL: target.url, CAIRN_TOKEN: target.adminToken, ...opts.env } });
}

/** A table's lines split into cells (cells are separated by two spaces or more: a size is "1.5 KiB"). */
export const rowsOf = (stdout: string) =>
  stdout
    .trim()
    .split('\n')
    .map((l) => l.split(/\s{2,}/));

/**
 * Per-test time of the CLI files: each call is a fresh Node process that loads TypeScript through
 * tsx (seconds each on a loaded 2-core machine), and a test makes a dozen or more.
 */
export const CLI_TEST_TIMEOUT = 300_000;
