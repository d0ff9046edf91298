import {
  FAILED_HOOK_RUN_STATUSES,
  type HookFailureCount,
  type HookRecords,
  type HookWindow,
  type HookWindowChanges,
  type HookWindowFilter,
  type InstanceHooks,
} from './hook.records.ts';
import type { Instance, Job, OneOrMany } from './records.ts';

/** The tables of MemoryRecords the hook records read and write (part of its all-or-nothing transactions). */
export interface HookTables {
  jobs: Map<string, Job>;
  instances: Map<string, Instance>;
  /** InstanceHooks rows, keyed by instance id. */
  instanceHooks: Map<string, InstanceHooks>;
  hookWindows: Map<string, HookWindow>;
}

const list = <T>(v: OneOrMany<T>): readonly T[] => (Array.isArray(v) ? v : [v as T]);
/** Json columns hold what JSON holds, as in Postgres. */
const json = <T>(v: T): T => (v !== null && typeof v === 'object' && !(v instanceof Date) ? JSON.parse(JSON.stringify(v)) : v);

function foreignKey(table: string, field: string, value: string): Error {
  return Object.assign(new Error(`foreign key: ${table}.${field} ${value} names no row`), { code: 'P2003' });
}

function matches(w: HookWindow, f: HookWindowFilter): boolean {
  return (
    (f.id === undefined || w.id === f.id) &&
    (f.jobId === undefined || w.jobId === f.jobId) &&
    (f.nodeId === undefined || w.nodeId === f.nodeId) &&
    (f.status === undefined || list(f.status).includes(w.status)) &&
    (f.openedBefore === undefined || w.openedAt < f.openedBefore)
  );
}

function apply(w: HookWindow, changes: HookWindowChanges): void {
  for (const [k, v] of Object.entries(changes)) if (v !== undefined) (w as unknown as Record<string, unknown>)[k] = json(v);
}

/** HookRecords over MemoryRecords' tables (see hook.records.ts). */
export function memoryHookRecords(tables: () => HookTables, clock: () => Date): HookRecords {
  return {
    getConfig: async (instanceId) => tables().instanceHooks.get(instanceId) ?? null,
    configs: async (instanceIds) =>
      [...tables().instanceHooks.values()].filter((c) => instanceIds.includes(c.instanceId)).sort((a, b) => (a.instanceId < b.instanceId ? -1 : 1)),
    async setConfig(instanceId, { hooks, secret }) {
      const t = tables();
      if (!t.instances.has(instanceId)) throw foreignKey('instanceHooks', 'instanceId', instanceId);
      const now = clock();
      const row = t.instanceHooks.get(instanceId) ?? { instanceId, hooks: {}, secret: null, createdAt: now, updatedAt: now };
      row.hooks = json(hooks) as InstanceHooks['hooks'];
      if (secret !== undefined) row.secret = secret;
      row.updatedAt = now;
      t.instanceHooks.set(instanceId, row);
      return row;
    },
    async openWindow(window) {
      const t = tables();
      if (t.hookWindows.has(window.id)) throw Object.assign(new Error(`hook window ${window.id} exists`), { code: 'P2002' });
      if (!t.jobs.has(window.jobId)) throw foreignKey('hookWindow', 'jobId', window.jobId);
      const row: HookWindow = {
        status: 'open',
        pre: null,
        post: null,
        preStatus: null,
        postStatus: null,
        outcome: null,
        quiescedMs: null,
        thawedBy: null,
        openedAt: clock(),
        closedAt: null,
        ...window,
        specs: json(window.specs) as HookWindow['specs'],
        ...(window.pre !== undefined ? { pre: json(window.pre) as HookWindow['pre'] } : {}),
      } as HookWindow;
      t.hookWindows.set(row.id, row);
      return row;
    },
    async transitionWindow(id, from, to, changes = {}) {
      const row = tables().hookWindows.get(id);
      if (!row || !from.includes(row.status)) return false;
      apply(row, changes);
      row.status = to;
      return true;
    },
    async updateWindow(id, changes) {
      const row = tables().hookWindows.get(id);
      if (row) apply(row, changes);
    },
    getWindow: async (id) => tables().hookWindows.get(id) ?? null,
    async windows(filter, page = {}) {
      let out = [...tables().hookWindows.values()].filter(
        (w) => matches(w, filter) && (page.after === undefined || w.id > page.after) && (page.before === undefined || w.id < page.before),
      );
      out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      if (page.order === 'desc') out.reverse();
      if (page.take !== undefined) out = out.slice(0, page.take);
      return out;
    },
    async setJobHooks(jobId, summary) {
      const job = tables().jobs.get(jobId);
      if (job) job.hooks = json(summary) as Job['hooks'];
    },
    async countFailures() {
      const counts = new Map<string, HookFailureCount>();
      const add = (stage: HookWindow['stage'], phase: 'pre' | 'post', status: HookWindow['preStatus']) => {
        if (!status || !FAILED_HOOK_RUN_STATUSES.includes(status)) return;
        const key = `${stage} ${phase} ${status}`;
        const c = counts.get(key) ?? { stage, phase, status, count: 0 };
        c.count++;
        counts.set(key, c);
      };
      for (const w of tables().hookWindows.values()) {
        add(w.stage, 'pre', w.preStatus);
        add(w.stage, 'post', w.postStatus);
      }
      return [...counts.values()];
    },
  };
}
