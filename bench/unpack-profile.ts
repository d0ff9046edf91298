/**
 * Profiling aid (not part of `npm run bench`): packs a directory once into a local archive, then
 * unpacks it (reps times) with the CPU seconds, user and system, of every thread of the process
 * (from /proc/self/task), to see which thread bounds a restore and how much of it is the kernel.
 * Usage: tsx bench/unpack-profile.ts DIR SCRATCH [reps]; UNPACK_PROFILE_KEEP=1 keeps the restored trees,
 * UNPACK_PROFILE_PRELOADED=1 reads the archive from memory; UNPACK_PROFILE_SPILLED=1 reads the index
 * back from its stored form, as a restore does (entries in a temporary file); UNPACK_PROFILE=<file> writes the main thread's
 * V8 CPU profile of the last unpack there (CAIRN_ARCHIVE_PROFILE=<dir> profiles the archive threads);
 * PROFILE_BALLAST_MB=30 gives the main isolate a service's heap (measure.ts). UNPACK_PROFILE_SOURCE: `thread`
 * (default: range reads by the store thread, as a restore makes them), `main` (the same on the main thread), `stream` (one file stream).
 * UNPACK_PROFILE_SLOTS=ab alternates runs with and without the shared slab (shared-slab.ts), a number sets its slots.
 */
import { createReadStream, createWriteStream, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { encodeIndex, readIndex } from '../services/core/src/archive/archive-index.ts';
import { fileRangeReader, fileSource, packArchive, sharedWorkerHost, unpackArchive } from '../services/core/src/archive/index.ts';
import { ballastFromEnv, watchExternal, watchGc, watchThreads } from './measure.ts';

async function main(): Promise<void> {
  const [dir, scratch] = [process.argv[2]!, process.argv[3]!];
  const reps = Number(process.argv[4] ?? 1);
  const ballast = ballastFromEnv();
  const archive = join(scratch, 'profile.tar.zst');
  const packed = await packArchive({ volumes: [{ name: 'data', dir }], codec: 'zstd' }, createWriteStream(archive));
  // UNPACK_PROFILE_SPILLED=1: the index as a restore has it, read back from its stored form (entries in a temporary file).
  const index = process.env.UNPACK_PROFILE_SPILLED === '1' ? await readIndex(Readable.from([encodeIndex(packed.index)])) : packed.index;
  // UNPACK_PROFILE_PRELOADED=1: the archive comes from memory, in 1 MiB slices (no file reads in the profile).
  const whole = process.env.UNPACK_PROFILE_PRELOADED === '1' ? readFileSync(archive) : undefined;
  for (let r = 0; r < reps; r++) {
    // A fresh directory every run, as the bench does: on this VM's ext4, creating files soon after
    // removing a large tree is much slower (TOOLCHAIN.md). UNPACK_PROFILE_KEEP=1 keeps them all.
    const target = join(scratch, `out-${process.pid}-${r}`);
    const watch = watchThreads();
    const gcs = watchGc();
    const external = watchExternal();
    const session = process.env.UNPACK_PROFILE ? new Session() : undefined;
    if (session) {
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    }
    const t0 = performance.now();
    const stream = whole
      ? Readable.from(
          (function* () {
            for (let o = 0; o < whole.length; o += 1 << 20) yield whole.subarray(o, o + (1 << 20));
          })(),
          { objectMode: false },
        )
      : createReadStream(archive, { highWaterMark: 1 << 20 });
    const how = process.env.UNPACK_PROFILE_SOURCE ?? 'thread';
    // UNPACK_PROFILE_SLOTS=ab: even runs with the shared slab, odd ones without (sharedSlots 0); a number: that many slots.
    const slotsSetting = process.env.UNPACK_PROFILE_SLOTS;
    const sharedSlots = slotsSetting === 'ab' ? (r % 2 ? 0 : undefined) : slotsSetting ? Number(slotsSetting) : undefined;
    if (slotsSetting) console.log(`shared slab: ${sharedSlots === 0 ? 'off' : `${sharedSlots ?? 'default'} slots`}`);
    const slots = sharedSlots === undefined ? {} : { sharedSlots };
    if (how === 'stream' || whole) await unpackArchive({ target, index, source: { stream }, ...slots });
    else {
      stream.destroy();
      await unpackArchive({ target, index, source: how === 'main' ? { rangeReader: fileRangeReader(archive) } : fileSource(archive), ...slots });
    }
    const secs = (performance.now() - t0) / 1000;
    if (session) {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(process.env.UNPACK_PROFILE!, JSON.stringify(profile));
      session.disconnect();
    }
    const active = watch.stop();
    const gc = gcs.stop();
    const externalPeak = external.stop();
    const total = active.reduce((s, x) => ({ user: s.user + x.user, sys: s.sys + x.sys }), { user: 0, sys: 0 });
    console.log(
      `wall ${secs.toFixed(2)} s, cpu user ${total.user.toFixed(2)} s, system ${total.sys.toFixed(2)} s; ` +
        `main thread GC: ${gc}; its external memory peaked at ${externalPeak.toFixed(0)} MiB`,
    );
    for (const x of active) console.log(`  ${x.tid.padEnd(8)} ${x.name.padEnd(18)} user ${x.user.toFixed(2)}  sys ${x.sys.toFixed(2)}`);
    if (process.env.UNPACK_PROFILE_KEEP !== '1') rmSync(target, { recursive: true, force: true });
  }
  packed.close?.();
  if (ballast.length) console.log(`(ballast: ${ballast.length} objects)`);
  await sharedWorkerHost().close();
}

await main();
