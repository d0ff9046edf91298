import readline from 'node:readline/promises';
import type { RestoreChanges } from '@cairn/core/domain/restore-changes.ts';
import { type CairnClient, UsageError } from './api-client.ts';
import type { Job, JobStarted } from './api-responses.ts';
import { type Opts, enc } from './cli-options.ts';
import { followJob } from './job-progress.ts';
import { printJson } from './output.ts';

/** The plan as lines: counts, then the sample paths of each kind (the API gives at most 20 per kind). */
export function describeChanges(changes: RestoreChanges, notes: string[] = []): string {
  const lines = [`would create ${changes.created}, change ${changes.changed}, delete ${changes.deleted}, leave ${changes.unchanged} unchanged`];
  for (const kind of ['deleted', 'changed', 'created'] as const) {
    const sample = changes.samples[kind];
    if (!sample.length) continue;
    const more = changes[kind] - sample.length;
    lines.push(`  ${kind}:`, ...sample.map((p) => `    ${p}`), ...(more > 0 ? [`    … and ${more} more`] : []));
  }
  lines.push(...notes.map((n) => `  note: ${n}`));
  return `${lines.join('\n')}\n`;
}

/** A finished restore dry-run job, as the API shows it. */
type DryRunJob = Job & { result: { changes: RestoreChanges; notes?: string[] } | null };

/** Runs a restore dry run with `body` and returns its finished job (progress on stderr). */
export async function dryRunRestore(client: CairnClient, backupId: string, body: Record<string, unknown>): Promise<DryRunJob> {
  const res = await client.request<JobStarted>('POST', `/v1/backups/${enc(backupId)}/restore`, { ...body, dryRun: true });
  const done = await followJob(client, res.job.id);
  // A restore job's result, once it has one, is the dry run's plan.
  return done.result ? (done as DryRunJob) : await client.request<DryRunJob>('GET', `/v1/jobs/${enc(res.job.id)}`);
}

/** `restore --dry-run`: prints the plan (--json: the finished dry-run job); exit 0 when the dry run succeeded. */
export async function printDryRun(client: CairnClient, backupId: string, body: Record<string, unknown>, o: Pick<Opts, 'json'>): Promise<number> {
  const job = await dryRunRestore(client, backupId, body);
  if (o.json) printJson(job);
  else if (job.status === 'succeeded' && job.result) process.stdout.write(describeChanges(job.result.changes, job.result.notes));
  else console.error(`cairn: dry run ${job.status}${job.error ? `: ${job.error}` : ''}`);
  return job.status === 'succeeded' ? 0 : 1;
}

/**
 * Before a `replace` restore without --yes: shows what it would delete and change, and asks on a
 * terminal; elsewhere (scripts) it refuses unless nothing would be deleted or changed.
 */
export async function confirmReplace(client: CairnClient, backupId: string, body: Record<string, unknown>): Promise<void> {
  const job = await dryRunRestore(client, backupId, body);
  if (job.status !== 'succeeded' || !job.result) throw new UsageError(`the restore's dry run ${job.status}${job.error ? `: ${job.error}` : ''}`);
  const changes = job.result.changes as RestoreChanges;
  process.stderr.write(describeChanges(changes, job.result.notes));
  if (changes.deleted + changes.changed === 0) return;
  const what = `this restore replaces ${changes.changed} and deletes ${changes.deleted} entries`;
  if (!process.stdin.isTTY) throw new UsageError(`${what}: pass --yes to restore anyway (--dry-run shows the plan only)`);
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  const answer = await rl.question(`${what}. Restore? [y/N] `);
  rl.close();
  if (!/^y(es)?$/i.test(answer.trim())) throw new UsageError('restore not started');
}
