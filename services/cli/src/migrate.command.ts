import type { CairnClient } from './api-client.ts';
import type { Backup, Instance, JobStarted, MigrateJob } from './api-responses.ts';
import { followJob } from './job-progress.ts';
import { resolveInstanceId } from './instance-ref.ts';
import { printJson } from './output.ts';

/** `cairn migrate`'s flags, as parsed by main.ts. */
export interface MigrateArgs {
  /** The instance to migrate (positional); optional with --from-backup (the backup's instance). */
  instance?: string;
  toNode?: string;
  toInstance?: string;
  /** --path vol=/abs/path (move), repeatable. */
  path?: string[];
  /** --volumes a,b (copy). */
  volumes?: string;
  /** --paths p1,p2 (copy: merge these paths). */
  paths?: string;
  fromBackup?: string;
  wait: boolean;
  /** Print the API's JSON: the started job with --no-wait, else the job as it ended. */
  json?: boolean;
}

export const MIGRATE_USAGE = [
  '  migrate <instance> --to-node ID [--path volume=/abs/path]...   move the instance to another node',
  '  migrate <instance> --to-instance INSTANCE [--volumes a,b] [--paths p1,p2]   copy its data into another instance',
  '          [--from-backup BACKUP] (start from a completed backup; then <instance> may be left out) [--no-wait]',
].join('\n');

const csv = (v: string) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/** The request `cairn migrate` sends: route and body. `usage` builds the error for bad flags (exit code 2). */
export function migrateRequest(a: MigrateArgs, usage: (message: string) => Error): { route: string; body: Record<string, unknown> } {
  if (!a.toNode === !a.toInstance) throw usage('give exactly one of --to-node (move) or --to-instance (copy)');
  if (!a.instance && !a.fromBackup) throw usage('missing instance id (or --from-backup)');
  let body: Record<string, unknown>;
  if (a.toNode) {
    if (a.volumes !== undefined || a.paths !== undefined) throw usage('--volumes and --paths go with --to-instance; a move takes every volume');
    const hostPaths: Record<string, string> = {};
    for (const spec of a.path ?? []) {
      const m = /^([^=]+)=(\/.*)$/.exec(spec);
      if (!m) throw usage(`--path must be volume=/absolute/path, got ${spec}`);
      if (m[1]! in hostPaths) throw usage(`--path names volume ${m[1]} twice`);
      hostPaths[m[1]!] = m[2]!;
    }
    body = { targetNodeId: a.toNode, ...(Object.keys(hostPaths).length ? { hostPaths } : {}) };
  } else {
    if (a.path?.length) throw usage('--path volume=/path goes with --to-node; to copy some paths use --paths p1,p2');
    const volumes = a.volumes === undefined ? undefined : csv(a.volumes);
    const paths = a.paths === undefined ? undefined : csv(a.paths);
    if (volumes?.length === 0) throw usage('--volumes needs at least one volume name');
    if (paths?.length === 0) throw usage('--paths needs at least one path');
    body = { targetInstanceId: a.toInstance, ...(volumes ? { volumes } : {}), ...(paths ? { paths } : {}) };
  }
  const route = a.fromBackup ? `/v1/backups/${encodeURIComponent(a.fromBackup)}/migrate` : `/v1/instances/${encodeURIComponent(a.instance!)}/migrate`;
  return { route, body };
}

type Child = { id: string; type: string; status: string; nodeId: string | null };

/**
 * The bar's stage: the step of the newest child job at work (the handler names a child
 * `<migrate id>-<step>`; its type otherwise), which is fresher than the migrate's own throttled
 * progress, with its node; the migrate's stage when no child is at work (preflight, switch, done).
 */
export function migrateStage(job: { id?: string; status: string; progress?: { stage?: string } | null; children?: Child[] }): string {
  const stage = job.progress?.stage ?? job.status;
  const children = job.children ?? [];
  const child = children[children.length - 1];
  if (!child || (child.status !== 'running' && child.status !== 'queued')) return stage;
  const prefix = `${job.id}-`;
  const step = job.id && child.id.startsWith(prefix) ? child.id.slice(prefix.length) : child.type;
  return `${step} (${child.type} ${child.status}${child.nodeId ? ` on ${child.nodeId}` : ''})`;
}

/** `cairn migrate`: starts the migrate and, unless --no-wait, follows it to its end; 0 only when it succeeded. */
export async function migrateCommand(client: CairnClient, args: MigrateArgs, usage: (message: string) => Error): Promise<number> {
  migrateRequest(args, usage); // bad flags are refused before any request
  // Names become ids: the checks below and the request speak ids.
  const a = {
    ...args,
    ...(args.instance ? { instance: await resolveInstanceId(client, args.instance) } : {}),
    ...(args.toInstance ? { toInstance: await resolveInstanceId(client, args.toInstance, 'target instance') } : {}),
  };
  const { route, body } = migrateRequest(a, usage);
  if (a.fromBackup && a.instance) {
    const backup = await client.request<Backup>('GET', `/v1/backups/${encodeURIComponent(a.fromBackup)}`);
    if (backup.instanceId !== a.instance) throw usage(`backup ${a.fromBackup} is of instance ${backup.instanceId}, not ${a.instance}`);
  }
  const { job } = await client.request<JobStarted<MigrateJob>>('POST', route, body);
  const what = a.toNode ? `move to node ${a.toNode}` : `copy into instance ${a.toInstance}`;
  console.error(`migrate queued: ${what} (job ${job.id})`);
  if (!a.wait) {
    if (a.json) printJson({ job });
    else console.log(job.id);
    return 0;
  }
  const done = await followJob(client, job.id, process.stderr, migrateStage);
  if (a.json) {
    printJson(await client.request('GET', `/v1/jobs/${encodeURIComponent(job.id)}`));
    return done.status === 'succeeded' ? 0 : 1;
  }
  if (done.status !== 'succeeded') {
    const stage = done.progress?.stage ? ` at stage ${done.progress.stage}` : '';
    console.log(`job ${done.id} ${done.status}${stage}${done.error ? `: ${done.error}` : ''}`);
    return 1;
  }
  console.log(`job ${done.id} succeeded`);
  if (a.toNode) {
    const instance = await client.request<Instance>('GET', `/v1/instances/${encodeURIComponent(job.params.sourceInstanceId ?? job.instanceId)}`);
    const paths = instance.volumes.map((v) => `${v.name}=${v.hostPath}`).join(', ');
    console.log(`instance ${instance.id} is on node ${instance.nodeId}: ${paths}`);
  }
  return 0;
}
