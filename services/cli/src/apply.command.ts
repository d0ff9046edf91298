import type { CairnClient } from './api-client.ts';
import { UsageError } from './api-client.ts';
import type { Page } from './api-responses.ts';
import { readApplyFile } from './apply/apply-file.ts';
import {
  type CurrentInstance,
  type CurrentNode,
  type CurrentPolicy,
  type CurrentSchedule,
  type CurrentState,
  type Step,
  planApply,
} from './apply/apply-plan.ts';
import type { Opts } from './cli-options.ts';
import { listAllInstances } from './instance-ref.ts';
import { printJson } from './output.ts';

/** What the server has for the file's instances: all instances and nodes, and the policy and schedules apply compares. */
async function fetchCurrent(client: CairnClient, wanted: { policy: boolean; schedules: boolean; name: string; tenant?: string }[]): Promise<CurrentState> {
  const instances = (await listAllInstances(client)) as unknown as CurrentInstance[];
  const nodes = (await client.request<Page<CurrentNode>>('GET', '/v1/nodes')).items;
  const policies = new Map<string, CurrentPolicy>();
  const schedules = new Map<string, CurrentSchedule[]>();
  for (const w of wanted) {
    const matches = instances.filter((i) => i.name === w.name && (w.tenant === undefined || i.tenant === w.tenant));
    if (matches.length !== 1) continue; // absent (created) or ambiguous (the plan says so)
    const id = matches[0]!.id;
    if (w.policy) policies.set(id, await client.request<CurrentPolicy>('GET', `/v1/instances/${encodeURIComponent(id)}/policy`));
    if (w.schedules)
      schedules.set(id, (await client.request<Page<CurrentSchedule>>('GET', `/v1/instances/${encodeURIComponent(id)}/schedules?limit=500`)).items);
  }
  return { instances, nodes, policies, schedules };
}

function printStep(s: Step, verb: (a: Step['action']) => string): void {
  console.log(`${s.object}: ${verb(s.action)}`);
  for (const c of s.changes) console.log(`    ${c}`);
}

const PLANNED: Record<Step['action'], string> = { create: 'create', update: 'update', unchanged: 'unchanged', delete: 'delete', kept: 'kept' };
const DONE: Record<Step['action'], string> = { create: 'created', update: 'updated', unchanged: 'unchanged', delete: 'deleted', kept: 'kept' };

function summary(steps: Step[], done: boolean): string {
  const changing = steps.filter((s) => s.request);
  if (!changing.length) return `no changes (${steps.length} object${steps.length === 1 ? '' : 's'} up to date)`;
  const count = (a: Step['action']) => steps.filter((s) => s.action === a).length;
  const words = done ? DONE : { create: 'to create', update: 'to update', delete: 'to delete', unchanged: 'unchanged', kept: 'kept' };
  return (['create', 'update', 'delete', 'unchanged'] as const)
    .filter((a) => count(a))
    .map((a) => `${count(a)} ${words[a]}`)
    .join(', ');
}

/**
 * `cairn apply -f FILE`: reads and checks the file, compares it with the server, prints the plan;
 * unless --dry-run, sends the requests in order (an instance before its policy and schedules) and
 * stops at the first refusal (exit 1, the API's message). A second apply of the same file changes nothing.
 */
export async function applyCommand(client: CairnClient, o: Opts): Promise<number> {
  if (!o.file) throw new UsageError('missing -f FILE (the YAML file to apply; - reads stdin)');
  const desired = readApplyFile(o.file);
  const source = o.file === '-' ? 'stdin' : o.file;
  const current = await fetchCurrent(
    client,
    desired.instances.map((d) => ({ name: d.name, tenant: d.tenant, policy: d.policy !== undefined, schedules: d.schedules !== undefined })),
  );
  const steps = planApply(desired, current, { prune: o.prune, source });
  const dryRun = o['dry-run'];
  if (dryRun || !steps.some((s) => s.request)) {
    if (o.json) printJson({ dryRun, changed: false, steps: steps.map(({ request: _r, ...s }) => s) });
    else {
      if (dryRun) console.log('dry run: nothing is changed');
      for (const s of steps) printStep(s, (a) => PLANNED[a]);
      console.log(summary(steps, false));
    }
    return 0;
  }
  const ids = new Map<string, string>();
  for (const s of steps) {
    if (!s.request) {
      if (!o.json) printStep(s, (a) => DONE[a]);
      continue;
    }
    const id = ids.get(s.instance);
    const path = s.request.path.replace('{instance}', encodeURIComponent(id ?? ''));
    if (path.includes('/instances//')) throw new Error(`internal: ${s.object} needs its instance's id`);
    // What was written (an instance, policy or schedule): `id` is read after an instance's create only.
    const res = await client.request<{ id: string; hookSecret?: string }>(s.request.method, path, s.request.body);
    if (s.object.startsWith('instance ') && s.action === 'create') ids.set(s.instance, res.id);
    if (!o.json) {
      printStep(s, (a) => DONE[a]);
      if (res?.hookSecret) console.log(`    hook secret (shown only now; webhooks are signed with it): ${res.hookSecret}`);
    }
  }
  if (o.json) printJson({ dryRun: false, changed: true, steps: steps.map(({ request: _r, ...s }) => s) });
  else console.log(summary(steps, true));
  return 0;
}
