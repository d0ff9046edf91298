import type {
  ApiToken,
  Backup,
  BackupKind,
  BackupStatus,
  BackupTrigger,
  Instance,
  InstancePolicy,
  Job,
  JobStatus,
  JobType,
  Node,
  Schedule,
  Tenant,
  VerifyStatus,
  Volume,
} from '../generated/prisma/client.ts';
import type { HookRecords } from './hook.records.ts';

/**
 * The persistence seam (STYLE.md "A persistence seam"): every service, pipeline and handler reads
 * and writes Cairn's records through these interfaces, never through Prisma. Two implementations:
 * `PrismaRecords` (Postgres) and `MemoryRecords` (unit tests). Rows are the plain shapes of the
 * data model (SPEC §3); filters are small typed objects both implementations understand alike.
 */

export type { ApiToken, Backup, BackupKind, BackupStatus, BackupTrigger, Instance, InstancePolicy, Job, JobStatus, JobType, Node, Schedule, Tenant, Volume };
export type { VerifyStatus };

/** A JSON value as stored in a Json column. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
/** What may be written into a Json column (objects with optional fields included). */
export type JsonInput = object | JsonValue;

export type OneOrMany<T> = T | readonly T[];

/** Ordering and paging by id (ULIDs sort by creation time). */
export interface Page {
  order?: 'asc' | 'desc';
  /** Only rows with an id greater than this. */
  after?: string;
  /** Only rows with an id smaller than this. */
  before?: string;
  take?: number;
}

// ----- jobs -----

export interface JobFilter {
  id?: string;
  ids?: readonly string[];
  type?: OneOrMany<JobType>;
  status?: OneOrMany<JobStatus>;
  backupId?: string;
  instanceId?: string;
  targetInstanceId?: string;
  /** Jobs acting on any of these instances, as source or as restore target. */
  touchesInstances?: readonly string[];
  /** Jobs acting on an instance of this tenant, as source or as restore target (one indexed condition, no list of instances). */
  touchesTenant?: string;
  /** Jobs acting on this instance, as source or as restore target (combines with `touchesInstances`: both must hold). */
  touchesInstance?: string;
  nodeId?: string;
  queue?: string | null;
  /** Jobs that ran on this node or wait in its queue (`nodeId = X OR queue = node.X`). */
  onNode?: string;
  parentJobId?: string;
  createdBefore?: Date;
  /** Jobs that ended with one of these error codes (verify findings: metrics). */
  errorCode?: OneOrMany<string>;
}

export interface NewJob {
  id: string;
  type: JobType;
  status?: JobStatus;
  instanceId?: string | null;
  backupId?: string | null;
  targetInstanceId?: string | null;
  nodeId?: string | null;
  queue?: string | null;
  params?: JsonInput;
  requestedBy: string;
  startedAt?: Date | null;
  parentJobId?: string | null;
  /** For a job recorded already finished (a schedule skip): its end and result. */
  finishedAt?: Date | null;
  result?: JsonInput | null;
}

/** Fields a state change may set besides the status. */
export interface JobChanges {
  startedAt?: Date | null;
  finishedAt?: Date | null;
  attempts?: number;
  nodeId?: string | null;
  error?: string | null;
  errorCode?: string | null;
  result?: JsonInput | null;
  progress?: JsonInput | null;
}

/**
 * A job records the tenants of its instance and restore target when created (`touchesTenant`);
 * removing the instance clears them, so the tenant no longer finds the job.
 */
export interface JobRecords {
  get(id: string): Promise<Job | null>;
  findFirst(filter: JobFilter, page?: Page): Promise<Job | null>;
  find(filter: JobFilter, page?: Page): Promise<Job[]>;
  count(filter: JobFilter): Promise<number>;
  /** Number of jobs per (type, status) among those matching. */
  countByTypeAndStatus(filter?: JobFilter): Promise<Array<{ type: JobType; status: JobStatus; count: number }>>;
  /** Number of jobs per node among those matching (jobs without a node are left out). */
  countByNode(filter?: JobFilter): Promise<Array<{ nodeId: string; count: number }>>;
  create(job: NewJob): Promise<Job>;
  /**
   * Conditional state change (SPEC §3): only when the status is one of `from`, so a late writer
   * never overwrites a newer state. A terminal `to` stamps `finishedAt` unless `changes` sets it.
   * Returns whether the change happened.
   */
  transition(id: string, from: readonly JobStatus[], to: JobStatus, changes?: JobChanges): Promise<boolean>;
  /** Latest progress of a job (best effort; no status condition). */
  setProgress(id: string, progress: JsonInput): Promise<void>;
}

// ----- backups -----

export interface BackupFilter {
  id?: string;
  ids?: readonly string[];
  instanceId?: string;
  /** Only backups of instances of this tenant. */
  tenantId?: string;
  status?: OneOrMany<BackupStatus>;
  statusNot?: OneOrMany<BackupStatus>;
  trigger?: OneOrMany<BackupTrigger>;
  scheduleId?: string;
  completedBefore?: Date;
  deletedBefore?: Date;
  /** true: only backups with an expiry; false: only those without. */
  expires?: boolean;
  /** Exactly this name. */
  name?: string;
  /** Names starting with this (case-sensitive); unnamed backups never match. */
  namePrefix?: string;
  pinned?: boolean;
  /** The outcome of the backup's last verification (issue 14). */
  verifyStatus?: VerifyStatus;
  /** Backups that include the volume of this name. */
  volume?: string;
}

export interface NewBackup {
  id: string;
  instanceId: string;
  status?: BackupStatus;
  trigger: BackupTrigger;
  kind?: BackupKind;
  parentId?: string | null;
  scheduleId?: string | null;
  volumes: string[];
  storageKey: string;
  indexKey: string;
  compression: string;
  requestedBy: string;
  /** Unique per instance among the backups that are not deleting or deleted (UniqueViolation on ['instanceId', 'name']). */
  name?: string | null;
  note?: string | null;
  pinned?: boolean;
  /** A row recreated from the bucket (catalog rebuild, issue 14) keeps its original creation time and encryption field. */
  createdAt?: Date;
  encryption?: JsonInput;
}

export interface BackupChanges {
  /** An auto backup's kind decided when its job starts (a schedule's), or an incremental turned full when its parent is unusable. */
  kind?: BackupKind;
  parentId?: string | null;
  /** The archive format version the backup was written in (its index's `version`). */
  format?: number;
  startedAt?: Date | null;
  completedAt?: Date | null;
  deletedAt?: Date | null;
  expiresAt?: Date | null;
  sizeBytes?: bigint | null;
  logicalBytes?: bigint | null;
  /** Bytes of this backup's tree read from other backups' archive objects (an incremental's unchanged entries). */
  reusedBytes?: bigint | null;
  fileCount?: number | null;
  sha256?: string | null;
  warnings?: JsonInput;
  error?: string | null;
  /** A name taken by another backup of the instance that is not deleting or deleted is a UniqueViolation on ['instanceId', 'name']. */
  name?: string | null;
  note?: string | null;
  pinned?: boolean;
  /** Encryption at rest: the wrap of the data key of this upload attempt (crypto/keyring.ts), or a re-wrap under another key. */
  encryption?: JsonInput;
  /** The last verification (issue 14): when, at which level, its outcome and what was wrong. */
  verifiedAt?: Date | null;
  verifyLevel?: string | null;
  verifyStatus?: VerifyStatus | null;
  verifyError?: string | null;
}

export interface BackupRecords {
  get(id: string): Promise<Backup | null>;
  findFirst(filter: BackupFilter, page?: Page): Promise<Backup | null>;
  find(filter: BackupFilter, page?: Page): Promise<Backup[]>;
  count(filter: BackupFilter): Promise<number>;
  countByStatus(): Promise<Array<{ status: BackupStatus; count: number }>>;
  /** For each instance with a completed backup, when the newest of them completed (metrics: last success). */
  lastCompletedPerInstance(): Promise<Array<{ instanceId: string; completedAt: Date }>>;
  /** Sum of `sizeBytes` over the matching backups. */
  sumSizeBytes(filter: BackupFilter): Promise<bigint>;
  create(backup: NewBackup): Promise<Backup>;
  /** Conditional state change, like JobRecords.transition. */
  transition(id: string, from: readonly BackupStatus[], to: BackupStatus, changes?: BackupChanges): Promise<boolean>;
  /** Sets fields of the matching backups without changing their status; returns how many changed. */
  updateWhere(filter: BackupFilter, changes: BackupChanges): Promise<number>;
  /**
   * Removes the rows of the matching backups (an instance's removal) with the object references
   * they hold; returns how many. Refused (foreign key, P2003), changing nothing, when a backup left
   * in place still references the archive object of one of them.
   */
  deleteWhere(filter: BackupFilter): Promise<number>;
  /**
   * Completed backups, the least recently verified first (never verified before any, then by
   * `verifiedAt`, then by id): the fleet-wide verify policy's order (issue 14).
   */
  leastRecentlyVerified(take: number): Promise<Backup[]>;

  // Object references (incremental backups): which backups read from which archive objects. An
  // archive object is named by its owner, the backup that wrote it (`storageKey`). See
  // domain/object-references.ts for the rules that keep a referenced object from being deleted.

  /**
   * Records that backup `backupId` reads from the archive objects of `ownerIds` (idempotent: a
   * reference already recorded is kept as it is); returns how many are new. An owner naming no
   * backup is a foreign key error (P2003) and a backup referencing itself is refused; either
   * way nothing is recorded.
   */
  addReferences(backupId: string, ownerIds: readonly string[]): Promise<number>;
  /** Ids of the backups whose archive objects `backupId` reads from, ascending. */
  referencedOwners(backupId: string): Promise<string[]>;
  /**
   * Ids of the live backups (pending, running, completed) that read from the archive object of
   * `ownerId`, ascending. A deleting, deleted, failed or cancelled backup keeps nothing alive.
   */
  liveReferrers(ownerId: string): Promise<string[]>;
  /** `liveReferrers` of the backup and, for each of its `referencedOwners`, the owner's row and its `liveReferrers`: in one read where it can be. */
  objectSharing(backupId: string): Promise<ObjectSharing>;
}

/** Who shares the archive objects a backup holds or reads (what deleting it would free: exclusiveBytes). */
export interface ObjectSharing {
  /** Live backups reading the backup's own archive object, ascending. */
  liveReferrers: string[];
  /** The owners whose objects the backup reads, ascending, each with the live backups reading that owner's object. */
  owners: Array<{ owner: Backup; liveReferrers: string[] }>;
}

/** `objectSharing` from the separate reads (the in-memory records, and inside a transaction). */
export async function objectSharingOf(backups: Pick<BackupRecords, 'get' | 'referencedOwners' | 'liveReferrers'>, backupId: string): Promise<ObjectSharing> {
  const liveReferrers = await backups.liveReferrers(backupId);
  const owners: ObjectSharing['owners'] = [];
  for (const ownerId of await backups.referencedOwners(backupId)) {
    const owner = await backups.get(ownerId);
    // An owner row cannot vanish while referenced (RESTRICT).
    if (owner) owners.push({ owner, liveReferrers: await backups.liveReferrers(ownerId) });
  }
  return { liveReferrers, owners };
}

/** Backup states in which a backup keeps the archive objects it reads from (and its own) alive. */
export const LIVE_BACKUP_STATUSES: BackupStatus[] = ['pending', 'running', 'completed'];

/** Backup states in which a backup's name is its own: a deleting or deleted backup frees its name. */
export const NAMED_BACKUP_STATUSES: BackupStatus[] = ['pending', 'running', 'completed', 'failed', 'cancelled'];

// ----- instance policies -----

export interface InstancePolicyFilter {
  instanceIds?: readonly string[];
  /** true: only policies with a manual retention policy; false: only those without. */
  hasManualRetention?: boolean;
}

export interface InstancePolicyChanges {
  /** null: the configured MANUAL_BACKUP_LIMIT. */
  manualBackupLimit?: number | null;
  /** null: manual backups are kept until deleted. */
  manualRetention?: JsonInput | null;
  timezone?: string;
}

/** Per-instance overrides (issue 13), one row per instance at most, removed with the instance. */
export interface InstancePolicyRecords {
  get(instanceId: string): Promise<InstancePolicy | null>;
  /** Ordered and paged by instance id. */
  find(filter: InstancePolicyFilter, page?: Page): Promise<InstancePolicy[]>;
  /** Creates the instance's policy with `changes`, or changes the one it has; an unknown instance is a foreign key error (P2003). */
  upsert(instanceId: string, changes: InstancePolicyChanges): Promise<InstancePolicy>;
}

// ----- instances and volumes -----

export type InstanceWithVolumes = Instance & { volumes: Volume[]; tenant: Tenant };

export interface NewVolume {
  id: string;
  name: string;
  hostPath: string;
  excludes: string[];
}

/** A registered volume with the instance it belongs to. */
export interface PlacedVolume extends Volume {
  instance: { id: string; name: string; tenantId: string; nodeId: string };
}

export interface InstanceFilter {
  id?: string;
  ids?: readonly string[];
  tenantId?: string;
  tenantName?: string;
  nodeId?: string;
  name?: string;
  /** Leaves this instance out. */
  notId?: string;
}

export interface InstanceRecords {
  get(id: string): Promise<InstanceWithVolumes | null>;
  findFirst(filter: InstanceFilter): Promise<InstanceWithVolumes | null>;
  find(filter: InstanceFilter, page?: Page): Promise<InstanceWithVolumes[]>;
  /** Ids of the matching instances. */
  ids(filter: InstanceFilter): Promise<string[]>;
  create(instance: { id: string; tenantId: string; name: string; nodeId: string; volumes: NewVolume[] }): Promise<InstanceWithVolumes>;
  /** Changes name and node, and replaces the volumes when given. */
  update(id: string, changes: { name?: string; nodeId?: string; volumes?: NewVolume[] }): Promise<InstanceWithVolumes>;
  delete(id: string): Promise<void>;
  /** Every volume of the instances matching, with its instance (e.g. all volumes on one node). */
  volumes(filter: InstanceFilter): Promise<PlacedVolume[]>;
}

// ----- nodes -----

export interface NodeHeartbeat {
  volumeRoots: string[];
  version: string;
  lastHeartbeatAt: Date;
  capacity: JsonInput;
  /** Names of the commands in the node worker's hooks file (CAIRN_NODE_HOOKS); left as stored when not given. */
  hookCommands?: string[];
  /** What the node sees at each registered volume's host path (hostPath -> VolumeState); left as stored when not given. */
  volumeStates?: JsonInput;
}

export interface NodeRecords {
  get(id: string): Promise<Node | null>;
  list(): Promise<Node[]>;
  /** Registers the node, or refreshes what it reported. */
  heartbeat(id: string, beat: NodeHeartbeat): Promise<void>;
}

// ----- schedules -----

export interface ScheduleFilter {
  id?: string;
  instanceId?: string;
  tenantId?: string;
  /** Schedules of the instances on this node. */
  nodeId?: string;
  enabled?: boolean;
}

export interface NewSchedule {
  id: string;
  instanceId: string;
  cron: string;
  timezone: string;
  volumes: string[];
  retention: JsonInput;
  enabled: boolean;
  nextRunAt?: Date | null;
}

export interface ScheduleChanges {
  cron?: string;
  timezone?: string;
  volumes?: string[];
  retention?: JsonInput;
  enabled?: boolean;
  lastFiredAt?: Date | null;
  lastBackupId?: string | null;
  lastSkippedAt?: Date | null;
  lastSkipReason?: string | null;
  nextRunAt?: Date | null;
}

export type ScheduleWithInstance = Schedule & { instance: InstanceWithVolumes };

export interface ScheduleRecords {
  get(id: string): Promise<Schedule | null>;
  getWithInstance(id: string): Promise<ScheduleWithInstance | null>;
  findFirst(filter: ScheduleFilter): Promise<Schedule | null>;
  find(filter: ScheduleFilter, page?: Page): Promise<Schedule[]>;
  create(schedule: NewSchedule): Promise<Schedule>;
  update(id: string, changes: ScheduleChanges): Promise<Schedule>;
  /** Changes the schedule only when `where` holds for it (e.g. a firing newer than the last); returns whether it did. */
  updateIf(id: string, where: { lastFiredBefore?: Date; lastFiredNotAfter?: Date }, changes: ScheduleChanges): Promise<boolean>;
  delete(id: string): Promise<void>;
}

// ----- tenants and tokens -----

export type ApiTokenWithTenant = ApiToken & { tenant: Tenant | null };

export interface NewToken {
  id: string;
  tenantId: string | null;
  role: ApiToken['role'];
  name: string;
  tokenHash: string;
}

export interface TokenRecords {
  getByHash(tokenHash: string): Promise<ApiTokenWithTenant | null>;
  get(id: string): Promise<ApiTokenWithTenant | null>;
  list(filter: { includeRevoked?: boolean }, page?: Page): Promise<ApiTokenWithTenant[]>;
  create(token: NewToken): Promise<ApiTokenWithTenant>;
  /** Creates the token unless one with its hash exists (which is left as it is). */
  createUnlessExists(token: NewToken): Promise<void>;
  /** Sets lastUsedAt to `at` unless it is already later than `staleBefore`. */
  touch(id: string, at: Date, staleBefore: Date): Promise<void>;
  /** Revokes the token unless already revoked. */
  revoke(id: string, at: Date): Promise<void>;
  /** How many tokens are not revoked, of `role` and `tenantId` (null: none) if given, other than `notId` if given. */
  countActive(filter: { role?: ApiToken['role']; tenantId?: string | null; notId?: string }): Promise<number>;
}

export interface TenantRecords {
  get(id: string): Promise<Tenant | null>;
  getByName(name: string): Promise<Tenant | null>;
  /**
   * The tenant of this name, created (with `id`) when new. Concurrent calls for one new name all
   * succeed with the same row; call it outside a request's transaction, so that transaction never
   * waits on another's insert of the name.
   */
  ensure(name: string, id: string): Promise<Tenant>;
}

// ----- the bundle -----

/** Job states in which a job still holds its place (one backup or restore per instance, a reader of a backup). */
export const ACTIVE_JOB_STATUSES: JobStatus[] = ['queued', 'running'];
export const TERMINAL_JOB_STATUSES: JobStatus[] = ['succeeded', 'failed', 'cancelled', 'interrupted'];

/** `admin-tokens` (id `all`): the set of active admin tokens, so the last one is never revoked. */
export type LockKind = 'instance' | 'backup' | 'schedule' | 'node' | 'admin-tokens';

export interface RecordSet {
  jobs: JobRecords;
  backups: BackupRecords;
  instances: InstanceRecords;
  nodes: NodeRecords;
  schedules: ScheduleRecords;
  tokens: TokenRecords;
  tenants: TenantRecords;
  policies: InstancePolicyRecords;
  hooks: HookRecords;
}

/** The records as seen inside one transaction. */
export interface TxRecords extends RecordSet {
  /**
   * Takes the lock of one record until the transaction ends: the one lock of every service, so
   * check-then-write rules a unique index cannot express ("one backup or restore per instance",
   * "no restore of a backup being deleted") hold across replicas. Lock order: schedule, backup,
   * instance, node.
   */
  lock(kind: LockKind, id: string): Promise<void>;
}

export interface Records extends RecordSet {
  /** Runs `work` in one transaction: all of its writes happen, or none. */
  transaction<T>(work: (tx: TxRecords) => Promise<T>, options?: { timeoutMs?: number }): Promise<T>;
  /** Resolves when the database answers (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A write refused by a unique constraint (duplicate name, token hash...). Both implementations
 * throw it, so services map it to a 409 without knowing the database.
 */
export class UniqueViolation extends Error {
  constructor(
    readonly fields: string[],
    options?: { cause?: unknown },
  ) {
    super(`unique constraint violated on ${fields.join(', ') || 'a field'}`, options);
    this.name = 'UniqueViolation';
  }
}
