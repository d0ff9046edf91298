// `node scripts/built.mjs <entry>`: prints the path of <entry>.js compiled from the current sources
// (scripts/build.mjs without the UI), building it first when the sources changed. `npm run worker`
// runs the node worker this way rather than through tsx, whose loader (a module-hooks thread of
// its own, and the transpiled sources) cost a node worker ~25–40 MiB of RSS for nothing a
// long-running process needs.
//
// Builds are kept by a digest of their inputs under .cairn/build/<digest>/, written to a
// directory of their own and renamed into place, so workers started together never see a half
// build; a running worker keeps loading its archive-thread code from its build, so builds are
// removed only when unused for a week and not among the newest three.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const entry = process.argv[2];
if (!entry || !['worker', 'gateway', 'cli'].includes(entry)) {
  console.error('usage: node scripts/built.mjs worker|gateway|cli');
  process.exit(2);
}
const builds = join(root, '.cairn', 'build');
const WEEK_MS = 7 * 24 * 3600_000;

/** Every file the bundles are made from, by path, size and modification time. */
function digestOfSources() {
  const hash = createHash('sha256');
  const walk = (dir) => {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const st = statSync(path);
      if (st.isDirectory()) walk(path);
      else hash.update(`${path}\0${st.size}\0${st.mtimeMs}\n`);
    }
  };
  for (const s of ['core', 'worker', 'gateway', 'cli']) walk(join(root, 'services', s, 'src'));
  for (const f of ['scripts/build.mjs', 'package.json']) hash.update(`${f}\0${statSync(join(root, f)).mtimeMs}\n`);
  return hash.digest('hex').slice(0, 16);
}

function prune(keep) {
  const dirs = readdirSync(builds)
    .map((name) => ({ name, mtime: statSync(join(builds, name)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const [i, d] of dirs.entries()) {
    const stale = d.name.startsWith('tmp-') ? Date.now() - d.mtime > 3600_000 : i >= 3 && Date.now() - d.mtime > WEEK_MS;
    if (d.name !== keep && stale) rmSync(join(builds, d.name), { recursive: true, force: true });
  }
}

const digest = digestOfSources();
const dir = join(builds, digest);
if (!existsSync(join(dir, `${entry}.js`))) {
  mkdirSync(builds, { recursive: true });
  const tmp = join(builds, `tmp-${process.pid}-${Date.now()}`);
  // Paths inside the bundles are computed for the directory they are renamed to (--as).
  const args = [join(root, 'scripts', 'build.mjs'), '--skip-ui', '--outdir', tmp, '--as', dir];
  const built = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  if (built.status !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    console.error(`cairn: building ${entry} failed`);
    process.exit(1);
  }
  try {
    renameSync(tmp, dir);
  } catch {
    // Another start built the same sources meanwhile: use that one.
    rmSync(tmp, { recursive: true, force: true });
  }
} else {
  const now = new Date();
  utimesSync(dir, now, now);
}
prune(digest);
process.stdout.write(join(dir, `${entry}.js`));
