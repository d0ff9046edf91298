/**
 * `npm run bench`: the archive engine against GNU tar + zstd/pigz on the same data, same run
 * (SPEC §15). Not a test: it prints a table and the ratios against the reference commands.
 *
 * Data sets (generated once, cached under CAIRN_BENCH_DIR, default /var/tmp/cairn-bench):
 * large half-compressible files, and 100k small files of 1–16 KiB in ~1000 directories.
 * Reference and Cairn runs alternate; before every run `sync` writes out the dirty pages the run
 * before left (CAIRN_BENCH_SYNC=0 skips it), the data is read (this VM evicts idle page cache),
 * and every extraction goes to a fresh directory (TOOLCHAIN.md).
 * Then `verify` (no target): a full verify of the unpack scenario's archive against `zstd -dc | openssl sha256`.
 * Then the incremental scenarios of issue 11 (incremental.bench.ts): an unchanged second backup
 * against the full one and against restic's unchanged re-backup. Then the gateway scenario of
 * issue 17 (gateway.bench.ts, `gateway`): fixed-rate API load, alone and with 300 progress streams. Then
 * the node worker's RSS during two concurrent backups (worker-rss.bench.ts, `worker-rss`).
 *
 * Environment: CAIRN_BENCH_REPS (3), CAIRN_BENCH_LARGE_FILES (8) × CAIRN_BENCH_LARGE_MIB (256),
 * CAIRN_BENCH_SMALL_FILES (100000), CAIRN_BENCH_MANY_FILES (500000 tiny files, only for the peak-RSS
 * probes; 0 skips them), CAIRN_BENCH_ONLY (comma list of scenario names, the incremental ones included),
 * CAIRN_BENCH_KEEP=1 keeps the extraction directories, CAIRN_BENCH_THREADS=1 prints each thread's CPU of every Cairn run.
 */
import '../scripts/quiet-sdk.ts';
import { execFileSync } from 'node:child_process';
import { createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { finished, pipeline } from 'node:stream/promises';
import {
  fileRangeReader,
  fileSource,
  packArchive,
  sharedWorkerHost,
  unpackArchive,
  type ArchiveIndex,
  type Codec,
} from '../services/core/src/archive/index.ts';
import { verifyAllFrames } from '../services/core/src/archive/verify-archive.ts';
import { largeDataSet, manyDataSet, smallDataSet, type DataSet } from './datasets.ts';
import { reportEncryption, runEncryption } from './encryption.bench.ts';
import { GATEWAY_SCENARIOS, reportGateway, runGateway } from './gateway.bench.ts';
import { reportIncremental, runIncremental } from './incremental.bench.ts';
import { reportWorkerRss, runWorkerRss } from './worker-rss.bench.ts';
import { ensureCommand, loadAverage, measureAsync, median, nullSink, runShell, settle, warm, type Sample } from './measure.ts';

const ROOT = process.env.CAIRN_BENCH_DIR ?? '/var/tmp/cairn-bench';
const REPS = Number(process.env.CAIRN_BENCH_REPS ?? 3);
const ONLY = process.env.CAIRN_BENCH_ONLY?.split(',').map((s) => s.trim());
// Per process: a bench run removes its scratch directory at the end, never another run's files.
const SCRATCH = join(ROOT, 'scratch', String(process.pid));

interface Scenario {
  name: string;
  set: DataSet;
  reference: { label: string; run: () => Sample };
  cairn: { label: string; run: () => Promise<Sample> };
  /** Untimed, before the first run. */
  prepare?: () => Promise<unknown>;
}

interface Result {
  scenario: Scenario;
  ref: Sample[];
  cairn: Sample[];
}

let seq = 0;
const fresh = (what: string): string => join(SCRATCH, `${what}-${process.pid}-${++seq}`);

const measureCairn = measureAsync;

/** One pack; the entries' temporary file is released (keep = the whole index, for a restore run). */
async function cairnPack(set: DataSet, codec: Codec, out?: string, keep = false): Promise<ArchiveIndex | undefined> {
  const sink = out ? createWriteStream(out) : nullSink();
  const r = await packArchive({ volumes: [{ name: 'data', dir: set.dir }], codec }, sink);
  const index = keep ? r.index : undefined;
  r.close();
  return index;
}

function scenarios(large: DataSet, small: DataSet): Scenario[] {
  const list: Scenario[] = [];
  for (const set of [large, small]) {
    const tag = set === large ? 'large' : 'small';
    const parent = dirname(set.dir);
    const tarOf = `tar -cf - -C '${parent}' data`;
    list.push({
      name: `${tag}-pack-zstd-null`,
      set,
      reference: { label: 'tar | zstd -3 -T2 > /dev/null', run: () => runShell(`${tarOf} | zstd -3 -T2 -q > /dev/null`) },
      cairn: { label: 'pack zstd -> null sink', run: () => measureCairn(async () => void (await cairnPack(set, 'zstd'))) },
    });
    list.push({
      name: `${tag}-pack-zstd-file`,
      set,
      reference: {
        label: 'tar | zstd -3 -T2 > file',
        run: () => {
          const f = fresh('ref.tar.zst');
          const s = runShell(`${tarOf} | zstd -3 -T2 -q > '${f}'`);
          rmSync(f, { force: true });
          return s;
        },
      },
      cairn: {
        label: 'pack zstd -> file',
        run: async () => {
          const f = fresh('cairn.tar.zst');
          const s = await measureCairn(async () => void (await cairnPack(set, 'zstd', f)));
          rmSync(f, { force: true });
          return s;
        },
      },
    });
    list.push({
      name: `${tag}-pack-gzip-null`,
      set,
      reference: { label: 'tar | pigz -p 2 > /dev/null', run: () => runShell(`${tarOf} | pigz -p 2 > /dev/null`) },
      cairn: { label: 'pack gzip -> null sink', run: () => measureCairn(async () => void (await cairnPack(set, 'gzip'))) },
    });
    // Restore: GNU tar extracting a plain tar vs Cairn extracting its zstd archive.
    let plainTar = '';
    let archive = '';
    let index: ArchiveIndex | undefined;
    /** The set packed once into a local zstd archive, for the unpack and verify scenarios. */
    const stored = async (): Promise<ArchiveIndex> => {
      if (!index) {
        archive = fresh('restore-src.tar.zst');
        index = await cairnPack(set, 'zstd', archive, true);
      }
      return index!;
    };
    list.push({
      name: `${tag}-unpack`,
      set,
      reference: {
        label: 'tar -xf plain.tar',
        run: () => {
          if (!plainTar) {
            plainTar = fresh('plain.tar');
            runShell(`${tarOf} > '${plainTar}'`);
          }
          runShell(`cat '${plainTar}' > /dev/null`);
          const to = fresh('ref-x');
          mkdirSync(to, { recursive: true });
          return runShell(`tar -xf '${plainTar}' -C '${to}'`);
        },
      },
      cairn: {
        label: 'unpack zstd archive',
        run: async () => {
          const ix = await stored();
          runShell(`cat '${archive}' > /dev/null`);
          const to = fresh('cairn-x');
          // As a restore reads: range reads of whole frames, by a reader thread (fileSource).
          return measureCairn(async () => void (await unpackArchive({ target: to, index: ix, source: fileSource(archive) })));
        },
      },
    });
    // Verify (no target): every frame decoded and checked, the tar parsed, every file's and the
    // object's sha256, against decoding it all and hashing the stream once by hand.
    list.push({
      name: `${tag}-verify`,
      set,
      prepare: stored,
      reference: {
        // OpenSSL's sha256 uses the CPU's SHA extensions, as Cairn's does (coreutils' sha256sum does not).
        label: 'zstd -dc archive | openssl sha256',
        run: () => {
          runShell(`cat '${archive}' > /dev/null`);
          return runShell(`zstd -dc '${archive}' | openssl dgst -sha256 > /dev/null`);
        },
      },
      cairn: {
        label: 'verify full, local archive',
        run: async () => {
          const ix = await stored();
          runShell(`cat '${archive}' > /dev/null`);
          return measureCairn(async () => {
            // As a verify reads in the control worker: range reads by the store thread (fileSource).
            const r = await verifyAllFrames(ix, fileRangeReader(archive), { files: set.files, thread: { recipe: { kind: 'file', path: archive } } });
            if (r.blocksChecked !== ix.blocks.length) throw new Error(`verify checked ${r.blocksChecked} of ${ix.blocks.length} blocks`);
          });
        },
      },
    });
  }
  return list.filter((s) => !ONLY || ONLY.includes(s.name));
}

function fmt(n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

interface Probe {
  what: string;
  peakRssMiB: number;
  seconds: number;
}

/** Peak RSS of single operations, each in a fresh process (see rss-probe.ts). */
async function rssProbes(large: DataSet, small: DataSet, many: DataSet | undefined): Promise<Probe[]> {
  const tsx = join(process.cwd(), 'node_modules', '.bin', 'tsx');
  const probe = join(import.meta.dirname, 'rss-probe.ts');
  // The environment of the worker image (infra/Dockerfile): glibc's per-thread malloc arenas capped.
  const env = { ...process.env, MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2' };
  const run = (what: string, args: string[]): Probe => ({
    what,
    ...(JSON.parse(execFileSync(tsx, [probe, ...args], { encoding: 'utf8', maxBuffer: 1 << 20, env })) as { peakRssMiB: number; seconds: number }),
  });
  const out: Probe[] = [];
  const sets: [string, DataSet][] = [
    ['large', large],
    ['small', small],
  ];
  if (many) sets.push(['many', many]);
  for (const [tag, set] of sets) {
    warm(set.dir);
    out.push(run(`pack ${tag} (zstd, null sink)`, ['pack', set.dir, 'zstd']));
    const archive = fresh(`probe-${tag}.tar.zst`);
    const sink = createWriteStream(archive);
    const packed = await packArchive({ volumes: [{ name: 'data', dir: set.dir }], codec: 'zstd' }, sink);
    await finished(sink);
    const indexFile = `${archive}.index.json.gz`;
    await pipeline(packed.indexStream(), createWriteStream(indexFile));
    packed.close();
    out.push(run(`unpack ${tag} (zstd archive -> fresh dir)`, ['unpack', archive, indexFile, fresh(`probe-${tag}-x`)]));
  }
  return out;
}

function report(results: Result[], probes: Probe[]): void {
  const rows: string[][] = [['scenario', 'run', 'median s', 'MB/s', 'files/s', 'cpu s', 'peak RSS MiB', 'ratio (ref s / cairn s)']];
  for (const r of results) {
    const { set } = r.scenario;
    const ratios = r.ref.map((x, i) => x.seconds / r.cairn[i]!.seconds);
    for (const [who, samples, label] of [
      ['ref', r.ref, r.scenario.reference.label],
      ['cairn', r.cairn, r.scenario.cairn.label],
    ] as const) {
      const s = median(samples.map((x) => x.seconds));
      rows.push([
        who === 'ref' ? r.scenario.name : '',
        label,
        fmt(s),
        fmt(set.bytes / s / 1e6, 0),
        fmt(set.files / s, 0),
        fmt(median(samples.map((x) => x.cpu))),
        who === 'cairn' ? fmt(Math.max(...samples.map((x) => x.rssMiB ?? Number.NaN)), 0) : '',
        who === 'cairn' ? `${fmt(median(ratios))}  (runs: ${ratios.map((x) => fmt(x)).join(', ')})` : '',
      ]);
    }
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const [i, r] of rows.entries()) {
    console.log(r.map((cell, c) => cell.padEnd(widths[c]!)).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
  const ratio = (name: string): number => {
    const r = results.find((x) => x.scenario.name === name);
    return r ? median(r.ref.map((x, i) => x.seconds / r.cairn[i]!.seconds)) : Number.NaN;
  };
  const rss = Math.max(...results.flatMap((r) => r.cairn.map((x) => x.rssMiB ?? 0)));
  const probeMax = Math.max(...probes.map((p) => p.peakRssMiB));
  console.log('\nSPEC §15 targets (median ratios of alternating runs):');
  console.log(
    `  large files, zstd: throughput >= tar | zstd -3 -T2      ratio ${fmt(ratio('large-pack-zstd-null'))} (null sink), ` +
      `${fmt(ratio('large-pack-zstd-file'))} (file)` +
      `  -> ${ratio('large-pack-zstd-null') >= 1 ? 'met' : 'NOT met'}`,
  );
  console.log(
    `  small files, zstd: files/s >= 0.8 x tar | zstd -3 -T2   ratio ${fmt(ratio('small-pack-zstd-null'))} (null sink), ` +
      `${fmt(ratio('small-pack-zstd-file'))} (file)` +
      `  -> ${ratio('small-pack-zstd-null') >= 0.8 ? 'met' : 'NOT met'}`,
  );
  console.log(
    `  gzip codec: >= tar | pigz -p 2                            ratio ${fmt(ratio('large-pack-gzip-null'))} (large), ` +
      `${fmt(ratio('small-pack-gzip-null'))} (small)`,
  );
  console.log(`  restore vs tar -xf                                        ratio ${fmt(ratio('large-unpack'))} (large), ${fmt(ratio('small-unpack'))} (small)`);
  console.log(
    `  (no target) verify full vs zstd -dc | openssl sha256       ratio ${fmt(ratio('large-verify'))} (large), ${fmt(ratio('small-verify'))} (small)`,
  );
  if (probes.length)
    console.log(
      `  peak RSS, one operation per fresh process (tsx runtime included, MALLOC_ARENA_MAX=${process.env.MALLOC_ARENA_MAX ?? '2'} as in the image): ` +
        `${fmt(probeMax, 0)} MiB (target < 256) -> ${probeMax < 256 ? 'met' : 'NOT met'}`,
    );
  else console.log('  peak RSS in fresh processes: not measured (CAIRN_BENCH_ONLY set)');
  for (const p of probes) console.log(`    ${p.what.padEnd(42)} ${fmt(p.peakRssMiB, 0)} MiB  (${fmt(p.seconds)} s)`);
  console.log(`  peak RSS of the benchmark process itself during Cairn runs (harness and earlier runs' garbage included): ${fmt(rss, 0)} MiB`);
}

async function main(): Promise<void> {
  if (ONLY?.every((name) => GATEWAY_SCENARIOS.includes(name))) {
    // No archive scenario chosen: no data sets to prepare.
    console.log(`cairn gateway bench: ${availableParallelism()} CPUs, load average ${loadAverage()}`);
    const gateway = await runGateway({ only: ONLY });
    if (gateway) reportGateway(gateway);
    return;
  }
  if (!ensureCommand('zstd', 'zstd') || !ensureCommand('pigz', 'pigz') || !ensureCommand('openssl', 'openssl'))
    throw new Error('zstd, pigz and openssl are needed (apt-get install zstd pigz openssl)');
  mkdirSync(SCRATCH, { recursive: true });
  console.log(
    `cairn archive bench: ${availableParallelism()} CPUs (${cpus()[0]?.model ?? '?'}), ${REPS} alternating runs per scenario, load average ${loadAverage()}`,
  );
  console.log('preparing data sets (cached after the first run)...');
  const large = largeDataSet(ROOT, Number(process.env.CAIRN_BENCH_LARGE_FILES ?? 8), Number(process.env.CAIRN_BENCH_LARGE_MIB ?? 256));
  const small = smallDataSet(ROOT, Number(process.env.CAIRN_BENCH_SMALL_FILES ?? 100_000), 1000);
  console.log(`  ${large.name}: ${(large.bytes / 1e9).toFixed(2)} GB in ${large.dir}`);
  console.log(`  ${small.name}: ${(small.bytes / 1e9).toFixed(2)} GB in ${small.dir}`);

  // Warm-up: start the worker threads and JIT once, outside the measurements.
  const chosen = scenarios(large, small);
  if (chosen.length) await cairnPack(small, 'zstd').catch(() => undefined);

  const results: Result[] = [];
  for (const sc of chosen) {
    const res: Result = { scenario: sc, ref: [], cairn: [] };
    await sc.prepare?.();
    for (let i = 0; i < REPS; i++) {
      // Alternate which goes first, so neither always gets the warmer machine.
      const order = i % 2 === 0 ? (['ref', 'cairn'] as const) : (['cairn', 'ref'] as const);
      for (const who of order) {
        settle();
        warm(sc.set.dir);
        if (who === 'ref') res.ref.push(sc.reference.run());
        else res.cairn.push(await sc.cairn.run());
      }
      const last = res.cairn.at(-1)!;
      const ref = res.ref.at(-1)!;
      console.log(
        `  ${sc.name} #${i + 1}: ref ${fmt(ref.seconds)} s (cpu ${fmt(ref.cpu)}), ` +
          `cairn ${fmt(last.seconds)} s (cpu ${fmt(last.cpu)}, peak RSS ${fmt(last.rssMiB ?? Number.NaN, 0)} MiB), load ${loadAverage()}`,
      );
    }
    results.push(res);
  }
  const incremental = await runIncremental({ large, small, reps: REPS, scratch: SCRATCH, ...(ONLY ? { only: ONLY } : {}) });
  const encryption = await runEncryption({ large, small, reps: REPS, ...(ONLY ? { only: ONLY } : {}) });
  const gateway = await runGateway(ONLY ? { only: ONLY } : {});
  const workerRss = await runWorkerRss({ large, small, root: ROOT, ...(ONLY ? { only: ONLY } : {}) });
  const manyFiles = Number(process.env.CAIRN_BENCH_MANY_FILES ?? 500_000);
  const many = ONLY || !manyFiles ? undefined : manyDataSet(ROOT, manyFiles);
  if (!ONLY) console.log('\nmeasuring peak RSS in fresh processes...');
  const probes = ONLY ? [] : await rssProbes(large, small, many);
  console.log('');
  if (results.length || probes.length) report(results, probes);
  if (incremental.length) {
    console.log("\nIncremental backups of an unchanged volume (issue 11), archive and index written to files on the disk of restic's repository:");
    reportIncremental(incremental);
  }
  if (encryption.length) {
    console.log('\nEncryption at rest (issue 14): pack, zstd, null sink, with and without every frame sealed (AES-256-GCM):');
    reportEncryption(encryption);
  }
  if (gateway) {
    console.log('\nGateway under load (issue 17): list/show/jobs at a fixed rate, alone and with progress streams open:');
    reportGateway(gateway);
  }
  if (workerRss) {
    console.log('\nNode worker RSS (issue 17): two backups at once (small + large sets), the worker started each default way:');
    reportWorkerRss(workerRss);
  }
  await sharedWorkerHost().close();
  if (process.env.CAIRN_BENCH_KEEP !== '1') {
    console.log(`\nremoving ${SCRATCH} ...`);
    rmSync(SCRATCH, { recursive: true, force: true });
  }
}

await main();
