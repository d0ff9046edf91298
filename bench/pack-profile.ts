/**
 * Profiling aid (not part of `npm run bench`): one pack of a directory to a null sink, with the
 * CPU seconds of every thread of the process (from /proc/self/task), to see which thread is the
 * bottleneck, and the main thread's garbage collections and peak external memory. Usage: tsx
 * bench/pack-profile.ts DIR [reps]; PROFILE_BALLAST_MB=30 gives the main isolate a service's heap;
 * PROFILE_SINK=main drops the frames on the main thread instead of the bench's nullSink (measure.ts);
 * PROFILE_CODEC=none|gzip packs with that codec instead of zstd (what the pipeline costs without compression).
 */
import { Writable } from 'node:stream';
import { packArchive, sharedWorkerHost, type Codec } from '../services/core/src/archive/index.ts';
import { ballastFromEnv, nullSink, watchExternal, watchGc, watchThreads } from './measure.ts';

async function main(): Promise<void> {
  const dir = process.argv[2]!;
  const reps = Number(process.argv[3] ?? 1);
  const ballast = ballastFromEnv();
  for (let r = 0; r < reps; r++) {
    const watch = watchThreads();
    const gcs = watchGc();
    const external = watchExternal();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const sink = process.env.PROFILE_SINK === 'main' ? new Writable({ write: (_c, _e, cb) => cb() }) : nullSink();
    const res = await packArchive({ volumes: [{ name: 'data', dir }], codec: (process.env.PROFILE_CODEC ?? 'zstd') as Codec }, sink);
    const secs = (performance.now() - t0) / 1000;
    const cu = process.cpuUsage(c0);
    const rows = watch.stop();
    const gc = gcs.stop();
    const externalPeak = external.stop();
    res.close();
    console.log(
      `wall ${secs.toFixed(2)} s, cpu ${((cu.user + cu.system) / 1e6).toFixed(2)} s, stored ${res.storedBytes}; ` +
        `main thread GC: ${gc}; its external memory peaked at ${externalPeak.toFixed(0)} MiB`,
    );
    for (const x of rows) console.log(`  ${x.tid.padEnd(8)} ${x.name.padEnd(18)} user ${x.user.toFixed(2)}  sys ${x.sys.toFixed(2)}`);
  }
  if (ballast.length) console.log(`(ballast: ${ballast.length} objects)`);
  await sharedWorkerHost().close();
}

await main();
