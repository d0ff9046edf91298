/** Measuring helpers for the archive benchmark: shell commands, warm caches, peak RSS, medians. */
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { constants as perf, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { getHeapStatistics } from 'node:v8';
import { Worker } from 'node:worker_threads';
import { transferView } from '../services/core/src/archive/buffers.ts';
import { CLOCK_TICKS, procStat } from './process-cpu.ts';

export interface Sample {
  seconds: number;
  /** CPU seconds (user + system) of the measured process(es). */
  cpu: number;
  /** Peak RSS in MiB, when known. */
  rssMiB?: number;
}

let discard: Worker | undefined;

/**
 * The pack's "null sink": it drops what it is given once it has left this isolate, the way a
 * backup's frames leave it (handed to the store thread, STORE_THREAD). Frames dropped here instead
 * are dead ArrayBuffers that trigger full collections of this process's heap: a pack of the large
 * set took 25–30% longer in `npm run bench`, 16% in bench/pack-profile.ts with a 30 MB heap
 * (PROFILE_SINK=main).
 */
export function nullSink(): Writable {
  if (!discard) {
    discard = new Worker("require('node:worker_threads').parentPort.on('message', () => {})", { eval: true });
    discard.unref();
  }
  const thread = discard;
  return new Writable({
    write: (chunk: Buffer, _e, cb) => {
      const v = transferView(chunk);
      thread.postMessage(v.buf, [v.buf]);
      cb();
    },
  });
}

/** Runs a shell pipeline; wall time from here, CPU from bash's `times` for its children. */
export function runShell(cmd: string): Sample {
  const t = performance.now();
  const r = spawnSync('bash', ['-c', `set -o pipefail; ${cmd}; s=$?; times; exit $s`], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const seconds = (performance.now() - t) / 1000;
  if (r.status !== 0) throw new Error(`command failed (${r.status}): ${cmd}\n${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  const children = lines[lines.length - 1] ?? '';
  const cpu = children
    .split(/\s+/)
    .map((x) => /^(\d+)m([\d.]+)s$/.exec(x))
    .filter((m): m is RegExpExecArray => m !== null)
    .reduce((s, m) => s + Number(m[1]) * 60 + Number(m[2]), 0);
  return { seconds, cpu };
}

/** CPU seconds so far of every thread of this process, by thread id (Linux /proc). */
export interface ThreadCpu {
  name: string;
  user: number;
  sys: number;
}

export function threadCpu(): Map<string, ThreadCpu> {
  const out = new Map<string, ThreadCpu>();
  for (const tid of readdirSync('/proc/self/task')) {
    const stat = procStat(`/proc/self/task/${tid}/stat`);
    if (stat) out.set(tid, { name: stat.comm, user: Number(stat.fields[11]) / CLOCK_TICKS, sys: Number(stat.fields[12]) / CLOCK_TICKS });
  }
  return out;
}

/**
 * Samples threadCpu() every 50 ms until stop(), which returns each thread's CPU over that time
 * (threads that ended between samples keep their last sample), busiest first, idle ones left out.
 */
export function watchThreads(): { stop: () => (ThreadCpu & { tid: string })[] } {
  const before = threadCpu();
  const seen = new Map<string, ThreadCpu>();
  const sample = (): void => {
    for (const [tid, t] of threadCpu()) seen.set(tid, t);
  };
  const timer = setInterval(sample, 50);
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      return [...seen]
        .map(([tid, t]) => {
          const b = before.get(tid);
          return { tid, name: t.name, user: t.user - (b?.user ?? 0), sys: t.sys - (b?.sys ?? 0) };
        })
        .filter((x) => x.user + x.sys > 0.015)
        .sort((a, b) => b.user + b.sys - a.user - a.sys);
    },
  };
}

/** Counts this thread's garbage collections until stop(), which describes them: how many of each kind, and their time. */
export function watchGc(): { stop: () => string } {
  const seen: PerformanceEntry[] = [];
  const obs = new PerformanceObserver((list) => seen.push(...list.getEntries()));
  obs.observe({ entryTypes: ['gc'] });
  const kinds: Record<number, string> = {
    [perf.NODE_PERFORMANCE_GC_MAJOR]: 'major',
    [perf.NODE_PERFORMANCE_GC_MINOR]: 'minor',
    [perf.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
    [perf.NODE_PERFORMANCE_GC_WEAKCB]: 'weak',
  };
  return {
    stop: () => {
      seen.push(...obs.takeRecords());
      obs.disconnect();
      const by = new Map<string, { n: number; ms: number }>();
      for (const e of seen) {
        const k = kinds[((e as { detail?: unknown }).detail as { kind?: number } | undefined)?.kind ?? -1] ?? 'other';
        const x = by.get(k) ?? { n: 0, ms: 0 };
        x.n++;
        x.ms += e.duration;
        by.set(k, x);
      }
      return [...by].map(([k, x]) => `${x.n} ${k} (${x.ms.toFixed(0)} ms)`).join(', ') || 'none';
    },
  };
}

/**
 * PROFILE_BALLAST_MB=N keeps N MB of live objects for the whole profile, so that its main isolate
 * carries a heap like a service's (a node worker's modules are ~30 MB). A full collection marks
 * the whole heap, so in a bare profile process the garbage collector's cost nearly vanishes.
 * Returns the objects: the caller holds them until the end.
 */
export function ballastFromEnv(): unknown[] {
  return Array.from({ length: Number(process.env.PROFILE_BALLAST_MB ?? 0) * 16384 }, (_, i) => ({ i, s: `x${i}` }));
}

/**
 * Samples the main isolate's external memory (ArrayBuffers it holds, dead ones included until a
 * collection frees them) every 10 ms; stop() gives the peak in MiB.
 */
export function watchExternal(): { stop: () => number } {
  let peak = 0;
  const timer = setInterval(() => (peak = Math.max(peak, getHeapStatistics().external_memory)), 10);
  return {
    stop: () => {
      clearInterval(timer);
      return peak / 2 ** 20;
    },
  };
}

/**
 * Times an in-process run: wall time, this process's CPU (all its threads), peak RSS.
 * CAIRN_BENCH_THREADS=1 prints each thread's CPU of the run (which thread bounds it).
 */
export async function measureAsync(fn: () => Promise<void>): Promise<Sample> {
  resetPeakRss();
  const watch = process.env.CAIRN_BENCH_THREADS === '1' ? watchThreads() : undefined;
  const c0 = process.cpuUsage();
  const t = performance.now();
  await fn();
  const seconds = (performance.now() - t) / 1000;
  const cu = process.cpuUsage(c0);
  if (watch) for (const x of watch.stop()) console.log(`    thread ${x.tid.padEnd(8)} ${x.name.padEnd(16)} user ${x.user.toFixed(2)}  sys ${x.sys.toFixed(2)}`);
  return { seconds, cpu: (cu.user + cu.system) / 1e6, rssMiB: peakRssMiB() };
}

/**
 * Untimed, before every measured run: the previous run's dirty pages are written out. An
 * extraction or an upload leaves its data in the page cache and neither tool waits for it, so
 * without this the kernel's writeback of one run lands on the next, which alternation makes the
 * other tool's. CAIRN_BENCH_SYNC=0 skips it.
 */
export function settle(): void {
  if (process.env.CAIRN_BENCH_SYNC !== '0') execFileSync('sync');
}

/** Reads a data set so that it is in the page cache right before a run (the VM evicts idle pages). */
export function warm(dir: string): void {
  execFileSync('bash', ['-c', `tar -cf - -C '${dir}' . | cat > /dev/null`]);
}

/** Resets this process's peak-RSS counter (Linux; as root or owner). */
export function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

export function peakRssMiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function loadAverage(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return '?';
  }
}

/** Installs a Debian package when its command is missing (as root); false when it cannot. */
export function ensureCommand(cmd: string, pkg: string): boolean {
  if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0) return true;
  if (process.getuid?.() !== 0) return false;
  console.log(`installing ${pkg} (apt-get)...`);
  let r = spawnSync('apt-get', ['install', '-y', pkg], { stdio: 'ignore' });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update'], { stdio: 'ignore' });
    r = spawnSync('apt-get', ['install', '-y', pkg], { stdio: 'ignore' });
  }
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}
