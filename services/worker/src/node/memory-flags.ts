import { setFlagsFromString } from 'node:v8';

/**
 * V8's --optimize-for-size for a process that runs a node worker: its heaps grow less between
 * collections (the main thread's and every archive thread's: the flag is process-wide and the
 * threads start after it). Set at run time so that every way of starting a node worker has it
 * (NODE_OPTIONS does not take this flag). Two backups at once in a compiled node worker peaked at
 * 248–251 MiB with it against 294–298 MiB without (issue 17, `worker-rss` bench, 2 runs each),
 * its own CPU time unchanged within the noise. It is not free, as V8 favours size over speed: in
 * `npm run bench:e2e` (the all-in-one, alternating pairs) restores took ~25% longer and backups
 * ~15%. WORKER_OPTIMIZE_FOR_SIZE=false turns it off.
 */
export function favourMemoryOverSpeed(config: { WORKER_OPTIMIZE_FOR_SIZE: boolean }): void {
  if (config.WORKER_OPTIMIZE_FOR_SIZE) setFlagsFromString('--optimize-for-size');
}
