/**
 * CPU seconds from Linux /proc, for the end-to-end bench: a process tree's (every thread of a
 * process and of its descendants), this process's waited-for children's (a `spawnSync` tool once
 * it exited), and the whole machine's busy time (every core, the kernel's own threads included:
 * writeback, the network stack). With them a run says whether its wall time was the cores being
 * full, and how the work was shared between a tool and the S3 server it talks to.
 */
import { readdirSync, readFileSync } from 'node:fs';

const CLOCK_TICKS = 100;

interface ProcessRow {
  ppid: number;
  /** user + system seconds of all its threads, itself only. */
  cpu: number;
  cmdline: string;
}

function statFields(pid: string): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses): state is [0].
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined; // it ended
  }
}

function processTable(): Map<number, ProcessRow> {
  const rows = new Map<number, ProcessRow>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(name);
    if (!f) continue;
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      // it ended
    }
    rows.set(Number(name), { ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12])) / CLOCK_TICKS, cmdline });
  }
  return rows;
}

function descendants(root: number, rows: Map<number, ProcessRow>): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, r] of rows) children.set(r.ppid, [...(children.get(r.ppid) ?? []), pid]);
  const out: number[] = [];
  const walk = (pid: number): void => {
    out.push(pid);
    for (const c of children.get(pid) ?? []) walk(c);
  };
  walk(root);
  return out;
}

/** CPU seconds so far of `root` and every process under it (processes that already ended are not counted). */
export function treeCpu(root: number): number {
  const rows = processTable();
  return descendants(root, rows).reduce((s, pid) => s + (rows.get(pid)?.cpu ?? 0), 0);
}

/** The pid of the first process under `root` whose command line contains `needle`. */
export function findDescendant(root: number, needle: string): number | undefined {
  const rows = processTable();
  return descendants(root, rows).find((pid) => pid !== root && rows.get(pid)?.cmdline.includes(needle));
}

/** CPU seconds of this process's children that ended and were waited for (a spawnSync'd tool counts once it returned). */
export function endedChildrenCpu(): number {
  const f = statFields('self')!;
  return (Number(f[13]) + Number(f[14])) / CLOCK_TICKS;
}

/** Busy CPU seconds of the whole machine so far, all cores (everything but idle and I/O wait). */
export function machineBusy(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  const [user, nice, system, , , irq, softirq, steal] = cpu;
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / CLOCK_TICKS;
}

export type CpuMeters = Record<string, () => number>;

/** Starts the meters; the returned function gives each one's CPU seconds since. */
export function startCpu<M extends CpuMeters>(meters: M): () => Record<keyof M, number> {
  const before = Object.fromEntries(Object.entries(meters).map(([k, f]) => [k, f()]));
  return () => Object.fromEntries(Object.entries(meters).map(([k, f]) => [k, f() - before[k]!])) as Record<keyof M, number>;
}
