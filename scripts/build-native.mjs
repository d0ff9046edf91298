// Builds the optional native helper (services/core/native) with the node-gyp that ships with
// npm, run by `npm install`/`npm ci` (postinstall). It never fails the install: without a
// compiler the archive engine uses its plain-Node code paths (same archives, slower on many
// small files; restores set mtimes to the microsecond, not the nanosecond), and this says so.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'services', 'core', 'native');

function nodeGyp() {
  // npm tells its lifecycle scripts where its node-gyp is; otherwise look beside npm itself.
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return fromNpm;
  const npmCli = process.env.npm_execpath;
  const candidates = [
    npmCli && join(dirname(npmCli), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return candidates.find((c) => c && existsSync(c));
}

function nodeDir() {
  // Headers of the running Node, so nothing is downloaded (installs must work offline).
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = resolve(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

const FALLBACK = 'slower on many small files, restored mtimes to the microsecond';
const gyp = nodeGyp();
const nodedir = nodeDir();
if (!gyp || !nodedir) {
  console.warn(`cairn: native helper not built (${!gyp ? 'node-gyp not found' : 'Node headers not found'}); using the plain-Node code paths (${FALLBACK})`);
  process.exit(0);
}
const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`], { cwd: dir, encoding: 'utf8' });
if (r.status !== 0) {
  console.warn(`cairn: native helper not built (node-gyp exited ${r.status}); using the plain-Node code paths (${FALLBACK})`);
  console.warn((r.stderr || r.stdout || '').split('\n').slice(-15).join('\n'));
  process.exit(0);
}
console.log('cairn: native helper built (services/core/native)');
