// `npm run build`: compiles the services ahead of time into dist/ (or `--outdir DIR`), so the
// image runs plain `node` on JavaScript: one ESM bundle per entry point (gateway, worker, CLI)
// with the workspaces (@cairn/*, Prisma's generated client) inside and npm packages external
// (resolved from node_modules at run time), plus the archive worker-thread bundle (CommonJS).
// The native helper and the web UI are built by `npm install` (postinstall); `npm run build`
// builds the UI again (--strict) so a broken UI fails the build.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as esbuild from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { outdir: { type: 'string' }, as: { type: 'string' }, 'skip-ui': { type: 'boolean', default: false } } });
const outdir = resolve(root, values.outdir ?? 'dist');
// `--as DIR`: where the output will be run from once moved there (scripts/built.mjs builds aside, then renames).
const runDir = values.as ? resolve(root, values.as) : outdir;

/** Entry points: output name (without .js) → source. The Dockerfile's commands name these. */
const ENTRIES = {
  gateway: 'services/gateway/src/main.ts',
  worker: 'services/worker/src/main.ts',
  cli: 'services/cli/src/main.ts',
};
const ARCHIVE_WORKER = 'services/core/src/archive/archive.worker.ts';
const ARCHIVE_WORKER_OUT = 'archive.worker.cjs';

const posix = (p) => p.split(sep).join('/');
const entryFiles = new Set(Object.values(ENTRIES).map((src) => join(root, src)));

/**
 * Bundled modules find their files (the web UI, the native helper) relative to their own
 * import.meta.url. Inside a bundle that would be the bundle's URL, so each source file's
 * import.meta.url is rewritten to its source location, relative to the bundle: the paths keep
 * working wherever the tree is, as long as dist/ stays beside services/ (as in the image).
 */
const sourceLocation = {
  name: 'cairn-source-import-meta-url',
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      // An entry point's own import.meta.url stays the bundle's (`main()` runs when it is argv[1]);
      // its `node --import tsx` hashbang becomes plain node.
      if (entryFiles.has(args.path)) return { contents: source.replace(/^#!.*/, '#!/usr/bin/env node'), loader: 'ts' };
      if (!source.includes('import.meta.url')) return undefined;
      const rel = posix(relative(runDir, args.path));
      return { contents: source.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, import.meta.url).href`), loader: 'ts' };
    });
  },
};

/** npm packages stay external (node_modules at run time); the workspaces are compiled in. */
const packagesExternal = {
  name: 'cairn-packages-external',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith('@cairn/') || args.path.startsWith('node:')) return undefined;
      return { path: args.path, external: true };
    });
  },
};

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  keepNames: true,
  logLevel: 'warning',
  absWorkingDir: root,
};

rmSync(outdir, { recursive: true, force: true });
// Where worker-bundle.ts finds the compiled archive worker: relative to its own source location,
// like every other rewritten import.meta.url.
const workerFromSource = posix(relative(join(root, dirname(ARCHIVE_WORKER)), join(runDir, ARCHIVE_WORKER_OUT)));
await esbuild.build({
  ...common,
  entryPoints: Object.fromEntries(Object.entries(ENTRIES).map(([name, src]) => [name, join(root, src)])),
  outdir,
  format: 'esm',
  // No code splitting: every bundle sits directly in outdir, which the rewritten paths assume.
  define: { CAIRN_BUILT_ARCHIVE_WORKER: JSON.stringify(workerFromSource) },
  // ESM output has no require(); some CommonJS packages pulled into a bundle call it.
  banner: { js: "import { createRequire as __cairnCreateRequire } from 'node:module'; const require = __cairnCreateRequire(import.meta.url);" },
  plugins: [sourceLocation, packagesExternal],
});
// The worker threads' code (run by the archive engine's worker pool).
await esbuild.build({
  ...common,
  entryPoints: [join(root, ARCHIVE_WORKER)],
  outfile: join(outdir, ARCHIVE_WORKER_OUT),
  format: 'cjs',
  // The worker side never reads import.meta (it is handed absolute paths: native-reads.ts).
  logOverride: { 'empty-import-meta': 'silent' },
  plugins: [packagesExternal],
});
// dist/package.json: the bundles are ES modules whatever directory they end up in.
writeFileSync(join(outdir, 'package.json'), '{ "type": "module" }\n');
console.log(`cairn: services compiled into ${posix(relative(root, outdir)) || '.'} (${Object.keys(ENTRIES).join(', ')}, ${ARCHIVE_WORKER_OUT})`);

if (!values['skip-ui']) {
  const ui = spawnSync(process.execPath, [join(root, 'scripts', 'build-ui.mjs'), '--strict'], { stdio: 'inherit' });
  if (ui.status !== 0) process.exit(ui.status ?? 1);
}
