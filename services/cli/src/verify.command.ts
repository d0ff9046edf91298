import type { CairnClient } from './api-client.ts';
import type { JobStarted } from './api-responses.ts';
import { followJob } from './job-progress.ts';
import { humanBytes, printJson } from './output.ts';

/** `cairn verify`'s flags, as parsed by main.ts. */
export interface VerifyArgs {
  backup?: string;
  level?: string;
  samplePercent?: string;
  wait: boolean;
  /** Print the API's JSON: the started job with --no-wait, else the job as it ended. */
  json?: boolean;
}

export const VERIFY_USAGE =
  '  verify <backupId> [--level quick|sample|full] [--sample-percent N] [--no-wait]\n' +
  '                                                 check a backup against what is stored (default sample, 10%)';

const LEVELS = ['quick', 'sample', 'full'];

/** The body `cairn verify` sends. `usage` builds the error for bad flags (exit code 2). */
export function verifyRequest(a: VerifyArgs, usage: (message: string) => Error): { route: string; body: Record<string, unknown> } {
  if (!a.backup) throw usage('missing backup id');
  const level = a.level ?? 'sample';
  if (!LEVELS.includes(level)) throw usage(`--level must be one of ${LEVELS.join(', ')}`);
  let samplePercent: number | undefined;
  if (a.samplePercent !== undefined) {
    if (level !== 'sample') throw usage('--sample-percent goes with --level sample');
    samplePercent = Number(a.samplePercent);
    if (!/^\d+(\.\d+)?$/.test(a.samplePercent) || samplePercent <= 0 || samplePercent > 100)
      throw usage('--sample-percent must be a number above 0, at most 100');
  }
  return { route: `/v1/backups/${encodeURIComponent(a.backup)}/verify`, body: { level, ...(samplePercent !== undefined ? { samplePercent } : {}) } };
}

/**
 * `cairn verify`: starts the verify job and (unless --no-wait) follows it. Exit 0 when the backup
 * verified, 1 when the job failed (what was wrong printed), the job id alone with --no-wait.
 */
export async function verifyCommand(client: CairnClient, a: VerifyArgs, usage: (message: string) => Error): Promise<number> {
  const { route, body } = verifyRequest(a, usage);
  const res = await client.request<JobStarted>('POST', route, body);
  console.error(`verify queued (job ${res.job.id}, level ${String(body.level)})`);
  if (!a.wait) {
    if (a.json) printJson(res);
    else console.log(res.job.id);
    return 0;
  }
  const done = await followJob(client, res.job.id);
  if (a.json) {
    printJson(await client.request('GET', `/v1/jobs/${encodeURIComponent(res.job.id)}`));
    return done.status === 'succeeded' ? 0 : 1;
  }
  if (done.status === 'succeeded') {
    const r = (done.result ?? {}) as { filesChecked?: number; blocksChecked?: number; bytesRead?: number };
    const counts = `${r.filesChecked ?? 0} files, ${r.blocksChecked ?? 0} blocks checked, ${humanBytes(r.bytesRead ?? 0)} read`;
    console.log(`backup ${a.backup} verified (${String(body.level)}): ${counts}`);
    return 0;
  }
  console.log(`job ${done.id} ${done.status}${done.error ? `: ${done.error}` : ''}`);
  return 1;
}
