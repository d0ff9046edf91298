/**
 * Incremental scenarios of `npm run bench` (issue 11), run by archive.bench.ts: the second backup
 * of an unchanged volume, against the full backup's time in the same run (target ≤ 10%) and
 * against restic's unchanged re-backup of the same data (target: faster than restic).
 *
 * Per data set and per repetition, alternating which goes first:
 *  - Cairn: a full pack (zstd) to a file, then an unchanged incremental pack to another file with
 *    the full as parent. Both are timed as a backup does them: the incremental reads its parent's
 *    index from the file the full wrote (readIndex, as the node worker does after downloading
 *    it), and each pack writes its archive and its encoded index to files on the same disk as
 *    restic's repository. The rehash share is the default (0.01), what a user gets.
 *  - restic (Debian's package, local repository on the same disk, its cache beside it): a
 *    repository initialised and a first backup made once before the repetitions (timed, for
 *    reference); each repetition times one more `restic backup` of the unchanged data, which
 *    finds its parent snapshot itself (same host and path) and skips files by their metadata.
 * The data set is read right before every timed run (warm()), and the small files each side
 * reads to find its parent (Cairn's parent index; restic's repository index, snapshots and cache)
 * too, so both start from the same page cache.
 *
 * Scenario names for CAIRN_BENCH_ONLY: large-incremental, small-incremental.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { packArchive, readIndex, type PackResult } from '../services/core/src/archive/index.ts';
import type { DataSet } from './datasets.ts';
import { ensureCommand, loadAverage, measureAsync, median, runShell, warm, type Sample } from './measure.ts';

export interface IncrementalOptions {
  large: DataSet;
  small: DataSet;
  reps: number;
  /** Scratch directory for archives and restic's repository (on the disk under test). */
  scratch: string;
  only?: string[];
}

interface CairnRun extends Sample {
  storedBytes: number;
  reusedBytes: number;
  indexBytes: number;
  warnings: number;
}

interface ResticRun extends Sample {
  /** restic's summary: bytes added to the repository (compressed), files seen as unmodified. */
  dataAdded: number;
  filesUnmodified: number;
  filesNew: number;
  filesChanged: number;
}

export interface IncrementalResult {
  name: string;
  set: DataSet;
  full: CairnRun[];
  incr: CairnRun[];
  restic: ResticRun[];
  resticFull?: ResticRun;
  resticRepoBytes?: number;
  /** Why the restic comparison was not made. */
  resticSkipped?: string;
}

function fmt(n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

function mb(bytes: number): string {
  if (!Number.isFinite(bytes)) return '-';
  if (bytes >= 1e8) return `${(bytes / 1e6).toFixed(0)} MB`;
  if (bytes >= 1e5) return `${(bytes / 1e6).toFixed(2)} MB`;
  return bytes >= 1e4 ? `${(bytes / 1e3).toFixed(1)} kB` : `${bytes} B`;
}

function duBytes(dir: string): number {
  return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
}

/** One Cairn backup as the node worker makes it: the archive to a file, then its encoded index to another. */
async function cairnBackup(set: DataSet, archive: string, parent?: { id: string; indexFile: string; tempDir: string }): Promise<CairnRun> {
  let result: PackResult | undefined;
  const sample = await measureAsync(async () => {
    const parentIndex = parent ? await readIndex(createReadStream(parent.indexFile, { highWaterMark: 1 << 20 }), parent.tempDir) : undefined;
    try {
      const r = await packArchive(
        {
          volumes: [{ name: 'data', dir: set.dir }],
          codec: 'zstd',
          ...(parent && parentIndex ? { parent: { id: parent.id, index: parentIndex, objects: [parent.id, ...(parentIndex.objects ?? [])] } } : {}),
        },
        createWriteStream(archive),
      );
      result = r;
      await pipeline(r.indexStream(), createWriteStream(`${archive}.index.json.gz`));
      r.close();
    } finally {
      parentIndex?.entries.close();
    }
  });
  const indexBytes = statSync(`${archive}.index.json.gz`).size;
  return { ...sample, storedBytes: result!.storedBytes, reusedBytes: result!.reusedBytes, indexBytes, warnings: result!.warnings.length };
}

class Restic {
  readonly env: string;
  readonly version: string;

  constructor(
    readonly repo: string,
    readonly cache: string,
    private readonly scratch: string,
  ) {
    this.env = `RESTIC_PASSWORD=cairn-bench RESTIC_REPOSITORY='${repo}' RESTIC_CACHE_DIR='${cache}'`;
    this.version = execFileSync('restic', ['version'], { encoding: 'utf8' }).trim();
  }

  /** A fresh repository; format 2 (compressed, as Cairn's zstd) where this restic has it. Returns its format version. */
  init(): number {
    rmSync(this.repo, { recursive: true, force: true });
    rmSync(this.cache, { recursive: true, force: true });
    const v2 = spawnSync('bash', ['-c', `${this.env} restic init --repository-version 2`], { encoding: 'utf8' });
    if (v2.status !== 0) {
      rmSync(this.repo, { recursive: true, force: true });
      const plain = spawnSync('bash', ['-c', `${this.env} restic init`], { encoding: 'utf8' });
      if (plain.status !== 0) throw new Error(`restic init failed: ${(plain.stderr || v2.stderr).trim()}`);
    }
    const config = spawnSync('bash', ['-c', `${this.env} restic cat config`], { encoding: 'utf8' });
    return config.status === 0 ? ((JSON.parse(config.stdout) as { version?: number }).version ?? Number.NaN) : Number.NaN;
  }

  /** Reads what restic reads to find its parent (index, snapshots, its cache) into the page cache. */
  warmMetadata(): void {
    for (const d of [join(this.repo, 'index'), join(this.repo, 'snapshots'), join(this.repo, 'keys'), this.cache]) if (existsSync(d)) warm(d);
  }

  backup(set: DataSet): ResticRun {
    const out = join(this.scratch, `restic-${process.pid}.json`);
    const sample = runShell(`${this.env} restic backup --json --host cairn-bench '${set.dir}' > '${out}'`);
    const summary = readFileSync(out, 'utf8')
      .split('\n')
      .filter((l) => l.includes('"summary"'))
      .map((l) => JSON.parse(l) as Record<string, number>)
      .at(-1);
    rmSync(out, { force: true });
    return {
      ...sample,
      dataAdded: summary?.data_added ?? Number.NaN,
      filesUnmodified: summary?.files_unmodified ?? Number.NaN,
      filesNew: summary?.files_new ?? Number.NaN,
      filesChanged: summary?.files_changed ?? Number.NaN,
    };
  }
}

function cairnLine(what: string, r: CairnRun): string {
  return `${what} ${fmt(r.seconds)} s (cpu ${fmt(r.cpu)}, stored ${mb(r.storedBytes)}, reused ${mb(r.reusedBytes)}, index ${mb(r.indexBytes)})`;
}

export async function runIncremental(o: IncrementalOptions): Promise<IncrementalResult[]> {
  const sets = (
    [
      ['large-incremental', o.large],
      ['small-incremental', o.small],
    ] as const
  ).filter(([name]) => !o.only || o.only.includes(name));
  if (!sets.length) return [];
  let restic: Restic | undefined;
  let resticSkipped: string | undefined;
  if (!ensureCommand('restic', 'restic')) resticSkipped = 'restic is not installed and could not be installed (apt-get install restic)';
  const results: IncrementalResult[] = [];
  for (const [name, set] of sets) {
    const dir = join(o.scratch, `incr-${name}-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    const res: IncrementalResult = { name, set, full: [], incr: [], restic: [], ...(resticSkipped ? { resticSkipped } : {}) };
    if (!resticSkipped) {
      try {
        restic = new Restic(join(dir, 'restic-repo'), join(dir, 'restic-cache'), dir);
        const format = restic.init();
        warm(set.dir);
        res.resticFull = restic.backup(set);
        res.resticRepoBytes = duBytes(restic.repo);
        console.log(
          `  ${name}: ${restic.version}, repository format ${format}; first backup ${fmt(res.resticFull.seconds)} s (cpu ${fmt(res.resticFull.cpu)}), ` +
            `data added ${mb(res.resticFull.dataAdded)}, repository ${mb(res.resticRepoBytes)} on disk`,
        );
      } catch (err) {
        res.resticSkipped = `restic failed: ${(err as Error).message.split('\n').slice(0, 3).join(' ')}`;
        restic = undefined;
      }
    }
    if (res.resticSkipped) console.log(`  ${name}: restic comparison skipped: ${res.resticSkipped}`);
    for (let i = 0; i < o.reps; i++) {
      const fullArchive = join(dir, `full-${i}.tar.zst`);
      const incrArchive = join(dir, `incr-${i}.tar.zst`);
      const cairn = async (): Promise<void> => {
        warm(set.dir);
        res.full.push(await cairnBackup(set, fullArchive));
        warm(set.dir);
        runShell(`cat '${fullArchive}.index.json.gz' > /dev/null`);
        res.incr.push(await cairnBackup(set, incrArchive, { id: `full-${i}`, indexFile: `${fullArchive}.index.json.gz`, tempDir: dir }));
      };
      const ref = (): void => {
        if (!restic) return;
        warm(set.dir);
        restic.warmMetadata();
        res.restic.push(restic.backup(set));
      };
      // Alternate which goes first, so neither always gets the warmer machine.
      if (i % 2 === 0) {
        await cairn();
        ref();
      } else {
        ref();
        await cairn();
      }
      const full = res.full.at(-1)!;
      const incr = res.incr.at(-1)!;
      const rr = res.restic.at(-1);
      console.log(
        `  ${name} #${i + 1}: ${cairnLine('cairn full', full)}; ${cairnLine('incremental', incr)} = ${fmt((100 * incr.seconds) / full.seconds, 1)}% of full` +
          (rr ? `; restic unchanged ${fmt(rr.seconds)} s (cpu ${fmt(rr.cpu)}, added ${mb(rr.dataAdded)}, ${rr.filesUnmodified} files unmodified)` : '') +
          `, load ${loadAverage()}`,
      );
      if (incr.warnings) console.log(`    note: the incremental reported ${incr.warnings} warning(s)`);
      rmSync(fullArchive, { force: true });
      rmSync(`${fullArchive}.index.json.gz`, { force: true });
      rmSync(incrArchive, { force: true });
      rmSync(`${incrArchive}.index.json.gz`, { force: true });
    }
    rmSync(dir, { recursive: true, force: true });
    results.push(res);
  }
  return results;
}

export function reportIncremental(results: IncrementalResult[]): void {
  if (!results.length) return;
  const rows: string[][] = [['scenario', 'run', 'median s', 'cpu s', 'stored', 'ratio']];
  const shares = (r: IncrementalResult): number[] => r.incr.map((x, i) => x.seconds / r.full[i]!.seconds);
  const vsRestic = (r: IncrementalResult): number[] => r.restic.map((x, i) => r.incr[i]!.seconds / x.seconds);
  const runs = (xs: number[]): string => `${fmt(median(xs))}  (runs: ${xs.map((x) => fmt(x)).join(', ')})`;
  for (const r of results) {
    const med = (xs: { seconds: number }[]): string => fmt(median(xs.map((x) => x.seconds)));
    const cpu = (xs: { cpu: number }[]): string => fmt(median(xs.map((x) => x.cpu)));
    rows.push([r.name, 'cairn full pack zstd -> file (+ index file)', med(r.full), cpu(r.full), mb(median(r.full.map((x) => x.storedBytes))), '']);
    rows.push([
      '',
      'cairn unchanged incremental -> file (+ index)',
      med(r.incr),
      cpu(r.incr),
      mb(median(r.incr.map((x) => x.storedBytes))),
      `incr s / full s ${runs(shares(r))}`,
    ]);
    if (r.restic.length) {
      rows.push([
        '',
        'restic backup, unchanged (local repo)',
        med(r.restic),
        cpu(r.restic),
        mb(median(r.restic.map((x) => x.dataAdded))),
        `cairn incr s / restic s ${runs(vsRestic(r))}`,
      ]);
      if (r.resticFull)
        rows.push(['', 'restic backup, first (reference, once)', fmt(r.resticFull.seconds), fmt(r.resticFull.cpu), mb(r.resticRepoBytes ?? Number.NaN), '']);
    } else rows.push(['', `restic: skipped (${r.resticSkipped ?? 'no runs'})`, '', '', '', '']);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  for (const [i, row] of rows.entries()) {
    console.log(row.map((cell, c) => cell.padEnd(widths[c]!)).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
  console.log(
    '\nstored: bytes written to the archive object (Cairn); for restic, data added by the unchanged backup, and the repository on disk after the first one.',
  );
  console.log('\nIssue 11 targets (median ratios of alternating runs):');
  for (const r of results) {
    const share = median(shares(r));
    console.log(`  ${r.name.padEnd(18)} unchanged incremental <= 10% of the full pack     ${fmt(100 * share, 1)}%  -> ${share <= 0.1 ? 'met' : 'NOT met'}`);
    if (r.restic.length) {
      const v = median(vsRestic(r));
      console.log(`  ${r.name.padEnd(18)} faster than restic's unchanged re-backup        cairn/restic ${fmt(v)}  -> ${v < 1 ? 'met' : 'NOT met'}`);
    } else console.log(`  ${r.name.padEnd(18)} restic comparison skipped: ${r.resticSkipped}`);
  }
}
