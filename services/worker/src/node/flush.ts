/**
 * Flushing a filesystem to disk. A restore flushes its staging copy before swapping it into place
 * and removing what it replaced: without that, a power loss after the swap could leave neither
 * (the new files' blocks still in the page cache while the renames and the removal were written).
 */
import { execFile } from 'node:child_process';

/** Long enough for a slow disk to write out a large restore; a hung device fails the flush. */
const FLUSH_TIMEOUT_MS = 10 * 60_000;

/**
 * syncfs(2) of the filesystem holding `dir`, through coreutils' `sync --file-system` (in a child
 * process, so the event loop runs on while the disk catches up). A `sync` without that option (not
 * coreutils) flushes every filesystem instead. Resolves to undefined once flushed, or to why it
 * could not be.
 */
export async function flushFilesystem(dir: string): Promise<string | undefined> {
  const failed = await run(['--file-system', dir]);
  if (failed === undefined || !/unrecognized|illegal|invalid option|usage/i.test(failed)) return failed;
  return run([]);
}

function run(args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('sync', args, { timeout: FLUSH_TIMEOUT_MS }, (err, _stdout, stderr) => resolve(err ? String(stderr).trim() || err.message : undefined));
  });
}
