import { setFlagsFromString } from 'node:v8';

/**
 * V8 flags for a process that runs a node worker, set at run time so that every way of starting
 * one has them (NODE_OPTIONS takes neither flag). They are process-wide: the archive threads,
 * which start later, get them too.
 *
 * WORKER_OPTIMIZE_FOR_SIZE (default on): V8's --optimize-for-size, heaps that grow less between
 * collections. Two backups at once in a compiled node worker peaked at 248–251 MiB with it against
 * 294–298 MiB without (issue 17, `worker-rss` bench, 2 runs each). It is not free: in
 * `npm run bench:e2e` (the all-in-one, alternating pairs) restores took ~25% longer and backups ~15%.
 *
 * WORKER_HEAP_GROWING_PERCENT (default 100; 0: V8 decides): V8's --heap-growing-percent, how far
 * the old generation may grow past what survived the last full collection before the next. Under
 * --optimize-for-size V8 makes every full collection a memory-reducing one, whose next limit sits
 * barely above what survived; a main thread that keeps promoting small objects (a restore's plan
 * items for 100k files) then marks its ~55 MB heap again after every 1–3 MB: 125 full collections
 * in one e2e restore, and the four V8 helper threads that mark used ~11.5 CPU s of its ~35
 * (issue 17, session 11). 100 lets the heap grow by its own size first: 1 full collection in the
 * same restore, which took 9.0 s instead of 21.9 s. Two backups at once peaked at 241 MiB with it
 * against 236 without (`worker-rss`, 1 run each); in session 4, with less memory work done
 * elsewhere, it cost ~20 MiB.
 *
 * Always: --no-concurrent-array-buffer-sweeping. V8 counts the bytes of every ArrayBuffer a thread
 * allocates or receives (a frame, an HTTP body chunk) towards starting its next full collection,
 * and takes a dead one's off only once its sweeper has freed it; swept concurrently, on two busy
 * cores, that came late. The store thread (~10 MB of heap, the S3 SDK) then started a full
 * collection every few MB it read: ~100 in an S3 restore of the 2 GiB set. Swept within the pause
 * (and with each range read into a reused buffer, parallel-range-reads.ts): 15–25. That restore,
 * in process against s3rver, took 8.6–10.3 s and 11.8–14.0 CPU s (9 runs) instead of 10.1–10.7 s
 * and 14.4–14.9 CPU s (3 runs) (issue 17, session 12).
 */
export function setWorkerV8Flags(config: { WORKER_OPTIMIZE_FOR_SIZE: boolean; WORKER_HEAP_GROWING_PERCENT: number }): void {
  setFlagsFromString('--no-concurrent-array-buffer-sweeping');
  if (config.WORKER_OPTIMIZE_FOR_SIZE) setFlagsFromString('--optimize-for-size');
  if (config.WORKER_HEAP_GROWING_PERCENT > 0) setFlagsFromString(`--heap-growing-percent=${config.WORKER_HEAP_GROWING_PERCENT}`);
}
