/**
 * How worker threads load `archive.worker.ts`. Node 20 cannot run TypeScript, and registering
 * tsx's loader in each thread costs ~25 MB RSS and ~200 ms per worker here. So the worker code
 * is bundled once per process with esbuild (the transformer tsx itself uses, always installed
 * with it) into one CommonJS script run with `eval: true`: ~5 MB and ~30 ms per worker. Native
 * addons and the S3 SDK are required from node_modules by absolute path instead of bundled. If
 * esbuild cannot be loaded, workers fall back to `worker-entry.mjs`, which registers tsx.
 * Compiled by `npm run build`, the worker code is already a file beside the bundles: that is used.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

type WorkerSpec = { kind: 'eval'; code: string } | { kind: 'url'; url: URL; workerData?: { entry: string } };

/**
 * Set only in the build output (scripts/build.mjs, esbuild `define`): where the compiled archive
 * worker is, relative to this file's source location. Undeclared (typeof 'undefined') under tsx.
 */
declare const CAIRN_BUILT_ARCHIVE_WORKER: string | undefined;

interface EsbuildLike {
  build(options: Record<string, unknown>): Promise<{ outputFiles?: { text: string }[] }>;
}

let spec: Promise<WorkerSpec> | undefined;

export function workerSpec(): Promise<WorkerSpec> {
  if (typeof CAIRN_BUILT_ARCHIVE_WORKER === 'string') {
    spec ??= Promise.resolve({ kind: 'url', url: new URL(CAIRN_BUILT_ARCHIVE_WORKER, import.meta.url) });
    return spec;
  }
  spec ??= bundle().catch(
    (): WorkerSpec => ({
      kind: 'url',
      url: new URL('./worker-entry.mjs', import.meta.url),
      workerData: { entry: new URL('./archive.worker.ts', import.meta.url).href },
    }),
  );
  return spec;
}

async function loadEsbuild(): Promise<EsbuildLike> {
  const req = createRequire(import.meta.url);
  let path: string;
  try {
    path = req.resolve('esbuild');
  } catch {
    // Not hoisted: take the copy tsx depends on.
    path = createRequire(req.resolve('tsx/package.json')).resolve('esbuild');
  }
  return (await import(path)) as EsbuildLike;
}

async function bundle(): Promise<WorkerSpec> {
  const esbuild = await loadEsbuild();
  const req = createRequire(import.meta.url);
  // Native addons cannot be bundled: require them by absolute path from the eval'd script.
  const result = await esbuild.build({
    entryPoints: [fileURLToPath(new URL('./archive.worker.ts', import.meta.url))],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    write: false,
    logLevel: 'silent',
    keepNames: true,
    plugins: [
      {
        name: 'cairn-native-externals',
        setup(b: { onResolve: (o: { filter: RegExp }, f: (a: { path: string }) => { path: string; external: boolean }) => void }) {
          b.onResolve({ filter: /^zstd-napi(\/.*)?$/ }, (a) => ({ path: req.resolve(a.path), external: true }));
          // Not inlined either: only the store thread loads the S3 SDK (frame-reader-job.ts, upload-job.ts), and
          // inlined, every thread would parse and hold its few MB of source.
          b.onResolve({ filter: /^@aws-sdk\// }, (a) => ({ path: req.resolve(a.path), external: true }));
        },
      },
    ],
  });
  const code = result.outputFiles?.[0]?.text;
  if (!code) throw new Error('esbuild produced no worker bundle');
  return { kind: 'eval', code };
}
