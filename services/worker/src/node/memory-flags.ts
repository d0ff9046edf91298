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
 * WORKER_HEAP_GROWING_PERCENT (default 0: V8 decides): V8's --heap-growing-percent, how far the old
 * generation may grow past what survived the last full collection before the next. With
 * --optimize-for-size, a heap like the all-in-one's (~38 MB live) may grow only ~10 MB, and the
 * buffers a job leaves dead on the main thread count against that margin (README, "What makes V8
 * mark so often"), so V8 marks it almost without pause while a job runs: the four GC helper
 * threads used ~4.5 CPU s of an e2e backup and restore of 512 MiB. 100 cut that to ~2 CPU s and
 * the restore from 3.0–3.3 s to 2.1 s, for ~20 MiB more at the peak of two backups (266–268 MiB
 * against 247–248).
 */
export function setWorkerV8Flags(config: { WORKER_OPTIMIZE_FOR_SIZE: boolean; WORKER_HEAP_GROWING_PERCENT: number }): void {
  if (config.WORKER_OPTIMIZE_FOR_SIZE) setFlagsFromString('--optimize-for-size');
  if (config.WORKER_HEAP_GROWING_PERCENT > 0) setFlagsFromString(`--heap-growing-percent=${config.WORKER_HEAP_GROWING_PERCENT}`);
}
