import { Presets, SingleBar } from 'cli-progress';
import type { CairnClient } from './api-client.ts';
import type { Job, JobProgress } from './api-responses.ts';
import { humanBytes } from './output.ts';

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'interrupted']);

/**
 * The bar's line. `{bar}`, `{percentage}` and `{eta_formatted}` are cli-progress's own tokens (its
 * value runs 0-100); the byte counts are payload tokens of ours, named so they do not shadow its
 * `{value}`/`{total}`.
 */
export const PROGRESS_FORMAT = '{stage} [{bar}] {percentage}% | {doneBytes} of {totalBytes} | {files} files | eta {eta_formatted}';

/** What Ctrl-C while waiting prints: the job is not stopped by it, and how to stop it. */
export function detachedMessage(jobId: string): string {
  return `cairn: stopped watching; job ${jobId} keeps running on the server.\nTo cancel it: cairn jobs cancel ${jobId}\n`;
}

/**
 * Follows a job's event stream to its end, drawing a progress bar on a terminal (a line per stage
 * otherwise). Returns the final job. `stageOf` names the stage shown (default: the progress stage).
 * Ctrl-C stops watching only: it says so, with the cancel command, and exits 130.
 */
export async function followJob(
  client: CairnClient,
  jobId: string,
  out: NodeJS.WriteStream = process.stderr,
  stageOf: (job: { status: string; progress?: { stage?: string } | null }) => string = (job) => job.progress?.stage ?? job.status,
): Promise<Job> {
  const bar = out.isTTY ? new SingleBar({ format: PROGRESS_FORMAT, stream: out, hideCursor: true }, Presets.shades_classic) : null;
  let started = false;
  const onInterrupt = () => {
    if (bar && started) bar.stop();
    out.write(`\n${detachedMessage(jobId)}`);
    process.exit(130);
  };
  process.once('SIGINT', onInterrupt);
  let last: Job | null = null;
  let lastStage = '';
  try {
    for await (const { event, data } of client.jobEvents(jobId)) {
      last = data;
      const p: Partial<JobProgress> = data.progress ?? {};
      const payload = {
        stage: stageOf(data),
        doneBytes: humanBytes(p.bytesDone ?? 0),
        totalBytes: humanBytes(p.bytesTotal ?? 0),
        files: `${p.filesDone ?? 0}/${p.filesTotal ?? 0}`,
      };
      if (bar) {
        if (!started) {
          bar.start(100, 0, payload);
          started = true;
        }
        bar.update(Math.min(100, Math.floor(p.percent ?? 0)), payload);
      } else if (payload.stage !== lastStage) {
        out.write(`${jobId}: ${payload.stage}\n`);
        lastStage = payload.stage;
      }
      if (event === 'end' || TERMINAL.has(data.status)) break;
    }
  } finally {
    process.removeListener('SIGINT', onInterrupt);
    if (bar && started) {
      if (last?.status === 'succeeded') bar.update(100);
      bar.stop();
    }
  }
  return last ?? (await client.request<Job>('GET', `/v1/jobs/${encodeURIComponent(jobId)}`));
}
