import { UsageError } from '../api-client.ts';
import type { DesiredInstance, DesiredSchedule, DesiredState } from './apply-file.ts';

/** What the server has, as the API answers it (the parts apply compares). */
export interface CurrentVolume {
  name: string;
  hostPath: string;
  excludes: string[];
}
export interface CurrentInstance {
  id: string;
  name: string;
  tenant: string;
  nodeId: string;
  volumes: CurrentVolume[];
  hooks: unknown;
}
export interface CurrentPolicy {
  manualBackupLimit: number | null;
  manualRetention: Record<string, number> | null;
  timezone: string;
}
export interface CurrentSchedule {
  id: string;
  cron: string;
  timezone: string;
  retention: Record<string, number>;
  volumes: string[] | null;
  enabled: boolean;
}
export interface CurrentNode {
  id: string;
  volumeRoots: string[];
}
export interface CurrentState {
  instances: CurrentInstance[];
  nodes: CurrentNode[];
  /** By instance id; only for instances of the file that exist and have a `policy` there. */
  policies: Map<string, CurrentPolicy>;
  /** By instance id; only for instances of the file that exist and have `schedules` there. */
  schedules: Map<string, CurrentSchedule[]>;
}

export type Action = 'create' | 'update' | 'unchanged' | 'delete' | 'kept';

/**
 * One object of the plan and the request that makes it so. `path` may hold `{instance}`: the id
 * of the step's instance, known only once a `create` before it has run.
 */
export interface Step {
  object: string;
  action: Action;
  changes: string[];
  instance: string;
  request?: { method: 'POST' | 'PATCH' | 'DELETE'; path: string; body?: unknown };
}

/** JSON with sorted keys: objects equal in content compare equal whatever the key order. */
export function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, x]) => `${JSON.stringify(k)}:${stable(x)}`)
      .join(',')}}`;
  }
  return JSON.stringify(v ?? null);
}

const volumeText = (v: { name: string; hostPath: string; excludes?: string[] }) =>
  `${v.name}=${v.hostPath}${v.excludes?.length ? ` (excludes ${v.excludes.join(', ')})` : ''}`;
const volumesKey = (vs: { name: string; hostPath: string; excludes?: string[] }[]) =>
  stable([...vs].sort((a, b) => (a.name < b.name ? -1 : 1)).map((v) => ({ name: v.name, hostPath: v.hostPath, excludes: v.excludes ?? [] })));
const rules = (r: Record<string, number> | null | undefined) =>
  r
    ? Object.entries(r)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')
    : 'none';
const hookText = (h: unknown) =>
  h && typeof h === 'object' && Object.keys(h).length
    ? Object.entries(h as Record<string, { type: string; url?: string; name?: string }>)
        .map(([when, x]) => `${when} ${x.type} ${x.url ?? x.name ?? ''}`.trim())
        .join('; ')
    : 'none';
const scheduleLabel = (s: { cron: string; timezone: string }) => `schedule "${s.cron}" ${s.timezone}`;

/** The PATCH body being built and the lines that describe it. */
function changeSet() {
  const changes: string[] = [];
  const body: Record<string, unknown> = {};
  const change = (key: string, value: unknown, text: string) => {
    body[key] = value;
    changes.push(text);
  };
  return { changes, body, change };
}

function findInstance(d: DesiredInstance, current: CurrentInstance[], at: string): CurrentInstance | null {
  const matches = current.filter((c) => c.name === d.name && (d.tenant === undefined || c.tenant === d.tenant));
  if (matches.length > 1) {
    throw new UsageError(`${at}: instance ${d.name} exists in tenants ${matches.map((m) => m.tenant).join(', ')}: give its tenant`);
  }
  return matches[0] ?? null;
}

/** The file's node, else the one node whose volume roots hold every volume path of the instance. */
function nodeFor(d: DesiredInstance, nodes: CurrentNode[], at: string): string {
  if (d.node) return d.node;
  const inside = (p: string, root: string) => p === root || p.startsWith(root.endsWith('/') ? root : `${root}/`);
  const fits = nodes.filter((n) => d.volumes.every((v) => n.volumeRoots.some((r) => inside(v.hostPath, r))));
  if (fits.length === 1) return fits[0]!.id;
  const why = fits.length
    ? `nodes ${fits.map((n) => n.id).join(', ')} all have volume roots holding its paths`
    : 'no node has volume roots holding all its paths';
  throw new UsageError(`${at}.node: required: ${why}`);
}

function scheduleBody(s: DesiredSchedule) {
  return { cron: s.cron, timezone: s.timezone, retention: s.retention, ...(s.volumes ? { volumes: s.volumes } : {}), enabled: s.enabled };
}

/**
 * The instance's schedules against the file's: the same cron and time zone are one schedule; the
 * rest are paired in order (a changed cron updates the schedule in place); what is left is created,
 * or, on the server only, deleted with `prune` (kept and reported otherwise).
 */
function planSchedules(desired: DesiredSchedule[], current: CurrentSchedule[], label: string, prune: boolean): Step[] {
  const steps: Step[] = [];
  const left = [...current];
  const pairs: [DesiredSchedule, CurrentSchedule | undefined][] = desired.map((d) => {
    const i = left.findIndex((c) => c.cron === d.cron && c.timezone === d.timezone);
    return [d, i >= 0 ? left.splice(i, 1)[0] : undefined];
  });
  for (const pair of pairs) if (!pair[1] && left.length) pair[1] = left.shift();
  for (const [d, c] of pairs) {
    if (!c) {
      steps.push({
        object: `${scheduleLabel(d)} of ${label}`,
        action: 'create',
        changes: [`retention ${rules(d.retention)}`, `volumes ${d.volumes?.join(', ') ?? 'all'}`, ...(d.enabled ? [] : ['disabled'])],
        instance: label,
        request: { method: 'POST', path: '/v1/instances/{instance}/schedules', body: scheduleBody(d) },
      });
      continue;
    }
    const { changes, body, change } = changeSet();
    if (c.cron !== d.cron) change('cron', d.cron, `cron: ${c.cron} → ${d.cron}`);
    if (c.timezone !== d.timezone) change('timezone', d.timezone, `timezone: ${c.timezone} → ${d.timezone}`);
    if (stable(c.retention) !== stable(d.retention)) change('retention', d.retention, `retention: ${rules(c.retention)} → ${rules(d.retention)}`);
    const dv = d.volumes ?? null;
    if (stable(c.volumes) !== stable(dv)) change('volumes', dv, `volumes: ${c.volumes?.join(', ') ?? 'all'} → ${dv?.join(', ') ?? 'all'}`);
    if (c.enabled !== d.enabled) change('enabled', d.enabled, `enabled: ${c.enabled} → ${d.enabled}`);
    steps.push({
      object: `${scheduleLabel(d)} of ${label}`,
      action: changes.length ? 'update' : 'unchanged',
      changes,
      instance: label,
      ...(changes.length ? { request: { method: 'PATCH' as const, path: `/v1/schedules/${c.id}`, body } } : {}),
    });
  }
  for (const c of left) {
    steps.push({
      object: `${scheduleLabel(c)} of ${label} (${c.id})`,
      action: prune ? 'delete' : 'kept',
      changes: prune ? [] : ['not in the file; --prune deletes it'],
      instance: label,
      ...(prune ? { request: { method: 'DELETE' as const, path: `/v1/schedules/${c.id}` } } : {}),
    });
  }
  return steps;
}

const DEFAULT_POLICY: CurrentPolicy = { manualBackupLimit: null, manualRetention: null, timezone: 'UTC' };

function planPolicy(d: NonNullable<DesiredInstance['policy']>, c: CurrentPolicy, label: string): Step {
  const changes: string[] = [];
  const body: Record<string, unknown> = {};
  if (d.manualBackupLimit !== undefined && d.manualBackupLimit !== c.manualBackupLimit) {
    body.manualBackupLimit = d.manualBackupLimit;
    changes.push(`manualBackupLimit: ${c.manualBackupLimit ?? 'default'} → ${d.manualBackupLimit ?? 'default'}`);
  }
  if (d.manualRetention !== undefined && stable(d.manualRetention) !== stable(c.manualRetention)) {
    body.manualRetention = d.manualRetention;
    changes.push(`manualRetention: ${rules(c.manualRetention)} → ${rules(d.manualRetention)}`);
  }
  if (d.timezone !== undefined && d.timezone !== c.timezone) {
    body.timezone = d.timezone;
    changes.push(`timezone: ${c.timezone} → ${d.timezone}`);
  }
  return {
    object: `policy of ${label}`,
    action: changes.length ? 'update' : 'unchanged',
    changes,
    instance: label,
    ...(changes.length ? { request: { method: 'PATCH' as const, path: '/v1/instances/{instance}/policy', body } } : {}),
  };
}

/**
 * What `cairn apply` would do: per object of the file, create / update (with what changes) /
 * unchanged, and the request for it. Pure: `current` is fetched by the caller. Instances on the
 * server but not in the file are not touched.
 */
export function planApply(desired: DesiredState, current: CurrentState, opts: { prune: boolean; source: string }): Step[] {
  const steps: Step[] = [];
  desired.instances.forEach((d, i) => {
    const at = `${opts.source}: instances[${i}]`;
    const existing = findInstance(d, current.instances, at);
    const label = `${existing?.tenant ?? d.tenant ?? '(default tenant)'}/${d.name}`;
    if (!existing) {
      const nodeId = nodeFor(d, current.nodes, at);
      steps.push({
        object: `instance ${label}`,
        action: 'create',
        changes: [`node ${nodeId}`, ...d.volumes.map((v) => `volume ${volumeText(v)}`), ...(d.hooks ? [`hooks ${hookText(d.hooks)}`] : [])],
        instance: label,
        request: {
          method: 'POST',
          path: '/v1/instances',
          body: { name: d.name, nodeId, volumes: d.volumes, ...(d.tenant ? { tenant: d.tenant } : {}), ...(d.hooks ? { hooks: d.hooks } : {}) },
        },
      });
      if (d.policy) {
        const p = planPolicy(d.policy, DEFAULT_POLICY, label);
        if (p.action !== 'unchanged') steps.push({ ...p, action: 'create' });
      }
      for (const s of d.schedules ?? []) steps.push(...planSchedules([s], [], label, false));
      return;
    }
    const { changes, body, change } = changeSet();
    if (d.node && d.node !== existing.nodeId) change('nodeId', d.node, `node: ${existing.nodeId} → ${d.node}`);
    if (volumesKey(d.volumes) !== volumesKey(existing.volumes)) {
      body.volumes = d.volumes;
      changes.push(`volumes: ${existing.volumes.map(volumeText).join('; ')} → ${d.volumes.map(volumeText).join('; ')}`);
    }
    if (d.hooks !== undefined) {
      const want = d.hooks && Object.keys(d.hooks).length ? d.hooks : null;
      if (stable(want) !== stable(existing.hooks ?? null)) change('hooks', want, `hooks: ${hookText(existing.hooks)} → ${hookText(want)}`);
    }
    steps.push({
      object: `instance ${label}`,
      action: changes.length ? 'update' : 'unchanged',
      changes,
      instance: label,
      ...(changes.length ? { request: { method: 'PATCH' as const, path: `/v1/instances/${existing.id}`, body } } : {}),
    });
    if (d.policy) {
      const p = planPolicy(d.policy, current.policies.get(existing.id) ?? DEFAULT_POLICY, label);
      steps.push(p.request ? { ...p, request: { ...p.request, path: p.request.path.replace('{instance}', existing.id) } } : p);
    }
    if (d.schedules) steps.push(...planSchedules(d.schedules, current.schedules.get(existing.id) ?? [], label, opts.prune));
  });
  return steps;
}
