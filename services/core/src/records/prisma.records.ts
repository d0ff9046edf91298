import type pg from 'pg';
import { createPgPool, createPrisma, type PrismaClient } from '../db/prisma.ts';
import { Prisma } from '../generated/prisma/client.ts';
import { nodeQueueName } from '../queue/contracts.ts';
import type { HookRecords } from './hook.records.ts';
import { prismaHookRecords } from './prisma-hook.records.ts';
import {
  type BackupFilter,
  type BackupChanges,
  type BackupRecords,
  type InstanceFilter,
  type InstancePolicyRecords,
  type InstanceRecords,
  type JobFilter,
  type JobRecords,
  type JsonInput,
  LIVE_BACKUP_STATUSES,
  objectSharingOf,
  type LockKind,
  type NodeRecords,
  type OneOrMany,
  type Page,
  type RecordSet,
  type Records,
  type ScheduleFilter,
  type ScheduleRecords,
  type TenantRecords,
  type TokenRecords,
  type TxRecords,
  UniqueViolation,
} from './records.ts';
import { servesPage, SqlReads } from './sql-reads.ts';

type Db = PrismaClient | Prisma.TransactionClient;

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'interrupted']);

/** Cairn's records in Postgres, through Prisma (the production implementation of `Records`). */
export class PrismaRecords implements Records {
  readonly jobs: JobRecords;
  readonly backups: BackupRecords;
  readonly instances: InstanceRecords;
  readonly nodes: NodeRecords;
  readonly schedules: ScheduleRecords;
  readonly tokens: TokenRecords;
  readonly tenants: TenantRecords;
  readonly policies: InstancePolicyRecords;
  readonly hooks: HookRecords;

  /**
   * `pool`: the pg pool under `prisma`'s adapter; with it the hot reads outside transactions are
   * plain SQL (sql-reads.ts), and close() ends it.
   */
  constructor(
    readonly prisma: PrismaClient,
    private readonly pool?: pg.Pool,
  ) {
    const set = recordSet(prisma, prisma, pool ? new SqlReads(pool) : null);
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

  static open(databaseUrl: string, options: { max?: number } = {}): PrismaRecords {
    const pool = createPgPool(databaseUrl, options);
    return new PrismaRecords(createPrisma(databaseUrl, options, pool), pool);
  }

  transaction<T>(work: (tx: TxRecords) => Promise<T>, options: { timeoutMs?: number } = {}): Promise<T> {
    return this.prisma.$transaction((tx) => work({ ...recordSet(tx, null, null), lock: (kind, id) => lockRecord(tx, kind, id) }), {
      timeout: options.timeoutMs ?? 15_000,
    });
  }

  async ping(): Promise<void> {
    await this.prisma.$executeRaw`SELECT 1`;
  }

  async close(): Promise<void> {
    await this.prisma.$disconnect();
    // Once: a second end() of a pg pool throws, and closing the records twice is harmless elsewhere.
    if (this.pool && !this.pool.ending) await this.pool.end();
  }
}

/** Transaction-scoped Postgres advisory lock on one record (`cairn:<kind>:<id>`), released at commit or rollback. */
async function lockRecord(tx: Prisma.TransactionClient, kind: LockKind, id: string): Promise<void> {
  await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtextextended(${`cairn:${kind}:${id}`}, 0))`;
}

/**
 * `root`: the client itself when `db` is not a transaction (a write of several statements opens one), else null.
 * `sql`: plain-SQL reads on the same pool, outside transactions only (a transaction's reads must see its writes).
 */
function recordSet(db: Db, root: PrismaClient | null, sql: SqlReads | null): RecordSet {
  return {
    jobs: withSqlJobReads(jobRecords(db), sql),
    backups: withSqlBackupReads(backupRecords(db, root), sql),
    instances: withSqlInstanceReads(instanceRecords(db), sql),
    nodes: nodeRecords(db),
    schedules: scheduleRecords(db),
    tokens: tokenRecords(db),
    tenants: tenantRecords(db),
    policies: policyRecords(db),
    hooks: prismaHookRecords(db),
  };
}

const list = <T>(v: OneOrMany<T>): T[] => (Array.isArray(v) ? [...v] : [v as T]);
const inList = <T>(v: OneOrMany<T> | undefined) => (v === undefined ? undefined : { in: list(v) });

function pageArgs(page: Page = {}): { orderBy: { id: 'asc' | 'desc' }; take?: number; idRange?: { gt?: string; lt?: string } } {
  const idRange = page.after !== undefined || page.before !== undefined ? { gt: page.after, lt: page.before } : undefined;
  return { orderBy: { id: page.order ?? 'asc' }, take: page.take, idRange };
}

/** Maps a unique-constraint error (P2002) to UniqueViolation; anything else is rethrown as is. */
async function unique<T>(write: Promise<T>): Promise<T> {
  try {
    return await write;
  } catch (err) {
    const e = err as { code?: string; meta?: { target?: unknown; driverAdapterError?: { cause?: { constraint?: { fields?: unknown } } } } };
    if (e.code !== 'P2002') throw err;
    // Through the pg driver adapter the columns are in the adapter's error, not in `target`.
    const fields = e.meta?.driverAdapterError?.cause?.constraint?.fields ?? e.meta?.target;
    throw new UniqueViolation(Array.isArray(fields) ? fields.map((f) => String(f).replace(/^"|"$/g, '')) : [], { cause: err });
  }
}

/** A non-nullable Json column. */
const json = (v: JsonInput | undefined) => v as Prisma.InputJsonValue | undefined;
/** A nullable Json column: null becomes the database NULL. */
const nullableJson = (v: JsonInput | null | undefined): Prisma.InputJsonValue | typeof Prisma.DbNull | undefined =>
  v === undefined ? undefined : v === null ? Prisma.DbNull : (v as Prisma.InputJsonValue);

// ----- jobs -----

function jobWhere(f: JobFilter, idRange?: { gt?: string; lt?: string }): Prisma.JobWhereInput {
  const and: Prisma.JobWhereInput[] = [];
  if (f.touchesInstances) and.push({ OR: [{ instanceId: { in: [...f.touchesInstances] } }, { targetInstanceId: { in: [...f.touchesInstances] } }] });
  if (f.touchesInstance !== undefined) and.push({ OR: [{ instanceId: f.touchesInstance }, { targetInstanceId: f.touchesInstance }] });
  if (f.touchesTenant !== undefined) and.push({ OR: [{ tenantId: f.touchesTenant }, { targetTenantId: f.touchesTenant }] });
  if (f.onNode) and.push({ OR: [{ nodeId: f.onNode }, { queue: nodeQueueName(f.onNode) }] });
  const id =
    f.id !== undefined || f.ids !== undefined || idRange
      ? { ...(f.id !== undefined ? { equals: f.id } : {}), ...(f.ids ? { in: [...f.ids] } : {}), ...idRange }
      : undefined;
  return {
    id,
    type: inList(f.type),
    status: inList(f.status),
    backupId: f.backupId,
    instanceId: f.instanceId,
    targetInstanceId: f.targetInstanceId,
    nodeId: f.nodeId,
    queue: f.queue,
    parentJobId: f.parentJobId,
    createdAt: f.createdBefore ? { lt: f.createdBefore } : undefined,
    errorCode: inList(f.errorCode),
    ...(and.length ? { AND: and } : {}),
  };
}

function jobRecords(db: Db): JobRecords {
  return {
    get: (id) => db.job.findUnique({ where: { id } }),
    findFirst(filter, page) {
      const p = pageArgs(page);
      return db.job.findFirst({ where: jobWhere(filter, p.idRange), orderBy: p.orderBy });
    },
    find(filter, page) {
      const p = pageArgs(page);
      return db.job.findMany({ where: jobWhere(filter, p.idRange), orderBy: p.orderBy, take: p.take });
    },
    count: (filter) => db.job.count({ where: jobWhere(filter) }),
    async countByTypeAndStatus(filter = {}) {
      const groups = await db.job.groupBy({ by: ['type', 'status'], where: jobWhere(filter), _count: { _all: true } });
      return groups.map((g) => ({ type: g.type, status: g.status, count: g._count._all }));
    },
    async countByNode(filter = {}) {
      const groups = await db.job.groupBy({ by: ['nodeId'], where: { AND: [jobWhere(filter), { nodeId: { not: null } }] }, _count: { _all: true } });
      return groups.map((g) => ({ nodeId: g.nodeId!, count: g._count._all }));
    },
    async create(job) {
      const instanceIds = [job.instanceId, job.targetInstanceId].filter((id): id is string => !!id);
      const tenants = new Map(
        instanceIds.length
          ? (await db.instance.findMany({ where: { id: { in: instanceIds } }, select: { id: true, tenantId: true } })).map((i) => [i.id, i.tenantId])
          : [],
      );
      return unique(
        db.job.create({
          data: {
            ...job,
            params: json(job.params),
            result: nullableJson(job.result),
            tenantId: job.instanceId ? (tenants.get(job.instanceId) ?? null) : null,
            targetTenantId: job.targetInstanceId ? (tenants.get(job.targetInstanceId) ?? null) : null,
          },
        }),
      );
    },
    async transition(id, from, to, changes = {}) {
      const { result, progress, ...rest } = changes;
      const { count } = await db.job.updateMany({
        where: { id, status: { in: [...from] } },
        data: {
          ...(TERMINAL.has(to) ? { finishedAt: new Date() } : {}),
          ...rest,
          ...(result !== undefined ? { result: nullableJson(result) } : {}),
          ...(progress !== undefined ? { progress: nullableJson(progress) } : {}),
          status: to,
        },
      });
      return count === 1;
    },
    async setProgress(id, progress) {
      await db.job.updateMany({ where: { id }, data: { progress: progress as Prisma.InputJsonValue } });
    },
  };
}

/** The reads the gateway's requests and progress streams make, as plain SQL (same rows). */
function withSqlJobReads(jobs: JobRecords, sql: SqlReads | null): JobRecords {
  if (!sql) return jobs;
  return {
    ...jobs,
    get: (id) => sql.job(id),
    findFirst: (filter, page) => (servesPage(page) ? sql.jobs(filter, page, 1).then((rows) => rows[0] ?? null) : jobs.findFirst(filter, page)),
    find: (filter, page) => (servesPage(page) ? sql.jobs(filter, page) : jobs.find(filter, page)),
  };
}

// ----- backups -----

function backupWhere(f: BackupFilter, idRange?: { gt?: string; lt?: string }): Prisma.BackupWhereInput {
  const id =
    f.id !== undefined || f.ids !== undefined || idRange
      ? { ...(f.id !== undefined ? { equals: f.id } : {}), ...(f.ids ? { in: [...f.ids] } : {}), ...idRange }
      : undefined;
  const status =
    f.status !== undefined || f.statusNot !== undefined
      ? { ...inList(f.status), ...(f.statusNot !== undefined ? { notIn: list(f.statusNot) } : {}) }
      : undefined;
  return {
    id,
    instanceId: f.instanceId,
    instance: f.tenantId ? { tenantId: f.tenantId } : undefined,
    status,
    trigger: inList(f.trigger),
    scheduleId: f.scheduleId,
    completedAt: f.completedBefore ? { lt: f.completedBefore } : undefined,
    deletedAt: f.deletedBefore ? { lt: f.deletedBefore } : undefined,
    expiresAt: f.expires === undefined ? undefined : f.expires ? { not: null } : null,
    // Prisma passes startsWith to LIKE as it is: the prefix's own % _ \ are escaped to match literally.
    name: f.name !== undefined || f.namePrefix !== undefined ? { equals: f.name, startsWith: f.namePrefix?.replace(/[\\%_]/g, '\\$&') } : undefined,
    pinned: f.pinned,
    verifyStatus: f.verifyStatus,
    volumes: f.volume !== undefined ? { has: f.volume } : undefined,
  };
}

function selfReference(backupId: string): Error {
  return new Error(`backup ${backupId} cannot reference its own archive object`);
}

function backupRecords(db: Db, root: PrismaClient | null): BackupRecords {
  const backups: BackupRecords = {
    objectSharing: (backupId) => objectSharingOf(backups, backupId),
    get: (id) => db.backup.findUnique({ where: { id } }),
    findFirst(filter, page) {
      const p = pageArgs(page);
      return db.backup.findFirst({ where: backupWhere(filter, p.idRange), orderBy: p.orderBy });
    },
    find(filter, page) {
      const p = pageArgs(page);
      return db.backup.findMany({ where: backupWhere(filter, p.idRange), orderBy: p.orderBy, take: p.take });
    },
    count: (filter) => db.backup.count({ where: backupWhere(filter) }),
    leastRecentlyVerified: (take) =>
      db.backup.findMany({ where: { status: 'completed' }, orderBy: [{ verifiedAt: { sort: 'asc', nulls: 'first' } }, { id: 'asc' }], take }),
    async countByStatus() {
      const groups = await db.backup.groupBy({ by: ['status'], _count: { _all: true } });
      return groups.map((g) => ({ status: g.status, count: g._count._all }));
    },
    async lastCompletedPerInstance() {
      const groups = await db.backup.groupBy({ by: ['instanceId'], where: { status: 'completed', completedAt: { not: null } }, _max: { completedAt: true } });
      return groups.flatMap((g) => (g._max.completedAt ? [{ instanceId: g.instanceId, completedAt: g._max.completedAt }] : []));
    },
    async sumSizeBytes(filter) {
      const agg = await db.backup.aggregate({ where: backupWhere(filter), _sum: { sizeBytes: true } });
      return agg._sum.sizeBytes ?? 0n;
    },
    create: ({ encryption, ...backup }) =>
      unique(db.backup.create({ data: { ...backup, ...(encryption !== undefined ? { encryption: json(encryption) } : {}) } })),
    async transition(id, from, to, changes = {}) {
      const { count } = await unique(
        db.backup.updateMany({
          where: { id, status: { in: [...from] } },
          data: { ...backupJsonChanges(changes), status: to },
        }),
      );
      return count === 1;
    },
    async updateWhere(filter, changes) {
      const { count } = await unique(
        db.backup.updateMany({
          where: backupWhere(filter),
          data: backupJsonChanges(changes),
        }),
      );
      return count;
    },
    async deleteWhere(filter) {
      const where = backupWhere(filter);
      const remove = async (tx: Prisma.TransactionClient) => {
        // The references the removed backups hold go first: one DELETE of a reader and its owner
        // together would trip the owner's RESTRICT. A reference held by a backup left in place
        // still does (P2003), and the transaction leaves everything as it was.
        await tx.backupObjectRef.deleteMany({ where: { backup: where } });
        return (await tx.backup.deleteMany({ where })).count;
      };
      return root ? root.$transaction(remove) : remove(db);
    },
    async addReferences(backupId, ownerIds) {
      const owners = [...new Set(ownerIds)];
      if (owners.includes(backupId)) throw selfReference(backupId);
      if (owners.length === 0) return 0;
      // One INSERT: an owner naming no backup (P2003) records none of them.
      const { count } = await db.backupObjectRef.createMany({ data: owners.map((ownerId) => ({ backupId, ownerId })), skipDuplicates: true });
      return count;
    },
    async referencedOwners(backupId) {
      const rows = await db.backupObjectRef.findMany({ where: { backupId }, select: { ownerId: true }, orderBy: { ownerId: 'asc' } });
      return rows.map((r) => r.ownerId);
    },
    async liveReferrers(ownerId) {
      const rows = await db.backupObjectRef.findMany({
        where: { ownerId, backup: { status: { in: LIVE_BACKUP_STATUSES } } },
        select: { backupId: true },
        orderBy: { backupId: 'asc' },
      });
      return rows.map((r) => r.backupId);
    },
  };
  return backups;
}

function withSqlBackupReads(backups: BackupRecords, sql: SqlReads | null): BackupRecords {
  if (!sql) return backups;
  return {
    ...backups,
    get: (id) => sql.backup(id),
    findFirst: (filter, page) => (servesPage(page) ? sql.backups(filter, page, 1).then((rows) => rows[0] ?? null) : backups.findFirst(filter, page)),
    find: (filter, page) => (servesPage(page) ? sql.backups(filter, page) : backups.find(filter, page)),
    referencedOwners: (backupId) => sql.referencedOwners(backupId),
    liveReferrers: (ownerId) => sql.liveReferrers(ownerId, LIVE_BACKUP_STATUSES),
    objectSharing: (backupId) => sql.objectSharing(backupId, LIVE_BACKUP_STATUSES),
  };
}

// ----- instances -----

const WITH_VOLUMES = { volumes: { orderBy: { name: 'asc' } }, tenant: true } as const;

function instanceWhere(f: InstanceFilter, idRange?: { gt?: string; lt?: string }): Prisma.InstanceWhereInput {
  const id =
    f.id !== undefined || f.ids !== undefined || f.notId !== undefined || idRange
      ? {
          ...(f.id !== undefined ? { equals: f.id } : {}),
          ...(f.ids ? { in: [...f.ids] } : {}),
          ...(f.notId !== undefined ? { not: f.notId } : {}),
          ...idRange,
        }
      : undefined;
  return { id, tenantId: f.tenantId, tenant: f.tenantName !== undefined ? { name: f.tenantName } : undefined, nodeId: f.nodeId, name: f.name };
}

function instanceRecords(db: Db): InstanceRecords {
  return {
    get: (id) => db.instance.findUnique({ where: { id }, include: WITH_VOLUMES }),
    findFirst: (filter) => db.instance.findFirst({ where: instanceWhere(filter), include: WITH_VOLUMES }),
    find(filter, page) {
      const p = pageArgs(page);
      return db.instance.findMany({ where: instanceWhere(filter, p.idRange), orderBy: p.orderBy, take: p.take, include: WITH_VOLUMES });
    },
    async ids(filter) {
      return (await db.instance.findMany({ where: instanceWhere(filter), select: { id: true }, orderBy: { id: 'asc' } })).map((i) => i.id);
    },
    create: ({ volumes, ...instance }) =>
      unique(db.instance.create({ data: { ...instance, volumes: { create: volumes.map((v) => ({ ...v })) } }, include: WITH_VOLUMES })),
    async update(id, { volumes, ...changes }) {
      // The instance first: a taken name fails before any volume is replaced.
      const updated = await unique(db.instance.update({ where: { id }, data: changes, include: WITH_VOLUMES }));
      if (!volumes) return updated;
      await db.volume.deleteMany({ where: { instanceId: id } });
      await unique(db.volume.createMany({ data: volumes.map((v) => ({ ...v, instanceId: id })) }));
      return db.instance.findUniqueOrThrow({ where: { id }, include: WITH_VOLUMES });
    },
    async delete(id) {
      await db.instance.delete({ where: { id } });
      // After the delete: one that is refused leaves its jobs visible to the tenant.
      await db.job.updateMany({ where: { tenantId: { not: null }, instanceId: id }, data: { tenantId: null } });
      await db.job.updateMany({ where: { targetTenantId: { not: null }, targetInstanceId: id }, data: { targetTenantId: null } });
    },
    volumes: (filter) =>
      db.volume.findMany({
        where: { instance: instanceWhere(filter) },
        include: { instance: { select: { id: true, name: true, tenantId: true, nodeId: true } } },
        orderBy: { id: 'asc' },
      }),
  };
}

function withSqlInstanceReads(instances: InstanceRecords, sql: SqlReads | null): InstanceRecords {
  return sql ? { ...instances, ids: (filter) => sql.instanceIds(filter) } : instances;
}

// ----- nodes -----

function nodeRecords(db: Db): NodeRecords {
  return {
    get: (id) => db.node.findUnique({ where: { id } }),
    list: () => db.node.findMany({ orderBy: { id: 'asc' } }),
    async heartbeat(id, beat) {
      const { volumeStates, ...rest } = beat;
      const data = {
        ...rest,
        capacity: beat.capacity as Prisma.InputJsonValue,
        ...(volumeStates !== undefined ? { volumeStates: volumeStates as Prisma.InputJsonValue } : {}),
      };
      await db.node.upsert({ where: { id }, create: { id, ...data }, update: data });
    },
  };
}

// ----- schedules -----

function scheduleWhere(f: ScheduleFilter, idRange?: { gt?: string; lt?: string }): Prisma.ScheduleWhereInput {
  const id = f.id !== undefined || idRange ? { ...(f.id !== undefined ? { equals: f.id } : {}), ...idRange } : undefined;
  const instance = f.tenantId !== undefined || f.nodeId !== undefined ? { tenantId: f.tenantId, nodeId: f.nodeId } : undefined;
  return { id, instanceId: f.instanceId, instance, enabled: f.enabled };
}

function scheduleRecords(db: Db): ScheduleRecords {
  return {
    get: (id) => db.schedule.findUnique({ where: { id } }),
    getWithInstance: (id) => db.schedule.findUnique({ where: { id }, include: { instance: { include: WITH_VOLUMES } } }),
    findFirst: (filter) => db.schedule.findFirst({ where: scheduleWhere(filter) }),
    find(filter, page) {
      const p = pageArgs(page);
      return db.schedule.findMany({ where: scheduleWhere(filter, p.idRange), orderBy: p.orderBy, take: p.take });
    },
    create: (schedule) => unique(db.schedule.create({ data: { ...schedule, retention: schedule.retention as Prisma.InputJsonValue } })),
    update: (id, { retention, ...changes }) =>
      db.schedule.update({ where: { id }, data: { ...changes, ...(retention !== undefined ? { retention: retention as Prisma.InputJsonValue } : {}) } }),
    async updateIf(id, where, { retention, ...changes }) {
      const { count } = await db.schedule.updateMany({
        where: {
          id,
          AND: [
            ...(where.lastFiredBefore ? [{ OR: [{ lastFiredAt: null }, { lastFiredAt: { lt: where.lastFiredBefore } }] }] : []),
            ...(where.lastFiredNotAfter ? [{ OR: [{ lastFiredAt: null }, { lastFiredAt: { lte: where.lastFiredNotAfter } }] }] : []),
          ],
        },
        data: { ...changes, ...(retention !== undefined ? { retention: retention as Prisma.InputJsonValue } : {}) },
      });
      return count === 1;
    },
    async delete(id) {
      await db.schedule.delete({ where: { id } });
    },
  };
}

// ----- instance policies -----

function policyRecords(db: Db): InstancePolicyRecords {
  return {
    get: (instanceId) => db.instancePolicy.findUnique({ where: { instanceId } }),
    find(filter, page = {}) {
      const range = { ...(filter.instanceIds ? { in: [...filter.instanceIds] } : {}), gt: page.after, lt: page.before };
      return db.instancePolicy.findMany({
        where: {
          instanceId: range,
          ...(filter.hasManualRetention === undefined
            ? {}
            : { manualRetention: filter.hasManualRetention ? { not: Prisma.DbNull } : { equals: Prisma.DbNull } }),
        },
        orderBy: { instanceId: page.order ?? 'asc' },
        take: page.take,
      });
    },
    upsert(instanceId, { manualRetention, ...changes }) {
      const data = { ...changes, ...(manualRetention !== undefined ? { manualRetention: nullableJson(manualRetention) } : {}) };
      return unique(db.instancePolicy.upsert({ where: { instanceId }, create: { instanceId, ...data }, update: data }));
    },
  };
}

// ----- tokens and tenants -----

function tokenRecords(db: Db): TokenRecords {
  return {
    getByHash: (tokenHash) => db.apiToken.findUnique({ where: { tokenHash }, include: { tenant: true } }),
    get: (id) => db.apiToken.findUnique({ where: { id }, include: { tenant: true } }),
    list(filter, page) {
      const p = pageArgs(page);
      return db.apiToken.findMany({
        where: { ...(filter.includeRevoked ? {} : { revokedAt: null }), ...(p.idRange ? { id: p.idRange } : {}) },
        orderBy: p.orderBy,
        take: p.take,
        include: { tenant: true },
      });
    },
    create: (token) => unique(db.apiToken.create({ data: token, include: { tenant: true } })),
    async createUnlessExists(token) {
      try {
        await db.apiToken.upsert({ where: { tokenHash: token.tokenHash }, create: token, update: {} });
      } catch (err) {
        // Another replica created it at the same moment.
        if ((err as { code?: unknown }).code !== 'P2002') throw err;
      }
    },
    async touch(id, at, staleBefore) {
      await db.apiToken.updateMany({ where: { id, OR: [{ lastUsedAt: null }, { lastUsedAt: { lt: staleBefore } }] }, data: { lastUsedAt: at } });
    },
    async revoke(id, at) {
      await db.apiToken.updateMany({ where: { id, revokedAt: null }, data: { revokedAt: at } });
    },
    countActive: (f) =>
      db.apiToken.count({
        where: {
          revokedAt: null,
          ...(f.role ? { role: f.role } : {}),
          ...(f.tenantId !== undefined ? { tenantId: f.tenantId } : {}),
          ...(f.notId !== undefined ? { id: { not: f.notId } } : {}),
        },
      }),
  };
}

function tenantRecords(db: Db): TenantRecords {
  return {
    get: (id) => db.tenant.findUnique({ where: { id } }),
    getByName: (name) => db.tenant.findUnique({ where: { name } }),
    async ensure(name, id) {
      // INSERT ... ON CONFLICT DO NOTHING, then read: concurrent first uses of a name all get the
      // one row (the insert waits for a concurrent one to commit) and no unique error is raised,
      // so no caller's transaction is aborted by it.
      await db.tenant.createMany({ data: [{ id, name }], skipDuplicates: true });
      const row = await db.tenant.findUnique({ where: { name } });
      if (!row) throw new Error(`tenant ${name} was neither created nor found`);
      return row;
    },
  };
}

/** BackupChanges with its JSON columns (warnings, encryption) as Prisma takes them. */
function backupJsonChanges({ warnings, encryption, ...rest }: BackupChanges) {
  return {
    ...rest,
    ...(warnings !== undefined ? { warnings: json(warnings) } : {}),
    ...(encryption !== undefined ? { encryption: json(encryption) } : {}),
  };
}
