import { nodeQueueName } from '../queue/contracts.ts';
import type { HookRecords } from './hook.records.ts';
import { type HookTables, memoryHookRecords } from './memory-hook.records.ts';
import {
  type ApiToken,
  type ApiTokenWithTenant,
  type Backup,
  type BackupFilter,
  type BackupRecords,
  type Instance,
  type InstanceFilter,
  type InstancePolicy,
  type InstancePolicyRecords,
  type InstanceRecords,
  type InstanceWithVolumes,
  type Job,
  type JobFilter,
  type JobRecords,
  LIVE_BACKUP_STATUSES,
  objectSharingOf,
  NAMED_BACKUP_STATUSES,
  type Node,
  type NodeRecords,
  type OneOrMany,
  type Page,
  type RecordSet,
  type Records,
  type Schedule,
  type ScheduleFilter,
  type ScheduleRecords,
  type Tenant,
  type TenantRecords,
  type TokenRecords,
  type TxRecords,
  UniqueViolation,
  type Volume,
} from './records.ts';

/** Every table of the in-memory records; cloned whole to give transactions all-or-nothing writes. */
interface Tables {
  jobs: Map<string, Job>;
  backups: Map<string, Backup>;
  instances: Map<string, Instance>;
  volumes: Map<string, Volume>;
  nodes: Map<string, Node>;
  schedules: Map<string, Schedule>;
  tokens: Map<string, ApiToken>;
  tenants: Map<string, Tenant>;
  /** BackupObjectRef rows, keyed by `<backupId> <ownerId>`. */
  objectRefs: Map<string, { backupId: string; ownerId: string }>;
  /** InstancePolicy rows, keyed by instance id. */
  policies: Map<string, InstancePolicy>;
  instanceHooks: HookTables['instanceHooks'];
  hookWindows: HookTables['hookWindows'];
}

const emptyTables = (): Tables => ({
  jobs: new Map(),
  backups: new Map(),
  instances: new Map(),
  volumes: new Map(),
  nodes: new Map(),
  schedules: new Map(),
  tokens: new Map(),
  tenants: new Map(),
  objectRefs: new Map(),
  policies: new Map(),
  instanceHooks: new Map(),
  hookWindows: new Map(),
});

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'interrupted']);

/**
 * `Records` held in memory, for unit tests of services, pipelines and the job lifecycle: the same
 * filters, conditional transitions, unique rules and all-or-nothing transactions as Postgres.
 * Transactions run one at a time (which is what record locks achieve there). Rows handed out are
 * copies, so a caller mutating one changes nothing stored.
 *
 * `failNext(method, error)` makes the next call of e.g. `jobs.transition` throw, to test what
 * happens when the database fails at that moment.
 *
 * Where it is not Postgres (the contract suite lists both): a transaction writes into the shared
 * tables as it goes, so a read outside it sees its uncommitted rows, and a rollback restores the
 * tables as they were when it began, losing writes made outside it meanwhile.
 */
export class MemoryRecords implements Records {
  private tables = emptyTables();
  private txQueue: Promise<unknown> = Promise.resolve();
  private readonly failures = new Map<string, unknown[]>();
  /** Calls made, as `<table>.<method>`, in order (for assertions on what a service wrote). */
  readonly calls: string[] = [];
  readonly jobs: JobRecords;
  readonly backups: BackupRecords;
  readonly instances: InstanceRecords;
  readonly nodes: NodeRecords;
  readonly schedules: ScheduleRecords;
  readonly tokens: TokenRecords;
  readonly tenants: TenantRecords;
  readonly policies: InstancePolicyRecords;
  readonly hooks: HookRecords;
  private readonly clock: () => Date;

  constructor(options: { clock?: () => Date } = {}) {
    this.clock = options.clock ?? (() => new Date());
    const set = this.instrument(buildRecordSet(() => this.tables, this.clock));
    this.jobs = set.jobs;
    this.backups = set.backups;
    this.instances = set.instances;
    this.nodes = set.nodes;
    this.schedules = set.schedules;
    this.tokens = set.tokens;
    this.tenants = set.tenants;
    this.policies = set.policies;
    this.hooks = set.hooks;
  }

  /** The next call of `method` (e.g. 'jobs.transition') throws `error` instead of running; repeat to fail several. */
  failNext(method: string, error: unknown = new Error(`injected failure of ${method}`)): void {
    const list = this.failures.get(method) ?? [];
    list.push(error);
    this.failures.set(method, list);
  }

  transaction<T>(work: (tx: TxRecords) => Promise<T>): Promise<T> {
    const run = async () => {
      const before = cloneTables(this.tables);
      try {
        return await work({ ...this.instrument(buildRecordSet(() => this.tables, this.clock)), lock: async () => {} });
      } catch (err) {
        this.tables = before;
        throw err;
      }
    };
    const result = this.txQueue.then(run, run);
    this.txQueue = result.catch(() => {});
    return result;
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {}

  // ----- seeding, for tests -----

  seedNode(node: Partial<Node> & { id: string }): Node {
    const row: Node = {
      labels: {},
      volumeRoots: [],
      version: null,
      lastHeartbeatAt: null,
      capacity: null,
      hookCommands: [],
      volumeStates: null,
      createdAt: this.clock(),
      ...node,
    };
    this.tables.nodes.set(row.id, structuredClone(row));
    return row;
  }

  seedTenant(tenant: Partial<Tenant> & { id: string; name: string }): Tenant {
    const row: Tenant = { createdAt: this.clock(), ...tenant };
    this.tables.tenants.set(row.id, structuredClone(row));
    return row;
  }

  private instrument(set: RecordSet): RecordSet {
    const out = {} as Record<string, unknown>;
    for (const [table, methods] of Object.entries(set)) {
      const wrapped: Record<string, unknown> = {};
      for (const [name, fn] of Object.entries(methods as Record<string, (...a: unknown[]) => Promise<unknown>>)) {
        const key = `${table}.${name}`;
        wrapped[name] = async (...args: unknown[]) => {
          this.calls.push(key);
          const failure = this.failures.get(key)?.shift();
          if (failure !== undefined) throw failure;
          // Copies in and out: no caller shares an object with the tables.
          return structuredClone(await fn(...args.map((a) => (typeof a !== 'object' ? a : structuredClone(a)))));
        };
      }
      out[table] = wrapped;
    }
    return out as unknown as RecordSet;
  }
}

function cloneTables(t: Tables): Tables {
  return structuredClone(t);
}

// ----- matching -----

const list = <T>(v: OneOrMany<T>): readonly T[] => (Array.isArray(v) ? v : [v as T]);
const within = <T>(value: T, allowed: OneOrMany<T> | undefined) => allowed === undefined || list(allowed).includes(value);

function paged<T extends { id: string }>(rows: Iterable<T>, page: Page = {}): T[] {
  let out = [...rows].filter((r) => (page.after === undefined || r.id > page.after) && (page.before === undefined || r.id < page.before));
  out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (page.order === 'desc') out.reverse();
  if (page.take !== undefined) out = out.slice(0, page.take);
  return out;
}

function jobMatches(j: Job, f: JobFilter): boolean {
  return (
    (f.id === undefined || j.id === f.id) &&
    (f.ids === undefined || f.ids.includes(j.id)) &&
    within(j.type, f.type) &&
    within(j.status, f.status) &&
    (f.backupId === undefined || j.backupId === f.backupId) &&
    (f.instanceId === undefined || j.instanceId === f.instanceId) &&
    (f.targetInstanceId === undefined || j.targetInstanceId === f.targetInstanceId) &&
    (f.touchesInstances === undefined ||
      (j.instanceId !== null && f.touchesInstances.includes(j.instanceId)) ||
      (j.targetInstanceId !== null && f.touchesInstances.includes(j.targetInstanceId))) &&
    (f.touchesInstance === undefined || j.instanceId === f.touchesInstance || j.targetInstanceId === f.touchesInstance) &&
    (f.touchesTenant === undefined || j.tenantId === f.touchesTenant || j.targetTenantId === f.touchesTenant) &&
    (f.nodeId === undefined || j.nodeId === f.nodeId) &&
    (f.queue === undefined || j.queue === f.queue) &&
    (f.onNode === undefined || j.nodeId === f.onNode || j.queue === nodeQueueName(f.onNode)) &&
    (f.parentJobId === undefined || j.parentJobId === f.parentJobId) &&
    (f.createdBefore === undefined || j.createdAt < f.createdBefore) &&
    (f.errorCode === undefined || (j.errorCode !== null && within(j.errorCode, f.errorCode)))
  );
}

function backupMatches(t: Tables, b: Backup, f: BackupFilter): boolean {
  return (
    (f.id === undefined || b.id === f.id) &&
    (f.ids === undefined || f.ids.includes(b.id)) &&
    (f.instanceId === undefined || b.instanceId === f.instanceId) &&
    (f.tenantId === undefined || t.instances.get(b.instanceId)?.tenantId === f.tenantId) &&
    within(b.status, f.status) &&
    (f.statusNot === undefined || !list(f.statusNot).includes(b.status)) &&
    within(b.trigger, f.trigger) &&
    (f.scheduleId === undefined || b.scheduleId === f.scheduleId) &&
    (f.completedBefore === undefined || (b.completedAt !== null && b.completedAt < f.completedBefore)) &&
    (f.deletedBefore === undefined || (b.deletedAt !== null && b.deletedAt < f.deletedBefore)) &&
    (f.expires === undefined || (b.expiresAt !== null) === f.expires) &&
    (f.name === undefined || b.name === f.name) &&
    (f.namePrefix === undefined || (b.name?.startsWith(f.namePrefix) ?? false)) &&
    (f.pinned === undefined || b.pinned === f.pinned) &&
    (f.verifyStatus === undefined || b.verifyStatus === f.verifyStatus) &&
    (f.volume === undefined || b.volumes.includes(f.volume))
  );
}

/**
 * The partial unique index of backup names (Postgres: `(instanceId, name)` among the backups
 * that are not deleting or deleted): refuses `rows` (new or changed backups, as they would be) when
 * two of them, or one of them and a stored backup left as it is, hold the same name.
 */
function checkBackupNames(t: Tables, rows: readonly Backup[]): void {
  const holds = (b: Backup) => b.name !== null && NAMED_BACKUP_STATUSES.includes(b.status);
  const changing = new Set(rows.map((b) => b.id));
  const taken = new Set([...t.backups.values()].filter((b) => !changing.has(b.id) && holds(b)).map((b) => `${b.instanceId} ${b.name}`));
  for (const b of rows) {
    if (!holds(b)) continue;
    const key = `${b.instanceId} ${b.name}`;
    if (taken.has(key)) throw new UniqueViolation(['instanceId', 'name']);
    taken.add(key);
  }
}

function instanceMatches(t: Tables, i: Instance, f: InstanceFilter): boolean {
  return (
    (f.id === undefined || i.id === f.id) &&
    (f.ids === undefined || f.ids.includes(i.id)) &&
    (f.notId === undefined || i.id !== f.notId) &&
    (f.tenantId === undefined || i.tenantId === f.tenantId) &&
    (f.tenantName === undefined || t.tenants.get(i.tenantId)?.name === f.tenantName) &&
    (f.nodeId === undefined || i.nodeId === f.nodeId) &&
    (f.name === undefined || i.name === f.name)
  );
}

function scheduleMatches(t: Tables, s: Schedule, f: ScheduleFilter): boolean {
  return (
    (f.id === undefined || s.id === f.id) &&
    (f.instanceId === undefined || s.instanceId === f.instanceId) &&
    (f.tenantId === undefined || t.instances.get(s.instanceId)?.tenantId === f.tenantId) &&
    (f.nodeId === undefined || t.instances.get(s.instanceId)?.nodeId === f.nodeId) &&
    (f.enabled === undefined || s.enabled === f.enabled)
  );
}

/**
 * Drops `undefined` fields, so a partial change never blanks a column; objects and arrays (the
 * Json and array columns) are stored as JSON holds them, as Postgres does: a Date inside becomes
 * its ISO string, an undefined field disappears.
 */
function defined<T extends object>(changes: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(changes)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => [k, asJson(v)]),
  ) as Partial<T>;
}

function asJson(v: unknown): unknown {
  return v !== null && typeof v === 'object' && !(v instanceof Date) ? JSON.parse(JSON.stringify(v)) : v;
}

function foreignKey(table: string, field: string, value: string): Error {
  // What Prisma throws when a foreign key names no row (P2003).
  return Object.assign(new Error(`foreign key: ${table}.${field} ${value} names no row`), { code: 'P2003' });
}

function notFound(what: string, id: string): Error {
  // What Prisma throws for update/delete of a missing row (P2025).
  return Object.assign(new Error(`${what} ${id} not found`), { code: 'P2025' });
}

// ----- the tables -----

function buildRecordSet(tables: () => Tables, clock: () => Date): RecordSet {
  const withVolumes = (t: Tables, i: Instance): InstanceWithVolumes => ({
    ...i,
    volumes: [...t.volumes.values()].filter((v) => v.instanceId === i.id).sort((a, b) => (a.name < b.name ? -1 : 1)),
    tenant: t.tenants.get(i.tenantId)!,
  });
  const withTenant = (t: Tables, k: ApiToken): ApiTokenWithTenant => ({ ...k, tenant: k.tenantId ? (t.tenants.get(k.tenantId) ?? null) : null });

  const jobs: JobRecords = {
    get: async (id) => tables().jobs.get(id) ?? null,
    findFirst: async (f, page) =>
      paged(
        [...tables().jobs.values()].filter((j) => jobMatches(j, f)),
        { ...page, take: 1 },
      )[0] ?? null,
    find: async (f, page) =>
      paged(
        [...tables().jobs.values()].filter((j) => jobMatches(j, f)),
        page,
      ),
    count: async (f) => [...tables().jobs.values()].filter((j) => jobMatches(j, f)).length,
    async countByTypeAndStatus(f = {}) {
      const counts = new Map<string, { type: Job['type']; status: Job['status']; count: number }>();
      for (const j of tables().jobs.values()) {
        if (!jobMatches(j, f)) continue;
        const key = `${j.type}/${j.status}`;
        const c = counts.get(key) ?? { type: j.type, status: j.status, count: 0 };
        c.count++;
        counts.set(key, c);
      }
      return [...counts.values()];
    },
    async countByNode(f = {}) {
      const counts = new Map<string, number>();
      for (const j of tables().jobs.values()) if (j.nodeId !== null && jobMatches(j, f)) counts.set(j.nodeId, (counts.get(j.nodeId) ?? 0) + 1);
      return [...counts].map(([nodeId, count]) => ({ nodeId, count }));
    },
    async create(job) {
      const t = tables();
      if (t.jobs.has(job.id)) throw new UniqueViolation(['id']);
      if (job.backupId && !t.backups.has(job.backupId)) throw foreignKey('job', 'backupId', job.backupId);
      if (job.parentJobId && !t.jobs.has(job.parentJobId)) throw foreignKey('job', 'parentJobId', job.parentJobId);
      const row: Job = {
        status: 'queued',
        instanceId: null,
        backupId: null,
        targetInstanceId: null,
        nodeId: null,
        queue: null,
        params: {},
        progress: null,
        result: null,
        attempts: 0,
        error: null,
        errorCode: null,
        createdAt: clock(),
        startedAt: null,
        finishedAt: null,
        parentJobId: null,
        hooks: null,
        ...(defined(job) as typeof job),
        tenantId: (job.instanceId && t.instances.get(job.instanceId)?.tenantId) || null,
        targetTenantId: (job.targetInstanceId && t.instances.get(job.targetInstanceId)?.tenantId) || null,
      } as Job;
      t.jobs.set(row.id, row);
      return row;
    },
    async transition(id, from, to, changes = {}) {
      const row = tables().jobs.get(id);
      if (!row || !from.includes(row.status)) return false;
      Object.assign(row, TERMINAL.has(to) ? { finishedAt: clock() } : {}, defined(changes), { status: to });
      return true;
    },
    async setProgress(id, progress) {
      const row = tables().jobs.get(id);
      if (row) row.progress = asJson(progress) as Job['progress'];
    },
  };

  const backups: BackupRecords = {
    get: async (id) => tables().backups.get(id) ?? null,
    findFirst: async (f, page) =>
      paged(
        [...tables().backups.values()].filter((b) => backupMatches(tables(), b, f)),
        { ...page, take: 1 },
      )[0] ?? null,
    find: async (f, page) =>
      paged(
        [...tables().backups.values()].filter((b) => backupMatches(tables(), b, f)),
        page,
      ),
    count: async (f) => [...tables().backups.values()].filter((b) => backupMatches(tables(), b, f)).length,
    async leastRecentlyVerified(take) {
      const at = (b: Backup) => b.verifiedAt?.getTime() ?? Number.NEGATIVE_INFINITY;
      return [...tables().backups.values()]
        .filter((b) => b.status === 'completed')
        .sort((a, b) => at(a) - at(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        .slice(0, take);
    },
    async countByStatus() {
      const counts = new Map<Backup['status'], number>();
      for (const b of tables().backups.values()) counts.set(b.status, (counts.get(b.status) ?? 0) + 1);
      return [...counts].map(([status, count]) => ({ status, count }));
    },
    async lastCompletedPerInstance() {
      const newest = new Map<string, Date>();
      for (const b of tables().backups.values()) {
        if (b.status !== 'completed' || !b.completedAt) continue;
        const seen = newest.get(b.instanceId);
        if (!seen || b.completedAt > seen) newest.set(b.instanceId, b.completedAt);
      }
      return [...newest].map(([instanceId, completedAt]) => ({ instanceId, completedAt }));
    },
    async sumSizeBytes(f) {
      let sum = 0n;
      for (const b of tables().backups.values()) if (backupMatches(tables(), b, f)) sum += b.sizeBytes ?? 0n;
      return sum;
    },
    async create(backup) {
      const t = tables();
      if (t.backups.has(backup.id)) throw new UniqueViolation(['id']);
      if (!t.instances.has(backup.instanceId)) throw foreignKey('backup', 'instanceId', backup.instanceId);
      const row: Backup = {
        status: 'pending',
        kind: 'full',
        parentId: null,
        scheduleId: null,
        format: 1,
        encryption: { mode: 'none' },
        sizeBytes: null,
        logicalBytes: null,
        reusedBytes: null,
        fileCount: null,
        sha256: null,
        warnings: [],
        expiresAt: null,
        createdAt: clock(),
        startedAt: null,
        completedAt: null,
        deletedAt: null,
        error: null,
        name: null,
        note: null,
        pinned: false,
        verifiedAt: null,
        verifyLevel: null,
        verifyStatus: null,
        verifyError: null,
        ...(defined(backup) as typeof backup),
      } as Backup;
      checkBackupNames(t, [row]);
      t.backups.set(row.id, row);
      return row;
    },
    async transition(id, from, to, changes = {}) {
      const row = tables().backups.get(id);
      if (!row || !from.includes(row.status)) return false;
      const next = Object.assign({ ...row }, defined(changes), { status: to });
      checkBackupNames(tables(), [next]);
      Object.assign(row, next);
      return true;
    },
    async updateWhere(f, changes) {
      const t = tables();
      // One statement in Postgres: a name clash changes none of them.
      const matching = [...t.backups.values()].filter((b) => backupMatches(t, b, f));
      const next = matching.map((b) => Object.assign({ ...b }, defined(changes)));
      checkBackupNames(t, next);
      for (const [i, b] of matching.entries()) Object.assign(b, next[i]);
      return matching.length;
    },
    async deleteWhere(f) {
      const t = tables();
      const doomed = [...t.backups.values()].filter((b) => backupMatches(t, b, f));
      const ids = new Set(doomed.map((b) => b.id));
      // Foreign keys: a backup left in place may not lose an archive object it reads from (RESTRICT);
      // the references the removed backups hold go with them (CASCADE).
      const held = [...t.objectRefs.values()].find((r) => ids.has(r.ownerId) && !ids.has(r.backupId));
      if (held) throw foreignKey('backupObjectRef', 'ownerId', held.ownerId);
      for (const [key, r] of [...t.objectRefs]) if (ids.has(r.backupId)) t.objectRefs.delete(key);
      for (const b of doomed) {
        t.backups.delete(b.id);
        // Foreign keys: jobs keep their rows (backupId set null), children lose their parent.
        for (const j of t.jobs.values()) if (j.backupId === b.id) j.backupId = null;
        for (const c of t.backups.values()) if (c.parentId === b.id) c.parentId = null;
      }
      return doomed.length;
    },
    async addReferences(backupId, ownerIds) {
      const t = tables();
      const owners = [...new Set(ownerIds)];
      if (owners.includes(backupId)) throw new Error(`backup ${backupId} cannot reference its own archive object`);
      if (owners.length === 0) return 0;
      if (!t.backups.has(backupId)) throw foreignKey('backupObjectRef', 'backupId', backupId);
      const missing = owners.find((id) => !t.backups.has(id));
      if (missing !== undefined) throw foreignKey('backupObjectRef', 'ownerId', missing);
      let added = 0;
      for (const ownerId of owners) {
        const key = `${backupId} ${ownerId}`;
        if (t.objectRefs.has(key)) continue;
        t.objectRefs.set(key, { backupId, ownerId });
        added++;
      }
      return added;
    },
    referencedOwners: async (backupId) =>
      [...tables().objectRefs.values()]
        .filter((r) => r.backupId === backupId)
        .map((r) => r.ownerId)
        .sort(),
    async liveReferrers(ownerId) {
      const t = tables();
      return [...t.objectRefs.values()]
        .filter((r) => r.ownerId === ownerId && LIVE_BACKUP_STATUSES.includes(t.backups.get(r.backupId)!.status))
        .map((r) => r.backupId)
        .sort();
    },
    objectSharing: (backupId) => objectSharingOf(backups, backupId),
  };

  const instances: InstanceRecords = {
    async get(id) {
      const t = tables();
      const i = t.instances.get(id);
      return i ? withVolumes(t, i) : null;
    },
    async findFirst(f) {
      const t = tables();
      const i = paged([...t.instances.values()].filter((r) => instanceMatches(t, r, f)))[0];
      return i ? withVolumes(t, i) : null;
    },
    async find(f, page) {
      const t = tables();
      return paged(
        [...t.instances.values()].filter((r) => instanceMatches(t, r, f)),
        page,
      ).map((i) => withVolumes(t, i));
    },
    async ids(f) {
      const t = tables();
      return paged([...t.instances.values()].filter((r) => instanceMatches(t, r, f))).map((i) => i.id);
    },
    async create({ volumes, ...instance }) {
      const t = tables();
      if (t.instances.has(instance.id)) throw new UniqueViolation(['id']);
      if ([...t.instances.values()].some((i) => i.tenantId === instance.tenantId && i.name === instance.name)) throw new UniqueViolation(['tenantId', 'name']);
      if (!t.tenants.has(instance.tenantId)) throw new Error(`foreign key: tenant ${instance.tenantId} does not exist`);
      if (!t.nodes.has(instance.nodeId)) throw new Error(`foreign key: node ${instance.nodeId} does not exist`);
      if (new Set(volumes.map((v) => v.name)).size < volumes.length) throw new UniqueViolation(['instanceId', 'name']);
      const now = clock();
      const row: Instance = { ...instance, createdAt: now, updatedAt: now };
      t.instances.set(row.id, row);
      for (const v of volumes) t.volumes.set(v.id, { ...v, instanceId: row.id });
      return withVolumes(t, row);
    },
    async update(id, { volumes, ...changes }) {
      const t = tables();
      const row = t.instances.get(id);
      if (!row) throw notFound('instance', id);
      const name = changes.name ?? row.name;
      if ([...t.instances.values()].some((i) => i.id !== id && i.tenantId === row.tenantId && i.name === name)) throw new UniqueViolation(['tenantId', 'name']);
      if (volumes) {
        for (const v of [...t.volumes.values()]) if (v.instanceId === id) t.volumes.delete(v.id);
        for (const v of volumes) t.volumes.set(v.id, { ...v, instanceId: id });
      }
      Object.assign(row, defined(changes), { updatedAt: clock() });
      return withVolumes(t, row);
    },
    async delete(id) {
      const t = tables();
      if (!t.instances.has(id)) throw notFound('instance', id);
      if ([...t.backups.values()].some((b) => b.instanceId === id)) throw new Error(`foreign key: instance ${id} still has backups`);
      t.instances.delete(id);
      t.policies.delete(id);
      t.instanceHooks.delete(id);
      for (const v of [...t.volumes.values()]) if (v.instanceId === id) t.volumes.delete(v.id);
      for (const s of [...t.schedules.values()]) if (s.instanceId === id) t.schedules.delete(s.id);
      for (const j of t.jobs.values()) {
        if (j.instanceId === id) j.tenantId = null;
        if (j.targetInstanceId === id) j.targetTenantId = null;
      }
    },
    async volumes(f) {
      const t = tables();
      return [...t.volumes.values()]
        .filter((v) => {
          const i = t.instances.get(v.instanceId);
          return i !== undefined && instanceMatches(t, i, f);
        })
        .sort((a, b) => (a.id < b.id ? -1 : 1))
        .map((v) => {
          const i = t.instances.get(v.instanceId)!;
          return { ...v, instance: { id: i.id, name: i.name, tenantId: i.tenantId, nodeId: i.nodeId } };
        });
    },
  };

  const nodes: NodeRecords = {
    get: async (id) => tables().nodes.get(id) ?? null,
    list: async () => paged(tables().nodes.values()),
    async heartbeat(id, beat) {
      const t = tables();
      const row = t.nodes.get(id);
      if (row) Object.assign(row, defined(beat));
      else t.nodes.set(id, { id, labels: {}, hookCommands: [], volumeStates: null, createdAt: clock(), ...defined(beat) } as Node);
    },
  };

  const schedules: ScheduleRecords = {
    get: async (id) => tables().schedules.get(id) ?? null,
    async getWithInstance(id) {
      const t = tables();
      const s = t.schedules.get(id);
      const i = s && t.instances.get(s.instanceId);
      return s && i ? { ...s, instance: withVolumes(t, i) } : null;
    },
    findFirst: async (f) => paged([...tables().schedules.values()].filter((s) => scheduleMatches(tables(), s, f)))[0] ?? null,
    find: async (f, page) =>
      paged(
        [...tables().schedules.values()].filter((s) => scheduleMatches(tables(), s, f)),
        page,
      ),
    async create(schedule) {
      const t = tables();
      if (t.schedules.has(schedule.id)) throw new UniqueViolation(['id']);
      if (!t.instances.has(schedule.instanceId)) throw new Error(`foreign key: instance ${schedule.instanceId} does not exist`);
      const now = clock();
      const row = {
        lastFiredAt: null,
        lastBackupId: null,
        lastSkippedAt: null,
        lastSkipReason: null,
        nextRunAt: null,
        createdAt: now,
        updatedAt: now,
        ...defined(schedule),
      } as Schedule;
      t.schedules.set(row.id, row);
      return row;
    },
    async update(id, changes) {
      const row = tables().schedules.get(id);
      if (!row) throw notFound('schedule', id);
      Object.assign(row, defined(changes), { updatedAt: clock() });
      return row;
    },
    async updateIf(id, where, changes) {
      const row = tables().schedules.get(id);
      if (!row) return false;
      if (where.lastFiredBefore && row.lastFiredAt !== null && !(row.lastFiredAt < where.lastFiredBefore)) return false;
      if (where.lastFiredNotAfter && row.lastFiredAt !== null && row.lastFiredAt > where.lastFiredNotAfter) return false;
      Object.assign(row, defined(changes), { updatedAt: clock() });
      return true;
    },
    async delete(id) {
      const t = tables();
      if (!t.schedules.delete(id)) throw notFound('schedule', id);
      for (const b of t.backups.values()) if (b.scheduleId === id) b.scheduleId = null;
    },
  };

  const tokens: TokenRecords = {
    async getByHash(hash) {
      const t = tables();
      const k = [...t.tokens.values()].find((r) => r.tokenHash === hash);
      return k ? withTenant(t, k) : null;
    },
    async get(id) {
      const t = tables();
      const k = t.tokens.get(id);
      return k ? withTenant(t, k) : null;
    },
    async list(f, page) {
      const t = tables();
      return paged(
        [...t.tokens.values()].filter((k) => f.includeRevoked || k.revokedAt === null),
        page,
      ).map((k) => withTenant(t, k));
    },
    async create(token) {
      const t = tables();
      if ([...t.tokens.values()].some((k) => k.tokenHash === token.tokenHash)) throw new UniqueViolation(['tokenHash']);
      if (t.tokens.has(token.id)) throw new UniqueViolation(['id']);
      const row: ApiToken = { ...token, createdAt: clock(), lastUsedAt: null, revokedAt: null };
      t.tokens.set(row.id, row);
      return withTenant(t, row);
    },
    async createUnlessExists(token) {
      const t = tables();
      if ([...t.tokens.values()].some((k) => k.tokenHash === token.tokenHash)) return;
      t.tokens.set(token.id, { ...token, createdAt: clock(), lastUsedAt: null, revokedAt: null });
    },
    async touch(id, at, staleBefore) {
      const row = tables().tokens.get(id);
      if (row && (row.lastUsedAt === null || row.lastUsedAt < staleBefore)) row.lastUsedAt = at;
    },
    async revoke(id, at) {
      const row = tables().tokens.get(id);
      if (row && row.revokedAt === null) row.revokedAt = at;
    },
    countActive: async (f) =>
      [...tables().tokens.values()].filter(
        (k) =>
          k.revokedAt === null && (f.role === undefined || k.role === f.role) && (f.tenantId === undefined || k.tenantId === f.tenantId) && k.id !== f.notId,
      ).length,
  };

  const tenants: TenantRecords = {
    get: async (id) => tables().tenants.get(id) ?? null,
    getByName: async (name) => [...tables().tenants.values()].find((t) => t.name === name) ?? null,
    async ensure(name, id) {
      const t = tables();
      const found = [...t.tenants.values()].find((r) => r.name === name);
      if (found) return found;
      if (t.tenants.has(id)) throw new UniqueViolation(['id']);
      const row: Tenant = { id, name, createdAt: clock() };
      t.tenants.set(id, row);
      return row;
    },
  };

  const policies: InstancePolicyRecords = {
    get: async (instanceId) => tables().policies.get(instanceId) ?? null,
    async find(f, page = {}) {
      let out = [...tables().policies.values()].filter(
        (p) =>
          (f.instanceIds === undefined || f.instanceIds.includes(p.instanceId)) &&
          (f.hasManualRetention === undefined || (p.manualRetention !== null) === f.hasManualRetention) &&
          (page.after === undefined || p.instanceId > page.after) &&
          (page.before === undefined || p.instanceId < page.before),
      );
      out.sort((a, b) => (a.instanceId < b.instanceId ? -1 : a.instanceId > b.instanceId ? 1 : 0));
      if (page.order === 'desc') out.reverse();
      if (page.take !== undefined) out = out.slice(0, page.take);
      return out;
    },
    async upsert(instanceId, changes) {
      const t = tables();
      if (!t.instances.has(instanceId)) throw foreignKey('instancePolicy', 'instanceId', instanceId);
      const now = clock();
      const row = t.policies.get(instanceId) ?? { instanceId, manualBackupLimit: null, manualRetention: null, timezone: 'UTC', createdAt: now, updatedAt: now };
      Object.assign(row, defined(changes), { updatedAt: now });
      t.policies.set(instanceId, row);
      return row;
    },
  };

  return { jobs, backups, instances, nodes, schedules, tokens, tenants, policies, hooks: memoryHookRecords(tables, clock) };
}
