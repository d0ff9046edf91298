/** Measuring helpers for the archive benchmark: shell commands, warm caches, peak RSS, medians. */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

export interface Sample {
  seconds: number;
  /** CPU seconds (user + system) of the measured process(es). */
  cpu: number;
  /** Peak RSS in MiB, when known. */
  rssMiB?: number;
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

/** Times an in-process run: wall time, this process's CPU (all its threads), peak RSS. */
export async function measureAsync(fn: () => Promise<void>): Promise<Sample> {
  resetPeakRss();
  const c0 = process.cpuUsage();
  const t = performance.now();
  await fn();
  const seconds = (performance.now() - t) / 1000;
  const cu = process.cpuUsage(c0);
  return { seconds, cpu: (cu.user + cu.system) / 1e6, rssMiB: peakRssMiB() };
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
