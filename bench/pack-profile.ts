/**
 * Profiling aid (not part of `npm run bench`): one pack of a directory to a null sink, with the
 * CPU seconds of every thread of the process (from /proc/self/task), to see which thread is the
 * bottleneck. Usage: tsx bench/pack-profile.ts DIR [reps]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { packArchive, sharedWorkerHost } from '../services/core/src/archive/index.ts';

const CLK = 100;

function threads(): Map<string, { name: string; cpu: number }> {
  const out = new Map<string, { name: string; cpu: number }>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, { name, cpu: (Number(f[11]) + Number(f[12])) / CLK });
    } catch {
      // thread ended
    }
  }
  return out;
}

async function main(): Promise<void> {
  const dir = process.argv[2]!;
  const reps = Number(process.argv[3] ?? 1);
  for (let r = 0; r < reps; r++) {
    const before = threads();
    const seen = new Map<string, { name: string; cpu: number }>();
    const timer = setInterval(() => {
      for (const [tid, t] of threads()) seen.set(tid, t);
    }, 50);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    const res = await packArchive({ volumes: [{ name: 'data', dir }], codec: 'zstd' }, sink);
    const secs = (performance.now() - t0) / 1000;
    const cu = process.cpuUsage(c0);
    clearInterval(timer);
    for (const [tid, t] of threads()) seen.set(tid, t);
    res.close();
    console.log(`wall ${secs.toFixed(2)} s, cpu ${((cu.user + cu.system) / 1e6).toFixed(2)} s, stored ${res.storedBytes}`);
    const rows = [...seen].map(([tid, t]) => ({ tid, name: t.name, cpu: t.cpu - (before.get(tid)?.cpu ?? 0) })).filter((x) => x.cpu > 0.015);
    rows.sort((a, b) => b.cpu - a.cpu);
    for (const x of rows) console.log(`  ${x.tid.padEnd(8)} ${x.name.padEnd(18)} ${x.cpu.toFixed(2)}`);
  }
  await sharedWorkerHost().close();
}

await main();
