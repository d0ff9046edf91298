/**
 * `npm run bench:e2e` (issue 17): Cairn end to end through its REST API against restic on the same
 * S3 server (the project's fixed s3rver, started here as `npm start` starts it), same data, same
 * run. Per data set and repetition, alternating which tool goes first:
 *  - Cairn (the all-in-one of `npm start`, its own process): a full backup (POST
 *    /v1/instances/:id/backups {kind: full}) and a restore of it into a fresh directory (POST
 *    /v1/backups/:id/restore into another instance), each timed from the POST to the job's
 *    terminal state;
 *  - restic (Debian's package, installed when missing, as root): `restic backup` into a fresh
 *    repository in the same bucket (so every backup is a first one, as Cairn's full is; `init`
 *    not timed), then `restic restore latest` into a fresh directory.
 * Right after restic's restore, a `sync` is timed apart (Cairn's restore has flushed its data when
 * its job ends; restic's has not): printed after the table as restic's restore + sync, not in its ratios.
 * Both restores are compared with the source tree (paths, types, sizes, modes, every file's
 * sha256). The data set is read into the page cache before every backup, and before every backup
 * and restore `sync` writes out what the runs before left dirty (measure.ts, settle; CAIRN_BENCH_SYNC=0
 * skips it). Restored trees stay until the bench ends: on this machine's ext4 without a journal,
 * creating files in the minutes after deleting a large tree is several times slower (TOOLCHAIN.md),
 * so deleting one tool's restore would slow the other's that follows. Prints the medians and
 * the ratios restic time / Cairn time (> 1: Cairn faster; target ≥ 1.43), with the load average.
 *
 * Then, where the restore time goes (CAIRN_E2E_COSTS=0 skips it), from the last Cairn backup of
 * each set: one sequential GET of its archive object, the same bytes read as parallel range reads
 * (RESTORE_* settings), decoding alone (`zstd -dc` to /dev/null, one thread) and a restore from a
 * local copy of the object (decode + extract, no S3). And where a backup's time goes, on the same
 * data: Cairn's pack alone to a local file, and that archive uploaded alone, multipart as a backup
 * uploads it and as one PUT.
 *
 * Environment: CAIRN_BENCH_DIR (/var/tmp/cairn-bench), CAIRN_BENCH_REPS (3),
 * CAIRN_E2E_LARGE_FILES (8) × CAIRN_E2E_LARGE_MIB (64), CAIRN_E2E_SMALL_FILES (20000), i.e. by
 * default 512 MiB and 20k files; the full sizes: CAIRN_E2E_LARGE_MIB=256
 * CAIRN_E2E_SMALL_FILES=100000. CAIRN_E2E_ONLY=large|small; RESTORE_* and S3_* settings are
 * passed on to Cairn; CAIRN_E2E_NODE_ARGS (space-separated) are more node options for the
 * all-in-one (e.g. `--trace-gc-nvp`: its collections, in e2e-cairn.log).
 */
import '../scripts/quiet-sdk.ts';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { loadConfig, S3ObjectStore } from '../services/core/src/index.ts';
import { packArchive, readIndex, unpackArchive, rangeReadsOf, type RangeReader } from '../services/core/src/archive/index.ts';
import { segmentsOf } from '../services/core/src/archive/block-source.ts';
import { ParallelRangeReads, splitSegments } from '../services/core/src/archive/parallel-range-reads.ts';
import { startLocalStack } from '../scripts/local-stack/index.ts';
import { freePort } from '../scripts/local-stack/process.ts';
import { call, waitForJob as waitForJobTimes, waitForNode, type Api } from './cairn-api.ts';
import { largeDataSet, smallDataSet, type DataSet } from './datasets.ts';
import { ensureCommand, loadAverage, median, settle, warm } from './measure.ts';
import { endedChildrenCpu, findDescendant, machineBusy, startCpu, treeCpu } from './process-cpu.ts';

const ROOT = process.env.CAIRN_BENCH_DIR ?? '/var/tmp/cairn-bench';
const REPS = Number(process.env.CAIRN_BENCH_REPS ?? 3);
const ONLY = process.env.CAIRN_E2E_ONLY?.split(',').map((s) => s.trim());
const BUCKET = 'cairn-bench';
const RESTIC_PASSWORD = 'cairn-bench-restic';

/** Seconds the worker ran each timed job (startedAt to finishedAt): the rest is queueing and polling. */
const ran: number[] = [];

/** Polls the job until it ends; seconds from `started` to the poll that saw it end. */
async function waitForJob(api: Api, jobId: string, started: number): Promise<number> {
  const times = await waitForJobTimes(api, jobId, started);
  ran.push(times.ran);
  return times.seconds;
}

/** A digest of a tree: every path with its type, size and mode, and every file's sha256. */
function treeDigest(dir: string): string {
  const script =
    "{ find . -mindepth 1 -printf '%y %p %s %m\\n' | LC_ALL=C sort; " + 'find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum; } | sha256sum';
  return execFileSync('bash', ['-c', `set -o pipefail; cd '${dir}' && ${script}`], { encoding: 'utf8', maxBuffer: 1 << 20 }).split(' ')[0]!;
}

/** Starts the all-in-one (`npm start`'s scripts/start.ts) as its own process on the given stack. */
async function startCairn(env: Record<string, string>, logFile: string): Promise<{ child: ChildProcess; url: string }> {
  // CAIRN_E2E_PROFILE=<dir>: the all-in-one writes V8 CPU profiles there (its main thread, and the archive threads).
  const profile = process.env.CAIRN_E2E_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.CAIRN_E2E_PROFILE}`] : [];
  // The V8 flag `npm start` passes (package.json): the main thread's young generation at 6 MiB.
  const extra = process.env.CAIRN_E2E_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...profile, ...extra, '--max-semi-space-size=2', '--import', 'tsx', 'scripts/start.ts'], {
    env: { ...process.env, MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  // Its output goes to a log kept after the run (a failed job or a crash is explained there).
  const log = createWriteStream(logFile);
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
    log.write(d);
  });
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      log.write(`${line}\n`);
      const m = /Cairn is running \(all-in-one\): (\S+)/.exec(line);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`cairn exited with code ${code} before it was ready: ${stderr.trim()}`)));
  });
  return { child, url };
}

function restic(args: string[], env: Record<string, string>, cwd?: string): number {
  const t = performance.now();
  const r = spawnSync('restic', args, { env: { ...process.env, ...env }, cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`restic ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return (performance.now() - t) / 1000;
}

/** CPU seconds over one timed step: the tool's own, the S3 server's, and the whole machine's (both cores, the kernel's threads too). */
interface StepCpu {
  own: number;
  s3: number;
  machine: number;
}

interface Runs {
  cairnBackup: number[];
  cairnRestore: number[];
  resticBackup: number[];
  resticRestore: number[];
  /** The `sync` right after each restic restore: restic returns with the restored data still in the page cache, Cairn once it is on disk. */
  resticRestoreSync: number[];
  cpu: { cairnBackup: StepCpu[]; cairnRestore: StepCpu[]; resticBackup: StepCpu[]; resticRestore: StepCpu[] };
  lastBackup?: { id: string; storageKey: string; indexKey: string; sizeBytes: number };
}

async function benchSet(
  set: DataSet,
  tag: string,
  ctx: { api: Api; nodeId: string; work: string; resticEnv: Record<string, string>; s3: string; cpu: { cairn: () => number; s3: () => number } },
) {
  const { api, nodeId, work } = ctx;
  // Cairn's CPU: its all-in-one process tree; restic's: the tool once it exited (spawnSync waits for it).
  const meter = (own: () => number) => startCpu({ own, s3: ctx.cpu.s3, machine: machineBusy });
  const expected = treeDigest(set.dir);
  const instance = await call(api, 'POST', '/v1/instances', {
    name: `bench-${tag}-${Date.now()}`,
    nodeId,
    tenant: 'bench',
    volumes: [{ name: 'data', hostPath: set.dir }],
  });
  const runs: Runs = {
    cairnBackup: [],
    cairnRestore: [],
    resticBackup: [],
    resticRestore: [],
    resticRestoreSync: [],
    cpu: { cairnBackup: [], cairnRestore: [], resticBackup: [], resticRestore: [] },
  };

  const cairn = async (rep: number) => {
    settle();
    warm(set.dir);
    let cpu = meter(ctx.cpu.cairn);
    let t = performance.now();
    const started = await call(api, 'POST', `/v1/instances/${instance.id}/backups`, { kind: 'full' });
    runs.cairnBackup.push(await waitForJob(api, started.job.id, t));
    runs.cpu.cairnBackup.push(cpu());
    const backup = await call(api, 'GET', `/v1/backups/${started.backup.id}`);
    runs.lastBackup = { id: backup.id, storageKey: backup.storageKey, indexKey: backup.indexKey, sizeBytes: backup.sizeBytes };
    const into = join(work, 'restores', `cairn-${tag}-${rep}`);
    const target = await call(api, 'POST', '/v1/instances', {
      name: `bench-${tag}-restore-${rep}-${Date.now()}`,
      nodeId,
      tenant: 'bench',
      volumes: [{ name: 'data', hostPath: into }],
    });
    settle();
    cpu = meter(ctx.cpu.cairn);
    t = performance.now();
    const restore = await call(api, 'POST', `/v1/backups/${backup.id}/restore`, { targetInstanceId: target.id });
    runs.cairnRestore.push(await waitForJob(api, restore.job.id, t));
    runs.cpu.cairnRestore.push(cpu());
    if (treeDigest(into) !== expected) throw new Error(`Cairn's restore into ${into} differs from ${set.dir}`);
  };

  const resticRun = (rep: number) => {
    const env = { ...ctx.resticEnv, RESTIC_REPOSITORY: `s3:${ctx.s3}/${BUCKET}/restic-${tag}-${rep}-${Date.now()}` };
    restic(['init'], env);
    settle();
    warm(set.dir);
    let cpu = meter(endedChildrenCpu);
    runs.resticBackup.push(restic(['backup', '--host', 'bench', '.'], env, set.dir));
    runs.cpu.resticBackup.push(cpu());
    const into = join(work, 'restores', `restic-${tag}-${rep}`);
    settle();
    cpu = meter(endedChildrenCpu);
    runs.resticRestore.push(restic(['restore', 'latest', '--target', into], env));
    runs.cpu.resticRestore.push(cpu());
    // Not in the ratio: what it would take restic to have its restore on disk, as Cairn's is when its job ends.
    const t = performance.now();
    execFileSync('sync');
    runs.resticRestoreSync.push((performance.now() - t) / 1000);
    // restic 0.14 restores a relative backup at the target itself; an absolute one under its path.
    const restored = spawnSync('test', ['-d', join(into, set.dir)]).status === 0 ? join(into, set.dir) : into;
    if (treeDigest(restored) !== expected) throw new Error(`restic's restore into ${restored} differs from ${set.dir}`);
  };

  for (let rep = 0; rep < REPS; rep++) {
    if (rep % 2 === 0) {
      await cairn(rep);
      resticRun(rep);
    } else {
      resticRun(rep);
      await cairn(rep);
    }
    console.log(
      `  ${set.name} rep ${rep + 1}: Cairn backup ${runs.cairnBackup.at(-1)!.toFixed(2)} s (job ran ${ran.at(-2)!.toFixed(2)} s), ` +
        `restore ${runs.cairnRestore.at(-1)!.toFixed(2)} s (job ran ${ran.at(-1)!.toFixed(2)} s); ` +
        `restic backup ${runs.resticBackup.at(-1)!.toFixed(2)} s, restore ${runs.resticRestore.at(-1)!.toFixed(2)} s ` +
        `(then sync ${runs.resticRestoreSync.at(-1)!.toFixed(2)} s) (load ${loadAverage()})`,
    );
    const c = runs.cpu;
    console.log(
      `    CPU s (own + s3rver, machine busy): Cairn backup ${cpuText(c.cairnBackup.at(-1)!, runs.cairnBackup.at(-1)!)}, ` +
        `restore ${cpuText(c.cairnRestore.at(-1)!, runs.cairnRestore.at(-1)!)}; restic backup ${cpuText(c.resticBackup.at(-1)!, runs.resticBackup.at(-1)!)}, ` +
        `restore ${cpuText(c.resticRestore.at(-1)!, runs.resticRestore.at(-1)!)}`,
    );
  }
  return runs;
}

/** "12.1 + 4.0, 17.5 (91%)": own + s3rver CPU s, then the machine's busy CPU s and its share of both cores over the wall time. */
function cpuText(c: StepCpu, seconds: number): string {
  const share = (100 * c.machine) / (availableParallelism() * seconds);
  return `${c.own.toFixed(1)} + ${c.s3.toFixed(1)}, ${c.machine.toFixed(1)} (${share.toFixed(0)}%)`;
}

/**
 * Where a restore's time goes, one step at a time on the same backup: the S3 read alone (one GET;
 * parallel ranges), decoding alone (`zstd -dc`, one thread), extracting alone (GNU `tar -xf` of the
 * decoded tar), Cairn's unpack from a local copy (decode + extract, no S3), and Cairn's unpack from
 * S3 through one GET stream (before issue 17) and through parallel range reads (now), in process.
 */
async function restoreCosts(set: DataSet, tag: string, backup: NonNullable<Runs['lastBackup']>, store: S3ObjectStore, work: string): Promise<void> {
  const sink = () =>
    new Writable({
      write(_c, _e, cb) {
        cb();
      },
    });
  const mb = backup.sizeBytes / 1e6;
  console.log(`  ${set.name}, archive ${mb.toFixed(0)} MB stored (load ${loadAverage()}):`);
  const time = async (what: string, fn: () => Promise<unknown> | unknown) => {
    const t = performance.now();
    await fn();
    const seconds = (performance.now() - t) / 1000;
    console.log(`    ${what.padEnd(60)} ${seconds.toFixed(2).padStart(7)} s  ${(mb / seconds).toFixed(0).padStart(5)} MB/s stored`);
  };
  const settings = rangeReadsOf(loadConfig(process.env));
  const reader: RangeReader = (start, end) => store.get(backup.storageKey, { range: { start, end } });
  const local = join(work, `${tag}.tar.zst`);
  const tar = join(work, `${tag}.tar`);
  const fresh = (name: string) => {
    const dir = join(work, 'restores', `${name}-${tag}`);
    mkdirSync(dir, { recursive: true });
    return dir;
  };
  const index = await readIndex(await store.get(backup.indexKey));
  const dirs: string[] = [];
  try {
    const blocks = index.blocks;
    await time('S3 read alone: one GET', async () => pipeline(await store.get(backup.storageKey), sink()));
    await time(`S3 read alone: ${settings.parallel} parallel ranges of ${settings.rangeBytes >> 20} MiB`, async () => {
      const reads = new ParallelRangeReads(reader, splitSegments(segmentsOf(blocks, 0, blocks.length - 1), blocks, settings.rangeBytes), settings);
      for (let r = await reads.next(); r; r = await reads.next()) for await (const _ of r.stream);
    });
    await pipeline(await store.get(backup.storageKey), createWriteStream(local));
    await time('decode alone: zstd -dc > /dev/null (one thread)', () => execFileSync('bash', ['-c', `zstd -qdc '${local}' > /dev/null`]));
    execFileSync('bash', ['-c', `zstd -qdc '${local}' > '${tar}'`]);
    const gnu = fresh('tar');
    dirs.push(gnu);
    await time('extract alone: GNU tar -xf of the decoded tar', () => execFileSync('tar', ['--warning=no-timestamp', '-xf', tar, '-C', gnu]));
    const restore = (into: string, source: Parameters<typeof unpackArchive>[0]['source']) =>
      unpackArchive({ target: into, volumeDirs: { data: into }, index, source, rangeReads: settings });
    dirs.push(fresh('local'), fresh('get'), fresh('ranges'));
    await time('Cairn unpack from a local file (decode + extract)', () => restore(dirs[1]!, { stream: createReadStream(local, { highWaterMark: 1 << 20 }) }));
    await time('Cairn unpack from S3, one GET stream (before)', async () => restore(dirs[2]!, { stream: await store.get(backup.storageKey) }));
    await time('Cairn unpack from S3, parallel range reads (now)', () => restore(dirs[3]!, { rangeReader: reader }));
  } finally {
    index.entries.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    rmSync(local, { force: true });
    rmSync(tar, { force: true });
  }
  console.log(`    (load ${loadAverage()})`);
}

/** A client of the benchmark's s3rver bucket (upload part size and parts in flight as given). */
function benchStore(endpoint: string, upload: { partSize?: number; queueSize?: number } = {}): S3ObjectStore {
  return new S3ObjectStore({
    endpoint,
    region: 'us-east-1',
    bucket: BUCKET,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    forcePathStyle: true,
    checksumMode: 'WHEN_REQUIRED',
    ...upload,
  });
}

/**
 * Where a backup's time goes, one step at a time on the same data: Cairn's pack alone to a local
 * file (scan, read, hash, compress; no S3), then that archive uploaded alone as a backup uploads it
 * (multipart, S3_PART_SIZE parts, S3_UPLOAD_QUEUE_SIZE in flight; s3rver then rewrites the parts
 * into one object on CompleteMultipartUpload) and as one PUT (what restic's pack files are). The
 * job's own figure (started to finished) minus these is the job's bookkeeping: claim, index and
 * manifest upload, database writes.
 */
async function backupCosts(set: DataSet, tag: string, s3Endpoint: string, work: string): Promise<void> {
  const config = loadConfig(process.env);
  const local = join(work, `${tag}-pack.tar.zst`);
  const mb = set.bytes / 1e6;
  const time = async (what: string, fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn();
    const seconds = (performance.now() - t) / 1000;
    console.log(`    ${what.padEnd(60)} ${seconds.toFixed(2).padStart(7)} s  ${(mb / seconds).toFixed(0).padStart(5)} MB/s of data`);
  };
  const storeWith = (partSize: number, queueSize: number) => benchStore(s3Endpoint, { partSize, queueSize });
  console.log(`  ${set.name}, ${mb.toFixed(0)} MB of data (load ${loadAverage()}):`);
  warm(set.dir);
  await time('Cairn pack alone to a local file (zstd)', async () => {
    const packed = await packArchive({ volumes: [{ name: 'data', dir: set.dir }], codec: 'zstd' }, createWriteStream(local));
    packed.close();
  });
  const stored = statSync(local).size;
  const multipart = storeWith(config.S3_PART_SIZE, config.S3_UPLOAD_QUEUE_SIZE);
  const single = storeWith(Math.max(5 << 20, stored + 1), 1);
  try {
    await time(`S3 upload alone, multipart (${config.S3_PART_SIZE >> 20} MiB parts, ${config.S3_UPLOAD_QUEUE_SIZE} in flight)`, () =>
      multipart.put(`bench-costs/${tag}-multipart`, createReadStream(local, { highWaterMark: 1 << 20 })),
    );
    await time('S3 upload alone, one PUT', () => single.put(`bench-costs/${tag}-single`, createReadStream(local, { highWaterMark: 1 << 20 })));
    await multipart.deleteMany([`bench-costs/${tag}-multipart`, `bench-costs/${tag}-single`]);
  } finally {
    await multipart.close();
    await single.close();
    rmSync(local, { force: true });
  }
  console.log(`    (archive ${(stored / 1e6).toFixed(0)} MB stored; load ${loadAverage()})`);
}

async function main(): Promise<void> {
  if (!ensureCommand('restic', 'restic')) throw new Error('restic is missing and could not be installed (apt-get install restic, as root)');
  const sets: [string, DataSet][] = [];
  if (!ONLY || ONLY.includes('large'))
    sets.push(['large', largeDataSet(ROOT, Number(process.env.CAIRN_E2E_LARGE_FILES ?? 8), Number(process.env.CAIRN_E2E_LARGE_MIB ?? 64))]);
  if (!ONLY || ONLY.includes('small')) sets.push(['small', smallDataSet(ROOT, Number(process.env.CAIRN_E2E_SMALL_FILES ?? 20_000), 1000)]);

  mkdirSync(ROOT, { recursive: true });
  const work = mkdtempSync(join(ROOT, 'e2e-'));
  const database = `cairn_bench_e2e_${process.pid}`;
  const stack = await startLocalStack({
    env: { ...process.env, S3_ENDPOINT: '', S3_BUCKET: BUCKET },
    database,
    dropDatabaseOnStop: true,
    s3Directory: join(work, 's3'),
    bucket: BUCKET,
    log: (m) => console.log(`[stack] ${m}`),
  });
  const token = `cairn_${randomBytes(24).toString('base64url')}`;
  const env = {
    ...stack.env,
    PORT: String(await freePort()),
    CAIRN_DATA_DIR: join(work, 'cairn'),
    CAIRN_ADMIN_TOKEN: token,
    VOLUME_ROOTS: ROOT,
    NODE_ID: 'bench-node',
    QUEUE_PREFIX: `{cairn-bench-${process.pid}}`,
    MANUAL_BACKUP_LIMIT: '1000',
    LOG_LEVEL: 'warn',
  };
  let cairn: { child: ChildProcess; url: string } | undefined;
  let stopping = false;
  const store = benchStore(stack.env.S3_ENDPOINT!);
  try {
    const logFile = join(ROOT, 'e2e-cairn.log');
    cairn = await startCairn(env, logFile);
    cairn.child.once('exit', (code, signal) => {
      if (!stopping) console.error(`Cairn exited unexpectedly (code ${code}, signal ${signal}); its output is in ${logFile}`);
    });
    const api = { url: cairn.url, token };
    const nodeId = 'bench-node';
    await waitForNode(api, nodeId, 10_000);
    const resticEnv = {
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      RESTIC_PASSWORD,
      RESTIC_CACHE_DIR: join(work, 'restic-cache'),
    };
    const version = spawnSync('restic', ['version'], { encoding: 'utf8' }).stdout.trim();
    console.log(`Cairn ${cairn.url} and ${version} on the fixed s3rver at ${stack.env.S3_ENDPOINT}; ${REPS} alternating runs per set (load ${loadAverage()})`);

    const s3rverPid = findDescendant(process.pid, 's3rver/main.ts');
    const cairnPid = cairn.child.pid!;
    // An S3 server not started here (S3_ENDPOINT given) is not measured: its CPU shows only in the machine's.
    const cpuMeters = { cairn: () => treeCpu(cairnPid), s3: () => (s3rverPid ? treeCpu(s3rverPid) : 0) };
    const results: { set: DataSet; runs: Runs; tag: string }[] = [];
    for (const [tag, set] of sets) {
      console.log(`${set.name}: ${set.files} files, ${(set.bytes / 1e6).toFixed(0)} MB`);
      results.push({ set, tag, runs: await benchSet(set, tag, { api, nodeId, work, resticEnv, s3: stack.env.S3_ENDPOINT!, cpu: cpuMeters }) });
    }

    console.log(`\nmedians of ${REPS} alternating runs (ratio restic / Cairn, > 1: Cairn faster; target ≥ 1.43), load ${loadAverage()}:`);
    console.log('| data | Cairn backup | restic backup | backup ratio | Cairn restore | restic restore | restore ratio |');
    console.log('| --- | --- | --- | --- | --- | --- | --- |');
    for (const { set, runs } of results) {
      const cb = median(runs.cairnBackup);
      const rb = median(runs.resticBackup);
      const cr = median(runs.cairnRestore);
      const rr = median(runs.resticRestore);
      const ratios = (a: number[], b: number[]) => a.map((x, i) => (x / b[i]!).toFixed(2)).join(', ');
      console.log(
        `| ${set.name} | ${cb.toFixed(2)} s | ${rb.toFixed(2)} s | ${(rb / cb).toFixed(2)} (runs ${ratios(runs.resticBackup, runs.cairnBackup)}) ` +
          `| ${cr.toFixed(2)} s | ${rr.toFixed(2)} s | ${(rr / cr).toFixed(2)} (runs ${ratios(runs.resticRestore, runs.cairnRestore)}) |`,
      );
    }
    // Cairn's restore flushes its data to disk before it swaps it in; restic's does not flush at all.
    console.log('\nrestic restore followed by `sync` (its data on disk, as a Cairn restore leaves it; not in the ratios above):');
    for (const { set, runs } of results) {
      const durable = runs.resticRestore.map((x, i) => x + runs.resticRestoreSync[i]!);
      const ratios = durable.map((x, i) => (x / runs.cairnRestore[i]!).toFixed(2)).join(', ');
      console.log(
        `  ${set.name}: sync ${median(runs.resticRestoreSync).toFixed(2)} s, restore + sync ${median(durable).toFixed(2)} s, ` +
          `against Cairn's restore ${(median(durable) / median(runs.cairnRestore)).toFixed(2)} (runs ${ratios})`,
      );
    }

    // Whether the wall time was the two cores being full, and how the work was shared.
    console.log(`\nCPU seconds, medians (own + s3rver; the machine's busy CPU s, and its share of ${availableParallelism()} cores over the wall time):`);
    console.log('| data | Cairn backup | restic backup | Cairn restore | restic restore |');
    console.log('| --- | --- | --- | --- | --- |');
    for (const { set, runs } of results) {
      const m = (cs: StepCpu[], walls: number[]): string =>
        cpuText({ own: median(cs.map((c) => c.own)), s3: median(cs.map((c) => c.s3)), machine: median(cs.map((c) => c.machine)) }, median(walls));
      const c = runs.cpu;
      console.log(
        `| ${set.name} | ${m(c.cairnBackup, runs.cairnBackup)} | ${m(c.resticBackup, runs.resticBackup)} | ` +
          `${m(c.cairnRestore, runs.cairnRestore)} | ${m(c.resticRestore, runs.resticRestore)} |`,
      );
    }

    if (process.env.CAIRN_E2E_COSTS !== '0') {
      console.log('\nwhere a restore goes (last Cairn backup of each set):');
      for (const { set, runs, tag } of results) if (runs.lastBackup) await restoreCosts(set, tag, runs.lastBackup, store, work);
      console.log('\nwhere a backup goes (same data, each step alone):');
      for (const { set, tag } of results) await backupCosts(set, tag, stack.env.S3_ENDPOINT!, work);
    }
  } finally {
    await store.close();
    stopping = true;
    if (cairn && cairn.child.exitCode === null) {
      cairn.child.kill('SIGTERM');
      await new Promise((r) => cairn!.child.once('exit', r));
    }
    await stack.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
