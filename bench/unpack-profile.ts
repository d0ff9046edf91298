/**
 * Profiling aid (not part of `npm run bench`): packs a directory once into a local archive, then
 * unpacks it (reps times) with the CPU seconds, user and system, of every thread of the process
 * (from /proc/self/task), to see which thread bounds a restore and how much of it is the kernel.
 * Usage: tsx bench/unpack-profile.ts DIR SCRATCH [reps]; UNPACK_PROFILE=<file> writes the main thread's
 * V8 CPU profile of the last unpack there (CAIRN_ARCHIVE_PROFILE=<dir> profiles the archive threads).
 */
import { createReadStream, createWriteStream, readdirSync, readFileSync, rmSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packArchive, sharedWorkerHost, unpackArchive } from '../services/core/src/archive/index.ts';

const CLK = 100;

function threads(): Map<string, { name: string; user: number; sys: number }> {
  const out = new Map<string, { name: string; user: number; sys: number }>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, { name, user: Number(f[11]) / CLK, sys: Number(f[12]) / CLK });
    } catch {
      // thread ended
    }
  }
  return out;
}

async function main(): Promise<void> {
  const [dir, scratch] = [process.argv[2]!, process.argv[3]!];
  const reps = Number(process.argv[4] ?? 1);
  const archive = join(scratch, 'profile.tar.zst');
  const packed = await packArchive({ volumes: [{ name: 'data', dir }], codec: 'zstd' }, createWriteStream(archive));
  const index = packed.index;
  for (let r = 0; r < reps; r++) {
    const target = join(scratch, 'out');
    rmSync(target, { recursive: true, force: true });
    const before = threads();
    const seen = new Map<string, { name: string; user: number; sys: number }>();
    const timer = setInterval(() => {
      for (const [tid, t] of threads()) seen.set(tid, t);
    }, 50);
    const session = process.env.UNPACK_PROFILE ? new Session() : undefined;
    if (session) {
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    }
    const t0 = performance.now();
    await unpackArchive({ target, index, source: { stream: createReadStream(archive, { highWaterMark: 1 << 20 }) } });
    const secs = (performance.now() - t0) / 1000;
    if (session) {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(process.env.UNPACK_PROFILE!, JSON.stringify(profile));
      session.disconnect();
    }
    clearInterval(timer);
    for (const [tid, t] of threads()) seen.set(tid, t);
    const rows = [...seen].map(([tid, t]) => {
      const b = before.get(tid);
      return { tid, name: t.name, user: t.user - (b?.user ?? 0), sys: t.sys - (b?.sys ?? 0) };
    });
    const active = rows.filter((x) => x.user + x.sys > 0.015).sort((a, b) => b.user + b.sys - a.user - a.sys);
    const total = active.reduce((s, x) => ({ user: s.user + x.user, sys: s.sys + x.sys }), { user: 0, sys: 0 });
    console.log(`wall ${secs.toFixed(2)} s, cpu user ${total.user.toFixed(2)} s, system ${total.sys.toFixed(2)} s`);
    for (const x of active) console.log(`  ${x.tid.padEnd(8)} ${x.name.padEnd(18)} user ${x.user.toFixed(2)}  sys ${x.sys.toFixed(2)}`);
  }
  packed.close?.();
  await sharedWorkerHost().close();
}

await main();
