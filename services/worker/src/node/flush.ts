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

/** What FlushAhead is told as a restore writes (its progress reports). */
export interface WriteProgress {
  bytesDone: number;
  bytesTotal: number;
  filesTotal: number;
}

/**
 * Flushes while a restore is still writing many small files, one flush at a time, each once
 * `every` more bytes were written. The kernel otherwise keeps such a restore in the page cache
 * until the flush before the swap, which then waits for all of it with the cores idle. Data whose
 * files average `smallBelow` bytes or more is left alone: the extractor writes large files back
 * itself as it writes them, and a full run flushing ahead on top of that was slower (session 15).
 * A failure here is not reported: the flush before the swap reports it.
 */
export class FlushAhead {
  private running: Promise<void> | undefined;
  private next: number;
  /** Decided by the first report: whether this restore's files are small enough on average. */
  private active: boolean | undefined;

  constructor(
    private readonly flush: () => Promise<unknown>,
    private readonly o: { every: number; smallBelow: number },
  ) {
    this.next = o.every;
  }

  /** Told the progress so far. */
  wrote(p: WriteProgress): void {
    this.active ??= p.filesTotal > 0 && p.bytesTotal / p.filesTotal < this.o.smallBelow;
    if (!this.active || this.running || p.bytesDone < this.next) return;
    this.next = p.bytesDone + this.o.every;
    this.running = this.flush().then(
      () => undefined,
      () => undefined,
    );
    void this.running.finally(() => {
      this.running = undefined;
    });
  }

  /** Resolves when no flush is running. */
  async settled(): Promise<void> {
    await this.running;
  }
}
