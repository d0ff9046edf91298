import fs from 'node:fs';
import { type CairnClient, UsageError } from './api-client.ts';
import type { Coverage, DeletedInstance, Instance, NodeDetail, Page, Row } from './api-responses.ts';
import { type Opts, enc, need, query } from './cli-options.ts';
import { type InstanceSummary, resolveInstanceId } from './instance-ref.ts';
import { humanBytes, printJson, printTable } from './output.ts';

export const INSTANCES_USAGE = `  nodes [list] | nodes show <nodeId>             nodes, their heartbeat and free space per volume root
  instances [list] [--tenant T] [--node ID]      list instances
  instances show <instance>                      one instance: volumes, excludes, hooks
  instances create --name N --node ID --volume name=/path [--volume ...] [--exclude name=GLOB]... [--tenant T] [--hooks FILE]
                                                 register an instance (also: register ...); --hooks: a YAML/JSON file of
                                                 {preBackup, postBackup, preRestore, postRestore}
  instances update <instance> [--name N] [--node ID] [--volume name=/path]... [--exclude name=GLOB]...
                   [--hooks FILE | --no-hooks] [--rotate-hook-secret]
                                                 change it; --volume replaces the whole set, --exclude alone replaces
                                                 the named volumes' excludes
  instances delete <instance> [--force]          remove it (--force: with all its backups)
  coverage <instance>                            which volumes can be backed up, free space of their roots`;

type Volume = { name: string; hostPath: string; excludes?: string[] };

/** --volume name=/path and --exclude name=GLOB as the API's volume list (`base`: the volumes to add excludes to). */
function volumesFrom(o: Opts, base: Volume[] | null): Volume[] | undefined {
  let volumes: Volume[] | undefined = o.volume?.map((spec) => {
    const m = /^([^=]+)=(\/.*)$/.exec(spec);
    if (!m) throw new UsageError(`--volume must be name=/absolute/path, got ${spec}`);
    return { name: m[1]!, hostPath: m[2]! };
  });
  if (o.exclude?.length) {
    volumes ??= base?.map((v) => ({ ...v })) ?? [];
    const cleared = new Set<string>();
    for (const spec of o.exclude) {
      const m = /^([^=]+)=(.+)$/.exec(spec);
      if (!m) throw new UsageError(`--exclude must be volume=GLOB, got ${spec}`);
      const v = volumes.find((x) => x.name === m[1]);
      if (!v) throw new UsageError(`--exclude names volume ${m[1]}, which is not among the volumes`);
      // The first --exclude of a volume replaces its list; the next ones add to it.
      if (!cleared.has(v.name)) {
        v.excludes = [];
        cleared.add(v.name);
      }
      v.excludes!.push(m[2]!);
    }
  }
  return volumes;
}

async function hooksFrom(o: Opts): Promise<unknown> {
  if (o.hooks && o['no-hooks']) throw new UsageError('--hooks and --no-hooks exclude each other');
  if (o['no-hooks']) return null;
  if (!o.hooks) return undefined;
  let text: string;
  try {
    text = fs.readFileSync(o.hooks, 'utf8');
  } catch (err) {
    throw new UsageError(`--hooks: cannot read ${o.hooks}: ${(err as Error).message}`);
  }
  const { parse } = await import('yaml'); // only for --hooks: most calls need no YAML parser
  try {
    return parse(text);
  } catch (err) {
    throw new UsageError(`--hooks: ${o.hooks} is not YAML/JSON: ${(err as Error).message}`);
  }
}

function describeInstance(i: InstanceSummary & { volumes: Volume[]; hooks?: unknown; hookSecret?: string }, verb: string): void {
  console.log(`instance ${i.tenant}/${i.name} (${i.id}) ${verb} on node ${i.nodeId}`);
  for (const v of i.volumes) console.log(`  volume ${v.name}: ${v.hostPath}${v.excludes?.length ? ` (excludes ${v.excludes.join(', ')})` : ''}`);
  if (i.hooks && typeof i.hooks === 'object') {
    for (const [when, h] of Object.entries(i.hooks as Record<string, { type: string; url?: string; name?: string }>)) {
      console.log(`  hook ${when}: ${h.type} ${h.url ?? h.name ?? ''}`);
    }
  }
  if (i.hookSecret) console.log(`  hook secret (shown only now; webhooks are signed with it): ${i.hookSecret}`);
}

/** `instances …`, `register`, `coverage` and `nodes`. */
export async function instancesCommand(client: CairnClient, command: string, args: string[], o: Opts): Promise<number> {
  if (command === 'nodes') {
    const [sub = 'list', id] = args;
    if (sub === 'show') {
      const node = await client.request<NodeDetail>('GET', `/v1/nodes/${enc(need(id, 'node id'))}`);
      if (o.json) printJson(node);
      else {
        printTable([node], ['id', 'status', 'heartbeatAgeSeconds', 'runningJobs', 'queuedJobs', 'version']);
        // capacity: {roots: {"/path": {freeBytes, totalBytes}}} from the node's last heartbeat.
        const roots = node.capacity?.roots ?? {};
        for (const root of node.volumeRoots) {
          const c = roots[root];
          console.log(`root ${root}${c ? `: ${humanBytes(c.freeBytes)} free of ${humanBytes(c.totalBytes)}` : ''}`);
        }
      }
      return 0;
    }
    if (sub !== 'list') throw new UsageError(`unknown nodes command ${sub} (list, show)`);
    const page = await client.request<Page<Row>>('GET', '/v1/nodes');
    if (o.json) printJson(page);
    else printTable(page.items, ['id', 'status', 'heartbeatAgeSeconds', 'runningJobs', 'version']);
    return 0;
  }
  if (command === 'coverage') {
    const coverage = await client.request<Coverage>('GET', `/v1/instances/${enc(await resolveInstanceId(client, need(args[0], 'instance')))}/coverage`);
    if (o.json) printJson(coverage);
    else {
      const rows = coverage.volumes.map((v) => ({ ...v, freeBytes: humanBytes(v.freeBytes), totalBytes: humanBytes(v.totalBytes) }));
      printTable(rows, ['name', 'hostPath', 'covered', 'root', 'freeBytes', 'totalBytes', 'reason']);
    }
    return 0;
  }
  const [sub = 'list', ...rest] = command === 'register' ? ['create', ...args] : args;
  switch (sub) {
    case 'list': {
      const page = await client.request<Page<Row>>('GET', `/v1/instances${query({ tenant: o.tenant, node: o.node, limit: '500' })}`);
      if (o.json) printJson(page);
      else printTable(page.items, ['id', 'name', 'tenant', 'nodeId']);
      return 0;
    }
    case 'show': {
      const instance = await client.request<Instance>('GET', `/v1/instances/${enc(await resolveInstanceId(client, need(rest[0], 'instance')))}`);
      if (o.json) printJson(instance);
      else describeInstance(instance, 'is');
      return 0;
    }
    case 'create': {
      const volumes = volumesFrom(o, null);
      if (!volumes?.length) throw new UsageError('at least one --volume name=/path');
      const hooks = await hooksFrom(o);
      const body = {
        name: need(o.name, '--name'),
        nodeId: need(o.node, '--node'),
        volumes,
        ...(o.tenant ? { tenant: o.tenant } : {}),
        ...(hooks ? { hooks } : {}),
      };
      const instance = await client.request<Instance>('POST', '/v1/instances', body);
      if (o.json) printJson(instance);
      else describeInstance(instance, 'created');
      return 0;
    }
    case 'update': {
      const id = await resolveInstanceId(client, need(rest[0], 'instance'));
      const current = o.exclude?.length && !o.volume ? await client.request<Instance>('GET', `/v1/instances/${enc(id)}`) : null;
      const volumes = volumesFrom(o, current?.volumes ?? null);
      const hooks = await hooksFrom(o);
      const body = {
        ...(o.name ? { name: o.name } : {}),
        ...(o.node ? { nodeId: o.node } : {}),
        ...(volumes ? { volumes } : {}),
        ...(hooks !== undefined ? { hooks } : {}),
        ...(o['rotate-hook-secret'] ? { rotateHookSecret: true } : {}),
      };
      if (!Object.keys(body).length)
        throw new UsageError('nothing to change: give --name, --node, --volume, --exclude, --hooks, --no-hooks or --rotate-hook-secret');
      const instance = await client.request<Instance>('PATCH', `/v1/instances/${enc(id)}`, body);
      if (o.json) printJson(instance);
      else describeInstance(instance, 'updated');
      return 0;
    }
    case 'delete': {
      const id = await resolveInstanceId(client, need(rest[0], 'instance'));
      const res = await client.request<DeletedInstance>('DELETE', `/v1/instances/${enc(id)}${o.force ? '?force=true' : ''}`);
      if (o.json) printJson(res);
      else {
        const extra = res.deletedBackups ? ` with ${res.deletedBackups} backup(s)` : '';
        console.log(`instance ${res.id} deleted${extra}${res.cancelledJobs.length ? `; cancelled jobs ${res.cancelledJobs.join(', ')}` : ''}`);
      }
      return 0;
    }
    default:
      throw new UsageError(`unknown instances command ${sub} (list, show, create, update, delete)`);
  }
}
