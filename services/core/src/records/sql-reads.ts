import pg from 'pg';
import { isUnavailableError } from '../domain/retry-write.ts';
import { CairnError } from '../errors.ts';
import { Prisma } from '../generated/prisma/client.ts';
import { nodeQueueName } from '../queue/contracts.ts';
import type { Backup, BackupFilter, InstanceFilter, Job, JobFilter, ObjectSharing, Page } from './records.ts';

/**
 * The hot reads of the records (issue 17: the gateway's list and show requests) as plain SQL on
 * the pg pool Prisma's adapter also uses. Through Prisma each of them went through its query
 * compiler and interpreter, several times the CPU of the query itself. Rows come back exactly as
 * Prisma returns them (the contract suite runs on both): all scalar columns, timestamp(3) read as
 * UTC, BIGINT as a bigint, JSON parsed. Writes and transactions stay with Prisma.
 */

const TIMESTAMP_OID = 1114;
const INT8_OID = 20;

/** `timestamp without time zone` holds UTC (what Prisma writes), read as Prisma's adapter does. */
const parseUtc = (text: string) => new Date(`${text.replace(' ', 'T')}+00:00`);

const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === TIMESTAMP_OID) return parseUtc;
    if (oid === INT8_OID) return BigInt;
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

const columns = (fields: Record<string, string>) =>
  Object.values(fields)
    .map((c) => `"${c}"`)
    .join(', ');
const BACKUP_COLUMNS = columns(Prisma.BackupScalarFieldEnum);
const OWNER_COLUMNS = Object.values(Prisma.BackupScalarFieldEnum)
  .map((c) => `o."${c}"`)
  .join(', ');
const JOB_COLUMNS = columns(Prisma.JobScalarFieldEnum);

/** Positional parameters of one statement. */
class Params {
  readonly values: unknown[] = [];
  add(value: unknown, cast = ''): string {
    this.values.push(value);
    return `$${this.values.length}${cast}`;
  }
}

/** As Prisma reads `{ field: value }`: undefined is no condition, null is IS NULL. */
function equals(where: string[], p: Params, column: string, value: string | boolean | null | undefined, cast = ''): void {
  if (value === undefined) return;
  where.push(value === null ? `"${column}" IS NULL` : `"${column}" = ${p.add(value, cast)}`);
}

function oneOrMany<T>(value: T | readonly T[]): T[] {
  return Array.isArray(value) ? [...value] : [value as T];
}

function idConditions(where: string[], p: Params, f: { id?: string; ids?: readonly string[] }, page: Page): void {
  equals(where, p, 'id', f.id);
  if (f.ids) where.push(`"id" = ANY(${p.add([...f.ids], '::text[]')})`);
  if (page.after !== undefined) where.push(`"id" > ${p.add(page.after)}`);
  if (page.before !== undefined) where.push(`"id" < ${p.add(page.before)}`);
}

/** A Date compared with a timestamp(3) column: as UTC, whatever the process's time zone (Postgres drops the Z for this type). */
const utc = (d: Date) => d.toISOString();

function backupWhere(f: BackupFilter, page: Page, p: Params): string[] {
  const where: string[] = [];
  idConditions(where, p, f, page);
  equals(where, p, 'instanceId', f.instanceId);
  if (f.tenantId) where.push(`"instanceId" IN (SELECT "id" FROM "Instance" WHERE "tenantId" = ${p.add(f.tenantId)})`);
  if (f.status !== undefined) where.push(`"status" = ANY(${p.add(oneOrMany(f.status), '::"BackupStatus"[]')})`);
  if (f.statusNot !== undefined) where.push(`"status" <> ALL(${p.add(oneOrMany(f.statusNot), '::"BackupStatus"[]')})`);
  if (f.trigger !== undefined) where.push(`"trigger" = ANY(${p.add(oneOrMany(f.trigger), '::"BackupTrigger"[]')})`);
  equals(where, p, 'scheduleId', f.scheduleId);
  if (f.completedBefore) where.push(`"completedAt" < ${p.add(utc(f.completedBefore), '::timestamp')}`);
  if (f.deletedBefore) where.push(`"deletedAt" < ${p.add(utc(f.deletedBefore), '::timestamp')}`);
  if (f.expires !== undefined) where.push(f.expires ? `"expiresAt" IS NOT NULL` : `"expiresAt" IS NULL`);
  equals(where, p, 'name', f.name);
  // The prefix's own % _ \ match literally (LIKE's escape character is the backslash).
  if (f.namePrefix !== undefined) where.push(`"name" LIKE ${p.add(`${f.namePrefix.replace(/[\\%_]/g, '\\$&')}%`)}`);
  equals(where, p, 'pinned', f.pinned);
  equals(where, p, 'verifyStatus', f.verifyStatus, '::"VerifyStatus"');
  if (f.volume !== undefined) where.push(`"volumes" @> ARRAY[${p.add(f.volume)}]::text[]`);
  return where;
}

function jobWhere(f: JobFilter, page: Page, p: Params): string[] {
  const where: string[] = [];
  if (f.touchesInstances) {
    const ids = p.add([...f.touchesInstances], '::text[]');
    where.push(`("instanceId" = ANY(${ids}) OR "targetInstanceId" = ANY(${ids}))`);
  }
  if (f.touchesInstance !== undefined) {
    const id = p.add(f.touchesInstance);
    where.push(`("instanceId" = ${id} OR "targetInstanceId" = ${id})`);
  }
  if (f.touchesTenant !== undefined) {
    const id = p.add(f.touchesTenant);
    where.push(`("tenantId" = ${id} OR "targetTenantId" = ${id})`);
  }
  if (f.onNode) where.push(`("nodeId" = ${p.add(f.onNode)} OR "queue" = ${p.add(nodeQueueName(f.onNode))})`);
  idConditions(where, p, f, page);
  if (f.type !== undefined) where.push(`"type" = ANY(${p.add(oneOrMany(f.type), '::"JobType"[]')})`);
  if (f.status !== undefined) where.push(`"status" = ANY(${p.add(oneOrMany(f.status), '::"JobStatus"[]')})`);
  equals(where, p, 'backupId', f.backupId);
  equals(where, p, 'instanceId', f.instanceId);
  equals(where, p, 'targetInstanceId', f.targetInstanceId);
  equals(where, p, 'nodeId', f.nodeId);
  equals(where, p, 'queue', f.queue);
  equals(where, p, 'parentJobId', f.parentJobId);
  if (f.createdBefore) where.push(`"createdAt" < ${p.add(utc(f.createdBefore), '::timestamp')}`);
  if (f.errorCode !== undefined) where.push(`"errorCode" = ANY(${p.add(oneOrMany(f.errorCode), '::text[]')})`);
  return where;
}

function select(columnList: string, table: string, where: string[], page: Page, p: Params, take = page.take): string {
  const order = page.order === 'desc' ? 'DESC' : 'ASC';
  const limit = take !== undefined ? ` LIMIT ${p.add(take, '::int')}` : '';
  return `SELECT ${columnList} FROM "${table}"${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY "id" ${order}${limit}`;
}

/** Whether a page is one these reads serve (a negative take, Prisma's "from the end", is left to Prisma). */
export const servesPage = (page: Page = {}) => page.take === undefined || page.take >= 0;

export class SqlReads {
  constructor(private readonly pool: pg.Pool) {}

  private async rows<T>(text: string, values: unknown[]): Promise<T[]> {
    try {
      return (await this.pool.query({ text, values, types })).rows as T[];
    } catch (err) {
      // As Prisma's errors for the same cause are answered: the database is down, not the request wrong.
      if (isUnavailableError(err)) throw new CairnError('unavailable', 'database unavailable', { cause: err });
      throw err;
    }
  }

  async backup(id: string): Promise<Backup | null> {
    return (await this.rows<Backup>(`SELECT ${BACKUP_COLUMNS} FROM "Backup" WHERE "id" = $1`, [id]))[0] ?? null;
  }

  backups(filter: BackupFilter, page: Page = {}, take?: number): Promise<Backup[]> {
    const p = new Params();
    return this.rows(select(BACKUP_COLUMNS, 'Backup', backupWhere(filter, page, p), page, p, take ?? page.take), p.values);
  }

  async job(id: string): Promise<Job | null> {
    return (await this.rows<Job>(`SELECT ${JOB_COLUMNS} FROM "Job" WHERE "id" = $1`, [id]))[0] ?? null;
  }

  jobs(filter: JobFilter, page: Page = {}, take?: number): Promise<Job[]> {
    const p = new Params();
    return this.rows(select(JOB_COLUMNS, 'Job', jobWhere(filter, page, p), page, p, take ?? page.take), p.values);
  }

  /** Ids of the instances matching, ascending. */
  async instanceIds(f: InstanceFilter): Promise<string[]> {
    const p = new Params();
    const where: string[] = [];
    idConditions(where, p, f, {});
    if (f.notId !== undefined) where.push(`"id" <> ${p.add(f.notId)}`);
    equals(where, p, 'tenantId', f.tenantId);
    if (f.tenantName !== undefined) where.push(`"tenantId" IN (SELECT "id" FROM "Tenant" WHERE "name" = ${p.add(f.tenantName)})`);
    equals(where, p, 'nodeId', f.nodeId);
    equals(where, p, 'name', f.name);
    const rows = await this.rows<{ id: string }>(select('"id"', 'Instance', where, {}, p), p.values);
    return rows.map((r) => r.id);
  }

  /** Owners of the archive objects a backup reads, ascending. */
  async referencedOwners(backupId: string): Promise<string[]> {
    const rows = await this.rows<{ ownerId: string }>(`SELECT "ownerId" FROM "BackupObjectRef" WHERE "backupId" = $1 ORDER BY "ownerId"`, [backupId]);
    return rows.map((r) => r.ownerId);
  }

  /** Live backups reading an owner's archive object, ascending. */
  async liveReferrers(ownerId: string, live: readonly string[]): Promise<string[]> {
    const rows = await this.rows<{ backupId: string }>(
      `SELECT r."backupId" FROM "BackupObjectRef" r JOIN "Backup" b ON b."id" = r."backupId"
       WHERE r."ownerId" = $1 AND b."status" = ANY($2::"BackupStatus"[]) ORDER BY r."backupId"`,
      [ownerId, [...live]],
    );
    return rows.map((r) => r.backupId);
  }

  /**
   * `objectSharing` in one statement: a row per owner (its columns and its live readers), each
   * carrying the backup's own live readers; one row of nulls but those when it reads no owner.
   */
  async objectSharing(backupId: string, live: readonly string[]): Promise<ObjectSharing> {
    const liveReaders = (owner: string) =>
      `ARRAY(SELECT r."backupId" FROM "BackupObjectRef" r JOIN "Backup" b ON b."id" = r."backupId"
             WHERE r."ownerId" = ${owner} AND b."status" = ANY($2::"BackupStatus"[]) ORDER BY r."backupId")`;
    const rows = await this.rows<Backup & { selfLiveReferrers: string[]; ownerLiveReferrers: string[] | null }>(
      `SELECT self."selfLiveReferrers", owners.* FROM (SELECT ${liveReaders('$1')} AS "selfLiveReferrers") self
       LEFT JOIN LATERAL (
         SELECT ${OWNER_COLUMNS}, ${liveReaders('o."id"')} AS "ownerLiveReferrers"
         FROM "BackupObjectRef" ref JOIN "Backup" o ON o."id" = ref."ownerId" WHERE ref."backupId" = $1
       ) owners ON true
       ORDER BY owners."id"`,
      [backupId, [...live]],
    );
    const owners: ObjectSharing['owners'] = [];
    for (const { selfLiveReferrers: _, ownerLiveReferrers, ...owner } of rows) {
      if (ownerLiveReferrers !== null) owners.push({ owner: owner as Backup, liveReferrers: ownerLiveReferrers });
    }
    return { liveReferrers: rows[0]?.selfLiveReferrers ?? [], owners };
  }
}
