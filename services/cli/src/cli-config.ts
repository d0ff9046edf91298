import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from './api-client.ts';

/** Where `cairn` finds the gateway when nothing says otherwise: the all-in-one's address (`npm start`). */
export const DEFAULT_URL = 'http://127.0.0.1:8080';

export interface ConfigFile {
  url?: string;
  token?: string;
}

/** Where a setting came from, for `cairn config` and error messages (never the token itself). */
export type Source = 'flag' | 'env' | 'config file' | 'all-in-one token file' | 'default';

export interface ResolvedConfig {
  url: string;
  urlSource: Source;
  token: string | null;
  tokenSource: Source | null;
  configPath: string;
}

/** `$XDG_CONFIG_HOME/cairn/config.json`, or `~/.config/cairn/config.json`. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(os.homedir(), '.config');
  return path.join(base, 'cairn', 'config.json');
}

export function readConfigFile(file: string): ConfigFile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    const parsed = JSON.parse(text) as ConfigFile;
    return {
      ...(typeof parsed.url === 'string' ? { url: parsed.url } : {}),
      ...(typeof parsed.token === 'string' ? { token: parsed.token } : {}),
    };
  } catch {
    throw new UsageError(`${file} is not valid JSON: fix it or run cairn login again`);
  }
}

/** Writes the file readable by its owner only (it holds a token); the directory is created when missing. */
export function writeConfigFile(file: string, config: ConfigFile): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  // A file left by an older write may have looser bits: rename replaces it with the 0600 one.
  fs.renameSync(tmp, file);
}

/** Throws with the reason when `url` is not an http(s) URL. */
export function checkUrl(url: string, from: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`${from}: ${url} is not a URL (e.g. http://127.0.0.1:8080)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`${from}: ${url} must start with http:// or https://`);
  return url;
}

/**
 * URL and token, each from the first that has it: flags, then CAIRN_URL / CAIRN_TOKEN, then the
 * config file of `cairn login`; then the default URL and the all-in-one's token file
 * (`$CAIRN_DATA_DIR/admin-token`, `.cairn/admin-token` in the current directory).
 */
export function resolveConfig(flags: { url?: string; token?: string }, env: NodeJS.ProcessEnv = process.env): ResolvedConfig {
  const file = configPath(env);
  const saved = readConfigFile(file);
  let url: string;
  let urlSource: Source;
  if (flags.url) [url, urlSource] = [checkUrl(flags.url, '--url'), 'flag'];
  else if (env.CAIRN_URL) [url, urlSource] = [checkUrl(env.CAIRN_URL, 'CAIRN_URL'), 'env'];
  else if (saved.url) [url, urlSource] = [checkUrl(saved.url, file), 'config file'];
  else [url, urlSource] = [DEFAULT_URL, 'default'];

  let token: string | null = null;
  let tokenSource: Source | null = null;
  const tokenFile = path.resolve(env.CAIRN_DATA_DIR ?? '.cairn', 'admin-token');
  if (flags.token) [token, tokenSource] = [flags.token, 'flag'];
  else if (env.CAIRN_TOKEN) [token, tokenSource] = [env.CAIRN_TOKEN, 'env'];
  else if (saved.token) [token, tokenSource] = [saved.token, 'config file'];
  else if (fs.existsSync(tokenFile)) [token, tokenSource] = [fs.readFileSync(tokenFile, 'utf8').trim(), 'all-in-one token file'];
  return { url, urlSource, token, tokenSource, configPath: file };
}
