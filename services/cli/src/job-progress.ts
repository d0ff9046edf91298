import { SingleBar, Presets } from 'cli-progress';
import type { CairnClient } from './api-client.ts';

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'interrupted']);

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * Follows a job's event stream to its end, drawing a progress bar on a terminal (plain lines
 * otherwise). Returns the final job. `stageOf` names the stage shown (default: the progress stage).
 */
export async function followJob(
  client: CairnClient,
  jobId: string,
  out: NodeJS.WriteStream = process.stderr,
  stageOf: (job: { status: string; progress?: { stage?: string } | null }) => string = (job) => job.progress?.stage ?? job.status,
): Promise<any> {
  const bar = out.isTTY
    ? new SingleBar(
        { format: '{stage} [{bar}] {percent}% | {done} of {total} | {files} files | eta {eta_formatted}', stream: out, hideCursor: true },
        Presets.shades_classic,
      )
    : null;
  let started = false;
  let last: any = null;
  let lastStage = '';
  try {
    for await (const { event, data } of client.jobEvents(jobId)) {
      last = data;
      const p = data.progress ?? {};
      const payload = {
        stage: stageOf(data),
        done: mib(p.bytesDone ?? 0),
        total: mib(p.bytesTotal ?? 0),
        files: `${p.filesDone ?? 0}/${p.filesTotal ?? 0}`,
      };
      if (bar) {
        if (!started) {
          bar.start(100, 0, payload);
          started = true;
        }
        bar.update(Math.floor(p.percent ?? 0), payload);
      } else if (payload.stage !== lastStage) {
        out.write(`${jobId}: ${payload.stage}\n`);
        lastStage = payload.stage;
      }
      if (event === 'end' || TERMINAL.has(data.status)) break;
    }
  } finally {
    if (bar && started) {
      if (last?.status === 'succeeded') bar.update(100);
      bar.stop();
    }
  }
  return last ?? (await client.request('GET', `/v1/jobs/${encodeURIComponent(jobId)}`));
}
