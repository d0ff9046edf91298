/**
 * CPU seconds from Linux /proc, for the benches: a process's and a process tree's (every thread of
 * a process and of its descendants), this process's waited-for children's (a `spawnSync` tool once
 * it exited), and the whole machine's busy time (every core, the kernel's own threads included:
 * writeback, the network stack). With them a run says whether its wall time was the cores being
 * full, and how the work was shared between a tool and the S3 server it talks to.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** /proc's CPU times are in clock ticks (USER_HZ, 100 on Linux). */
export const CLOCK_TICKS = 100;

/**
 * A /proc `stat` file (`/proc/<pid>/stat`, `/proc/self/task/<tid>/stat`): the command name, and
 * the fields after it (state is [0], ppid [1], utime [11], stime [12]); undefined once it ended.
 */
export function procStat(path: string): { comm: string; fields: string[] } | undefined {
  let stat: string;
  try {
    stat = readFileSync(path, 'utf8');
  } catch {
    return undefined; // it ended
  }
  // The command name may hold spaces and parentheses: it ends at the last ')'.
  const end = stat.lastIndexOf(')');
  return { comm: stat.slice(stat.indexOf('(') + 1, end), fields: stat.slice(end + 2).split(' ') };
}

/** user + system seconds of a stat file's utime and stime. */
function cpuOf(fields: string[]): number {
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** user + system CPU seconds so far of a running process (all its threads, itself only). */
export function processCpu(pid: number): number {
  const stat = procStat(`/proc/${pid}/stat`);
  if (!stat) throw new Error(`process ${pid} is gone`);
  return cpuOf(stat.fields);
}

/** Every process now: its parent and its own CPU seconds. */
function processTable(): Map<number, { ppid: number; cpu: number }> {
  const rows = new Map<number, { ppid: number; cpu: number }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = procStat(`/proc/${name}/stat`);
    if (stat) rows.set(Number(name), { ppid: Number(stat.fields[1]), cpu: cpuOf(stat.fields) });
  }
  return rows;
}

/** `root` and every process under it, parents before their children. */
function descendants(root: number, rows: Map<number, { ppid: number }>): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, r] of rows) {
    const list = children.get(r.ppid);
    if (list) list.push(pid);
    else children.set(r.ppid, [pid]);
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]!) ?? []));
  return out;
}

/** CPU seconds so far of `root` and every process under it (processes that already ended are not counted). */
export function treeCpu(root: number): number {
  const rows = processTable();
  return descendants(root, rows).reduce((s, pid) => s + (rows.get(pid)?.cpu ?? 0), 0);
}

/** `root` itself or the first process under it whose command line contains `marker`. */
export function findDescendant(root: number, marker: string): number | undefined {
  return descendants(root, processTable()).find((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
    } catch {
      return false; // it ended
    }
  });
}

/** CPU seconds of this process's children that ended and were waited for (a spawnSync'd tool counts once it returned). */
export function endedChildrenCpu(): number {
  const { fields } = procStat('/proc/self/stat')!;
  return (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS;
}

/** Busy CPU seconds of the whole machine so far, all cores (everything but idle and I/O wait). */
export function machineBusy(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  const [user, nice, system, , , irq, softirq, steal] = cpu;
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / CLOCK_TICKS;
}

/** Starts the meters; the returned function gives each one's CPU seconds since. */
export function startCpu<M extends Record<string, () => number>>(meters: M): () => Record<keyof M, number> {
  const before = Object.fromEntries(Object.entries(meters).map(([k, f]) => [k, f()]));
  return () => Object.fromEntries(Object.entries(meters).map(([k, f]) => [k, f() - before[k]!])) as Record<keyof M, number>;
}
