/**
 * `worker-rss` scenario of `npm run bench` (issue 17): the RSS of a node worker process started the
 * default way while it runs two backups at once (WORKER_CONCURRENCY's default of 2), one of the
 * small data set (100k files) and one of the large one (2 GiB), posted together through the REST
 * API. Postgres/Redis/s3rver are found or started as `npm start` does (own database, bucket and
 * queue prefix); the gateway runs in this process; the node worker is a process of its own,
 * started each way in turn:
 *  - `npm run worker -- --node <id>` (scripts/built.mjs's build of the sources, MALLOC_* from package.json);
 *  - `node dist/worker.js --node <id>` with the image's MALLOC_* settings, as the image runs it
 *    (`node scripts/build.mjs --skip-ui` first, into dist/).
 * The worker's /proc/<pid>/status is sampled every 50 ms (VmRSS; VmHWM, the kernel's exact peak,
 * at the end); reported: idle RSS, peak RSS against the 256 MiB target, the sampled peak's
 * /proc smaps_rollup split (anonymous vs file-backed) and when it came, the median of the samples
 * while both backups ran (the level the peak rises from), the worker's CPU seconds and each
 * backup's time (job startedAt to finishedAt) and the wall time of the pair.
 *
 * Environment: CAIRN_BENCH_RSS_MODES (npm-run-worker,compiled), CAIRN_BENCH_RSS_REPS (1),
 * CAIRN_BENCH_RSS_ENV (extra worker settings, e.g. "S3_UPLOAD_QUEUE_SIZE=2 S3_PART_SIZE=8MiB"),
 * CAIRN_BENCH_RSS_DIR (the S3 server's data directory's parent; the system's temporary directory),
 * CAIRN_BENCH_RSS_AFTER_S (also the RSS this many seconds after both backups ended; 0, not measured).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig, S3ObjectStore } from '../services/core/src/index.ts';
import { createRuntime } from '../services/core/src/runtime.ts';
import { startGateway } from '../services/gateway/src/main.ts';
import { startLocalStack } from '../scripts/local-stack/index.ts';
import { freePort } from '../scripts/local-stack/process.ts';
import { type Api, call, waitForJob, waitForNode } from './cairn-api.ts';
import type { DataSet } from './datasets.ts';
import { loadAverage, warm } from './measure.ts';
import { findDescendant, processCpu } from './process-cpu.ts';

export const WORKER_RSS_SCENARIOS = ['worker-rss'];
const TARGET_MIB = 256;
const NODE_ID = 'bench-rss-node';
const REPO = resolve(import.meta.dirname, '..');

type Mode = 'npm-run-worker' | 'compiled';

export interface WorkerRssRun {
  mode: Mode;
  idleMiB: number;
  /** VmHWM at the end: the kernel's peak of the whole run. */
  peakMiB: number;
  /**
   * The largest VmRSS sample, when it was taken (seconds after the POSTs), its smaps_rollup split
   * (MiB), and the median of the samples taken while both backups ran (the level the peak rises from).
   */
  sampled: {
    rss: number;
    at: number;
    anon: number;
    file: number;
    threads: number;
    bothMedian: number;
    main?: { rss: number; heap: number; external: number };
  };
  cpuSeconds: number;
  /** Job run times (startedAt to finishedAt) and the wall time from the POSTs to both ended. */
  smallSeconds: number;
  largeSeconds: number;
  wallSeconds: number;
  load: string;
  /** RSS this long after both backups ended (CAIRN_BENCH_RSS_AFTER_S). */
  after?: { seconds: number; rss: number };
}

/** Fields of /proc/<pid>/status and smaps_rollup, in MiB (kB fields) or as numbers. */
function procFields(pid: number, file: 'status' | 'smaps_rollup'): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of readFileSync(`/proc/${pid}/${file}`, 'utf8').matchAll(/^(\w+):\s+(\d+)( kB)?$/gm)) out[m[1]!] = m[3] ? Number(m[2]) / 1024 : Number(m[2]);
  return out;
}

/**
 * The compiled worker: `npm run build` without the UI, into the repository's dist/ as in the image
 * (its bundles resolve npm packages from node_modules beside it). Built once per benchmark run.
 */
let built = false;
function buildWorker(): string {
  if (!built) execFileSync(process.execPath, ['scripts/build.mjs', '--skip-ui'], { cwd: REPO, stdio: 'ignore' });
  built = true;
  return join(REPO, 'dist', 'worker.js');
}

/** The memory settings the image sets (infra/Dockerfile's `ENV MALLOC_*=…` and NODE_OPTIONS lines): the compiled worker runs with them. */
function imageMemoryEnv(): Record<string, string> {
  const dockerfile = readFileSync(join(REPO, 'infra', 'Dockerfile'), 'utf8');
  return Object.fromEntries([...dockerfile.matchAll(/^ENV (MALLOC_\w+|NODE_OPTIONS)=(\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
}

interface StartedWorker {
  child: ChildProcess;
  pid: number;
  stop(): Promise<void>;
}

async function startWorker(mode: Mode, env: Record<string, string | undefined>): Promise<StartedWorker> {
  const args = ['--node', NODE_ID];
  const child =
    mode === 'npm-run-worker'
      ? spawn('npm', ['run', '--silent', 'worker', '--', ...args], { cwd: REPO, env, stdio: ['ignore', 'inherit', 'inherit'] })
      : spawn(process.execPath, [buildWorker(), ...args], { cwd: REPO, env: { ...imageMemoryEnv(), ...env }, stdio: 'inherit' });
  // Both run a compiled worker.js: npm run worker's from .cairn/build/, once its build step has exec'd node on it.
  const marker = 'worker.js';
  let pid: number | undefined;
  for (let i = 0; i < 200 && pid === undefined; i++) {
    pid = findDescendant(child.pid!, marker);
    if (pid === undefined) await new Promise((r) => setTimeout(r, 50));
  }
  if (pid === undefined) throw new Error(`no node worker process found under ${mode}`);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    pid,
    stop: async () => {
      if (child.exitCode === null) process.kill(pid!, 'SIGTERM');
      await exited;
    },
  };
}

/** The main thread's V8 heap and external memory (ArrayBuffers, Buffers) from the worker's /metrics (MiB). */
async function mainThreadMemory(metricsUrl: string): Promise<{ rss: number; heap: number; external: number } | undefined> {
  try {
    const text = await (await fetch(metricsUrl)).text();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? Number.NaN) / 1024 ** 2;
    return { rss: value('process_resident_memory_bytes'), heap: value('nodejs_heap_size_total_bytes'), external: value('nodejs_external_memory_bytes') };
  } catch {
    return undefined;
  }
}

/**
 * Samples a process's RSS until stopped: the largest sample with its smaps_rollup split, the
 * median of the samples until bothUntil() was called (both backups running), and the main
 * thread's share (scraped once a second) at the largest RSS among the scrapes.
 */
function sampleRss(pid: number, metricsUrl: string): { bothEnded(): void; stop(): WorkerRssRun['sampled'] } {
  const t0 = performance.now();
  let best = { rss: 0, at: 0, anon: 0, file: 0, threads: 0 };
  let main: WorkerRssRun['sampled']['main'];
  const both: number[] = [];
  let bothRunning = true;
  const scraper = setInterval(async () => {
    const m = await mainThreadMemory(metricsUrl);
    if (m && m.rss > (main?.rss ?? 0)) main = m;
  }, 1000);
  const timer = setInterval(() => {
    try {
      const status = procFields(pid, 'status');
      if (bothRunning) both.push(status.VmRSS ?? 0);
      if ((status.VmRSS ?? 0) <= best.rss) return;
      const rollup = procFields(pid, 'smaps_rollup');
      best = {
        rss: status.VmRSS!,
        at: (performance.now() - t0) / 1000,
        anon: rollup.Anonymous ?? 0,
        file: (rollup.Rss ?? 0) - (rollup.Anonymous ?? 0),
        threads: status.Threads ?? 0,
      };
    } catch {
      // exited
    }
  }, 50);
  return {
    bothEnded: () => {
      bothRunning = false;
    },
    stop: () => {
      clearInterval(timer);
      clearInterval(scraper);
      const sorted = both.sort((a, b) => a - b);
      return { ...best, bothMedian: sorted[Math.floor(sorted.length / 2)] ?? 0, ...(main ? { main } : {}) };
    },
  };
}

interface Context {
  api: Api;
  store: S3ObjectStore;
  workerEnv: Record<string, string | undefined>;
  small: { set: DataSet; instance: string };
  large: { set: DataSet; instance: string };
}

async function runOnce(mode: Mode, ctx: Context): Promise<WorkerRssRun> {
  const worker = await startWorker(mode, ctx.workerEnv);
  try {
    await waitForNode(ctx.api, NODE_ID);
    await new Promise((r) => setTimeout(r, 2000)); // settled after startup
    const idleMiB = procFields(worker.pid, 'status').VmRSS!;
    warm(ctx.small.set.dir);
    warm(ctx.large.set.dir);
    const sampler = sampleRss(worker.pid, `http://127.0.0.1:${ctx.workerEnv.WORKER_METRICS_PORT}/metrics`);
    const cpu0 = processCpu(worker.pid);
    const t = performance.now();
    const [small, large] = await Promise.all(
      [ctx.small.instance, ctx.large.instance].map((id) => call(ctx.api, 'POST', `/v1/instances/${id}/backups`, { kind: 'full' })),
    );
    // The first to end ends the time both ran.
    const [smallRun, largeRun] = await Promise.all([small!, large!].map((b) => waitForJob(ctx.api, b.job.id, t).finally(() => sampler.bothEnded())));
    const wallSeconds = (performance.now() - t) / 1000;
    const sampled = sampler.stop();
    // CAIRN_BENCH_RSS_AFTER_S: how much the worker gives back once quiet (idle-memory.ts).
    const afterSeconds = Number(process.env.CAIRN_BENCH_RSS_AFTER_S ?? 0);
    let afterMiB: number | undefined;
    if (afterSeconds > 0) {
      await new Promise((r) => setTimeout(r, afterSeconds * 1000));
      afterMiB = procFields(worker.pid, 'status').VmRSS!;
    }
    const run: WorkerRssRun = {
      mode,
      idleMiB,
      peakMiB: procFields(worker.pid, 'status').VmHWM!,
      sampled,
      cpuSeconds: processCpu(worker.pid) - cpu0,
      smallSeconds: smallRun!.ran,
      largeSeconds: largeRun!.ran,
      wallSeconds,
      load: loadAverage(),
      ...(afterMiB !== undefined ? { after: { seconds: afterSeconds, rss: afterMiB } } : {}),
    };
    // The archives are not needed: keep the scratch S3 directory small.
    for (const b of [small!, large!]) {
      const backup = await call(ctx.api, 'GET', `/v1/backups/${b.backup.id}`);
      await ctx.store.deleteMany([backup.storageKey, backup.indexKey]);
    }
    return run;
  } finally {
    await worker.stop();
  }
}

/** Extra worker settings from CAIRN_BENCH_RSS_ENV ("NAME=value NAME=value"). */
function extraEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (process.env.CAIRN_BENCH_RSS_ENV ?? '').split(/\s+/).filter(Boolean)) {
    const i = pair.indexOf('=');
    out[pair.slice(0, i)] = pair.slice(i + 1);
  }
  return out;
}

/** Runs the scenario unless CAIRN_BENCH_ONLY leaves it out. */
export async function runWorkerRss(o: { only?: string[]; small: DataSet; large: DataSet; root: string }): Promise<WorkerRssRun[] | undefined> {
  if (o.only && !o.only.includes('worker-rss')) return undefined;
  const modes = (process.env.CAIRN_BENCH_RSS_MODES ?? 'npm-run-worker,compiled').split(',').map((m) => m.trim()) as Mode[];
  const reps = Number(process.env.CAIRN_BENCH_RSS_REPS ?? 1);
  const runId = `${Date.now().toString(36)}${process.pid}`;
  // Not under the archive bench's scratch directory: another bench run removes that when it ends.
  // The S3 server's data (~2 GB per run, removed after each) goes to CAIRN_BENCH_RSS_DIR, e.g. /dev/shm.
  const work = mkdtempSync(join(process.env.CAIRN_BENCH_RSS_DIR ?? tmpdir(), 'cairn-bench-rss-'));
  const bucket = `cairn-bench-rss-${runId}`;
  const stack = await startLocalStack({
    env: { ...process.env, S3_ENDPOINT: '' },
    database: `cairn_bench_rss_${runId}`,
    dropDatabaseOnStop: true,
    bucket,
    s3Directory: join(work, 's3'),
    log: (m) => console.log(`  [stack] ${m}`),
  });
  const token = `cairn_${randomBytes(24).toString('base64url')}`;
  const common = { ...stack.env, VOLUME_ROOTS: o.root, QUEUE_PREFIX: `{cairn-bench-rss-${runId}}`, LOG_LEVEL: 'warn' };
  const runtime = createRuntime(
    loadConfig({ ...process.env, ...common, PORT: '0', HOST: '127.0.0.1', CAIRN_ADMIN_TOKEN: token, MANUAL_BACKUP_LIMIT: '1000' }),
    {
      name: 'bench-gateway',
    },
  );
  const gateway = await startGateway(runtime);
  const store = new S3ObjectStore({
    endpoint: stack.env.S3_ENDPOINT,
    region: 'us-east-1',
    bucket,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    forcePathStyle: true,
    checksumMode: 'WHEN_REQUIRED',
  });
  const runs: WorkerRssRun[] = [];
  try {
    const api = { url: gateway.url, token };
    const instance = async (tag: string, set: DataSet) =>
      (
        await call(api, 'POST', '/v1/instances', {
          name: `rss-${tag}-${runId}`,
          nodeId: NODE_ID,
          tenant: 'bench',
          volumes: [{ name: 'data', hostPath: set.dir }],
        })
      ).id;
    const workerEnv = { ...process.env, ...common, HOST: '127.0.0.1', WORKER_METRICS_PORT: String(await freePort()), ...extraEnv() };
    let ctx: Context | undefined;
    for (let rep = 0; rep < reps; rep++)
      for (const mode of modes) {
        if (!ctx) {
          // Instances name their node: it must have registered once before they can be made.
          const first = await startWorker(mode, workerEnv);
          await waitForNode(api, NODE_ID).finally(() => first.stop());
          ctx = {
            api,
            store,
            workerEnv,
            small: { set: o.small, instance: await instance('small', o.small) },
            large: { set: o.large, instance: await instance('large', o.large) },
          };
        }
        const run = await runOnce(mode, ctx);
        runs.push(run);
        console.log(`  worker-rss ${describe(run)}`);
      }
    return runs;
  } finally {
    await store.close();
    await gateway.close();
    await runtime.close();
    await stack.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

function describe(r: WorkerRssRun): string {
  const s = r.sampled;
  return (
    `${r.mode}: peak ${r.peakMiB.toFixed(0)} MiB (target ${TARGET_MIB}: ${r.peakMiB <= TARGET_MIB ? 'met' : 'NOT met'}), idle ${r.idleMiB.toFixed(0)} MiB; ` +
    `largest sample ${s.rss.toFixed(0)} MiB at ${s.at.toFixed(1)} s = ${s.anon.toFixed(0)} anon + ${s.file.toFixed(0)} file, ${s.threads} threads` +
    (s.main ? ` (main thread at ${s.main.rss.toFixed(0)} MiB RSS: V8 heap ${s.main.heap.toFixed(0)}, external ${s.main.external.toFixed(0)} MiB)` : '') +
    `; median while both ran ${s.bothMedian.toFixed(0)} MiB; ` +
    `backups small ${r.smallSeconds.toFixed(1)} s, large ${r.largeSeconds.toFixed(1)} s, both ${r.wallSeconds.toFixed(1)} s, ` +
    `worker CPU ${r.cpuSeconds.toFixed(1)} s; load ${r.load}` +
    (r.after ? `; ${r.after.rss.toFixed(0)} MiB ${r.after.seconds} s after` : '')
  );
}

export function reportWorkerRss(runs: WorkerRssRun[]): void {
  for (const r of runs) console.log(describe(r));
}
