import type { InstanceSummary } from './instance-ref.ts';

/**
 * The parts of the `/v1` API's answers that the CLI reads (the full shapes are core's
 * `api/*.schemas.ts`, made by the gateway's presenters). Only the fields a command uses are named;
 * what it only prints is a `Row` (table) or stays `unknown` (--json). Object types rather than
 * interfaces, so that rows pass to printTable as records.
 */

/** An object printed as a table row, or as JSON, without the CLI reading its fields. */
export type Row = Record<string, unknown>;

/** `{items, nextCursor}`: a page of a list; nextCursor is null on the last page. */
export type Page<T> = { items: T[]; nextCursor: string | null };

export type JobProgress = { stage: string; bytesDone: number; bytesTotal: number; filesDone: number; filesTotal: number; percent: number };

/** A job: `GET /v1/jobs/:id`, cancel, and the data of its `state`/`progress`/`end` events. */
export type Job = {
  id: string;
  status: string;
  instanceId: string | null;
  params: Record<string, unknown>;
  progress: JobProgress | null;
  result: unknown;
  error: string | null;
  /** A migrate's child jobs, oldest first. */
  children?: { id: string; type: string; status: string; nodeId: string | null }[];
};

/** A migrate job: it always names its source instance. */
export type MigrateJob = Job & { instanceId: string; params: { sourceInstanceId?: string } };

/** `202 {job}`: a restore, a migrate or a verify started. */
export type JobStarted<J extends Job = Job> = { job: J };

export type Backup = {
  id: string;
  instanceId: string;
  status: string;
  kind: string;
  parentId: string | null;
  storedBytes: number | null;
  reusedBytes: number | null;
  logicalBytes: number | null;
  name: string | null;
  note: string | null;
  pinned: boolean;
};

/** `202 {backup, job}`: a backup started (by hand or by running a schedule). */
export type BackupStarted = { backup: Backup; job: Job };

/** `POST /v1/backups/delete`: one result per id, in request order. */
export type BatchDeleteResult = { results: { id: string; ok: boolean; error?: { message: string } }[] };

/** An entry of `GET /v1/backups/:id/files`: printed as a row, with its permission bits. */
export type FileEntry = { mode: number; [column: string]: unknown };

/** A retention preview, of a schedule or of an instance's manual backups: what is kept and why, what is deleted. */
export type RetentionPlan = {
  keep: { backupId: string; createdAt: string; reasons: { rule: string; bucket: string }[] }[];
  drop: { backupId: string; createdAt: string; reason: string }[];
  pinned?: string[];
};

export type Volume = { name: string; hostPath: string; excludes: string[] };

/** An instance: `GET`, `POST`, `PATCH /v1/instances/...`; `hookSecret` only in the answer that made or rotated it. */
export type Instance = InstanceSummary & { volumes: Volume[]; hooks: unknown; hookSecret?: string };

/** `DELETE /v1/instances/:id`. */
export type DeletedInstance = { id: string; deletedBackups: number; cancelledJobs: string[] };

/** `GET /v1/instances/:id/coverage`: a row per volume, with the free space of its root. */
export type Coverage = { volumes: { freeBytes: number | null; totalBytes: number | null; [column: string]: unknown }[] };

/** `GET /v1/nodes/:id`: printed as a row, with its volume roots and their space from the last heartbeat. */
export type NodeDetail = {
  volumeRoots: string[];
  capacity: { roots?: Record<string, { freeBytes: number; totalBytes: number }> } | null;
  [column: string]: unknown;
};

/** `DELETE /v1/schedules/:id`. */
export type DeletedSchedule = { id: string; keptBackups: number };

/** `POST /v1/tokens`: the token, with its secret shown only in this answer. */
export type CreatedToken = { id: string; role: string; tenant: string | null; token: string };
