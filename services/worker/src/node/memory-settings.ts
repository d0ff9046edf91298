/**
 * Process-wide memory settings of a worker process (issue 17: a node worker ≤ 256 MiB RSS with two
 * backups at once). Imported first by the worker's entry point, for its side effect: the young
 * generation already grows while the AWS SDK, Prisma and BullMQ load, and never shrinks back.
 */
import v8 from 'node:v8';

/**
 * Keeps V8's young generation at its initial size (1 MiB semi-spaces) instead of letting it grow
 * to 16 MiB semi-spaces (~48 MiB per isolate) under the allocation rate of a backup: a node
 * worker's data lives in buffers outside the V8 heap, so the larger nursery only holds RSS.
 * `--max-semi-space-size` would do it, but only on the command line, and the image runs plain
 * `node dist/worker.js`; the growth factor is read each time V8 would grow the space, so setting
 * it at start-up works. V8 flags are process-wide: the archive threads get it too.
 */
function keepYoungGenerationSmall(): void {
  v8.setFlagsFromString('--semi-space-growth-factor=1');
}

keepYoungGenerationSmall();
