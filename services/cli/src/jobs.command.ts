import { type CairnClient, UsageError } from './api-client.ts';
import type { Job, Page, Row } from './api-responses.ts';
import { type Opts, enc, need, query } from './cli-options.ts';
import { resolveInstanceId } from './instance-ref.ts';
import { followJob } from './job-progress.ts';
import { printJson, printTable } from './output.ts';

export const JOBS_USAGE = `  jobs [list] [--instance I] [--status S] [--type T] [--node ID]   job history, newest first
  jobs show <jobId>                              one job, with its children (also: job <jobId>)
  jobs watch <jobId>                             follow a job to its end (also: job <jobId> --follow)
  jobs cancel <jobId>                            cancel a queued or running job (also: cancel <jobId>)`;

/**
 * After a command started a job: waits for it (progress on stderr) unless --no-wait. Prints the job
 * id (--no-wait) or its outcome; with --json the final job. Exit 0 only when it succeeded.
 */
export async function finishJob(client: CairnClient, job: { id: string }, o: Pick<Opts, 'no-wait' | 'json'>): Promise<number> {
  if (o['no-wait']) {
    if (o.json) printJson(job);
    else console.log(job.id);
    return 0;
  }
  const done = await followJob(client, job.id);
  if (o.json) printJson(await client.request('GET', `/v1/jobs/${enc(job.id)}`));
  else console.log(`job ${done.id} ${done.status}${done.error ? `: ${done.error}` : ''}`);
  return done.status === 'succeeded' ? 0 : 1;
}

async function cancel(client: CairnClient, id: string, json: boolean): Promise<number> {
  const job = await client.request<Job>('POST', `/v1/jobs/${enc(id)}/cancel`);
  if (json) printJson(job);
  else console.log(`job ${job.id}: ${job.status === 'cancelled' ? 'cancelled' : `${job.status}, cancel requested (it ends cancelled shortly)`}`);
  return 0;
}

async function show(client: CairnClient, id: string): Promise<number> {
  printJson(await client.request('GET', `/v1/jobs/${enc(id)}`));
  return 0;
}

/** `jobs …`, and the older spellings `job <id> [--follow]` and `cancel <id>`. */
export async function jobsCommand(client: CairnClient, command: string, args: string[], o: Opts): Promise<number> {
  if (command === 'job') return o.follow ? finishJob(client, { id: need(args[0], 'job id') }, o) : show(client, need(args[0], 'job id'));
  if (command === 'cancel') return cancel(client, need(args[0], 'job id'), o.json);
  const [sub = 'list', id] = args;
  switch (sub) {
    case 'list': {
      const instance = o.instance ? await resolveInstanceId(client, o.instance) : undefined;
      const page = await client.request<Page<Row>>('GET', `/v1/jobs${query({ instance, status: o.status, type: o.type, node: o.node })}`);
      if (o.json) printJson(page);
      else printTable(page.items, ['id', 'type', 'status', 'instanceId', 'nodeId', 'createdAt', 'error']);
      return 0;
    }
    case 'show':
      return show(client, need(id, 'job id'));
    case 'watch':
      return finishJob(client, { id: need(id, 'job id') }, { json: o.json, 'no-wait': false });
    case 'cancel':
      return cancel(client, need(id, 'job id'), o.json);
    default:
      throw new UsageError(`unknown jobs command ${sub} (list, show, watch, cancel)`);
  }
}
