import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { aptInstall, findBinary, isLoopback, spawnService, waitFor, type Log, type Started } from './process.ts';

export async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: withDatabase(url, 'postgres'), connectionTimeoutMillis: 2000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

export function postgresBinDir(log: Log): string | null {
  const debianDirs = () =>
    fs.existsSync('/usr/lib/postgresql')
      ? fs
          .readdirSync('/usr/lib/postgresql')
          .sort((a, b) => Number(b) - Number(a))
          .map((v) => `/usr/lib/postgresql/${v}/bin`)
      : [];
  const find = () => {
    const initdb = findBinary('initdb', debianDirs());
    return initdb ? path.dirname(fs.realpathSync(initdb)) : null;
  };
  return find() ?? (aptInstall('postgresql', log) ? find() : null);
}

/**
 * Uses the Postgres at `url` when it answers; otherwise, for a loopback URL, initialises a
 * throwaway cluster (trust auth, fsync off) in a temp dir and runs it on the URL's port.
 */
export async function ensurePostgres(url: string, log: Log): Promise<{ url: string; started?: Started }> {
  if (await answers(url)) {
    log(`postgres: using the server at ${new URL(url).host}`);
    return { url };
  }
  const u = new URL(url);
  if (!isLoopback(u.hostname)) throw new Error(`postgres: nothing answers at ${u.host} and it is not a loopback address, so no local one can stand in`);
  const bin = postgresBinDir(log);
  if (!bin) throw new Error('postgres: no server answers and no Postgres binaries were found (install the Debian package "postgresql" or start one)');
  const port = Number(u.port || 5432);
  const user = decodeURIComponent(u.username || 'postgres');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-pg-'));
  initCluster(bin, dataDir, user);
  const [cmd, args] = clusterCommand(bin, dataDir, port);
  const { child, started } = spawnService('postgres', cmd, args, path.join(dataDir, 'server.log'));
  await waitFor(`postgres on port ${port}`, () => answers(url), 30_000, child);
  log(`postgres: started a throwaway server on 127.0.0.1:${port} (data ${dataDir})`);
  return {
    url,
    started: {
      name: 'postgres',
      async stop() {
        await started.stop();
        fs.rmSync(dataDir, { recursive: true, force: true });
      },
    },
  };
}

/** initdb as root runs as the `postgres` system user: commands are wrapped then. */
function asPostgresUser(cmd: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

/** A throwaway cluster in `dataDir` (trust auth, superuser `user`). */
export function initCluster(bin: string, dataDir: string, user: string): void {
  if (process.getuid?.() === 0) spawnSync('chown', ['postgres:', dataDir]);
  const [initCmd, initArgs] = asPostgresUser(path.join(bin, 'initdb'), ['-D', dataDir, '-U', user, '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const init = spawnSync(initCmd, initArgs, { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`postgres: initdb failed: ${init.stderr || init.stdout}`);
}

/** The command that runs the cluster in `dataDir` on 127.0.0.1:`port` (durability off: throwaway data). */
export function clusterCommand(bin: string, dataDir: string, port: number): [string, string[]] {
  return asPostgresUser(path.join(bin, 'postgres'), [
    '-D',
    dataDir,
    '-p',
    String(port),
    '-k',
    dataDir,
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'fsync=off',
    '-c',
    'synchronous_commit=off',
    '-c',
    'full_page_writes=off',
    '-c',
    'max_connections=300',
  ]);
}

export async function createDatabase(url: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: withDatabase(url, 'postgres') });
  await client.connect();
  try {
    const exists = await client.query('select 1 from pg_database where datname = $1', [database]);
    if (exists.rowCount === 0) await client.query(`create database "${database.replace(/"/g, '""')}"`);
  } finally {
    await client.end();
  }
}

export async function dropDatabase(url: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: withDatabase(url, 'postgres') });
  await client.connect();
  try {
    await client.query(`drop database if exists "${database.replace(/"/g, '""')}" with (force)`);
  } finally {
    await client.end();
  }
}

/** Applies the committed migrations (`prisma migrate deploy`, offline through prisma.config.ts). */
export function migrate(url: string): void {
  const prisma = path.resolve('node_modules/.bin/prisma');
  const r = spawnSync(prisma, ['migrate', 'deploy'], { env: { ...process.env, DATABASE_URL: url }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`prisma migrate deploy failed:\n${r.stdout}\n${r.stderr}`);
}
