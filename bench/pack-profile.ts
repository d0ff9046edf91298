/**
 * Profiling aid (not part of `npm run bench`): one pack of a directory to a null sink, with the
 * CPU seconds of every thread of the process (from /proc/self/task), to see which thread is the
 * bottleneck, and the main thread's garbage collections. Usage: tsx bench/pack-profile.ts DIR [reps]
 */
import { Writable } from 'node:stream';
import { packArchive, sharedWorkerHost } from '../services/core/src/archive/index.ts';
import { watchGc, watchThreads } from './measure.ts';

async function main(): Promise<void> {
  const dir = process.argv[2]!;
  const reps = Number(process.argv[3] ?? 1);
  for (let r = 0; r < reps; r++) {
    const watch = watchThreads();
    const gcs = watchGc();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    const res = await packArchive({ volumes: [{ name: 'data', dir }], codec: 'zstd' }, sink);
    const secs = (performance.now() - t0) / 1000;
    const cu = process.cpuUsage(c0);
    const rows = watch.stop();
    const gc = gcs.stop();
    res.close();
    console.log(`wall ${secs.toFixed(2)} s, cpu ${((cu.user + cu.system) / 1e6).toFixed(2)} s, stored ${res.storedBytes}; main thread GC: ${gc}`);
    for (const x of rows) console.log(`  ${x.tid.padEnd(8)} ${x.name.padEnd(18)} user ${x.user.toFixed(2)}  sys ${x.sys.toFixed(2)}`);
  }
  await sharedWorkerHost().close();
}

await main();
