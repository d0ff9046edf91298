/** The API's JSON shapes the UI reads (a subset of the OpenAPI document at /openapi.json). */

export interface ApiErrorBody {
  error: { code: string; message: string; details?: unknown };
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface Volume {
  name: string;
  hostPath: string;
  excludes: string[];
}

export interface Hook {
  type: 'webhook' | 'command';
  url?: string;
  name?: string;
  timeoutSeconds?: number;
  onError?: 'fail' | 'continue';
}

export type HookStage = 'preBackup' | 'postBackup' | 'preRestore' | 'postRestore';

export interface Instance {
  id: string;
  name: string;
  tenant: string;
  nodeId: string;
  volumes: Volume[];
  hooks: Partial<Record<HookStage, Hook>> | null;
  /** Only in the response that made it (the first hooks, or rotateHookSecret). */
  hookSecret?: string;
  createdAt: string;
}

export interface VolumeCoverage {
  name: string;
  hostPath: string;
  covered: boolean;
  root: string | null;
  freeBytes: number | null;
  totalBytes: number | null;
  reason: string | null;
}

export interface Coverage {
  instanceId: string;
  nodeId: string;
  node: { known: boolean; online: boolean; lastHeartbeatAt: string | null; heartbeatAgeSeconds: number | null };
  covered: string[];
  skipped: { name: string; reason: string }[];
  volumes: VolumeCoverage[];
  warnings: string[];
  lastBackup: { id: string; status: string; createdAt: string; completedAt: string | null; warnings: unknown[] } | null;
}

export type BackupStatus = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled' | 'deleting' | 'deleted';

export interface Backup {
  id: string;
  instanceId: string;
  status: BackupStatus;
  trigger: 'manual' | 'schedule' | 'migrate';
  kind: 'full' | 'incremental';
  parentId: string | null;
  volumes: string[];
  storedBytes: number | null;
  logicalBytes: number | null;
  fileCount: number | null;
  warnings: unknown[];
  createdAt: string;
  completedAt: string | null;
  error: string | null;
  name: string | null;
  note: string | null;
  pinned: boolean;
  verifiedAt: string | null;
  verifyLevel: 'quick' | 'sample' | 'full' | null;
  verifyStatus: 'ok' | 'failed' | null;
  verifyError: string | null;
}

export interface JobProgress {
  stage: string;
  bytesDone: number;
  bytesTotal: number;
  filesDone: number;
  filesTotal: number;
  percent: number;
  etaSeconds: number | null;
}

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'interrupted';

export interface Job {
  id: string;
  type: string;
  status: JobStatus;
  instanceId: string | null;
  backupId: string | null;
  targetInstanceId: string | null;
  nodeId: string | null;
  params: Record<string, unknown>;
  progress: JobProgress | null;
  result: unknown;
  error: string | null;
  errorCode: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface FileEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink';
  size: number;
  mode: number;
  mtime: string;
  linkTarget?: string;
}

export interface FileList extends Page<FileEntry> {
  backupId: string;
  prefix: string;
}

export interface RetentionPolicy {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  maxAgeDays?: number;
}

export interface Schedule {
  id: string;
  instanceId: string;
  cron: string;
  timezone: string;
  volumes: string[] | null;
  retention: RetentionPolicy;
  enabled: boolean;
  lastFiredAt: string | null;
  lastBackupId: string | null;
  lastSkipReason: string | null;
  nextRunAt: string | null;
}

export interface RetentionPreview {
  scheduleId: string;
  timezone: string;
  at: string;
  keep: { backupId: string; createdAt: string; reasons: { rule: string; bucket: string }[]; expiresAt: string | null }[];
  drop: { backupId: string; createdAt: string; reason: string }[];
  untouched: number;
  pinned: string[];
}

/** What a restore would do (a dry run's `result.changes`) or did (a restore's). */
export interface RestoreChanges {
  created: number;
  changed: number;
  deleted: number;
  unchanged: number;
  samples: { created: string[]; changed: string[]; deleted: string[] };
}

export interface RestoreDryRun {
  dryRun: true;
  mode: 'replace' | 'merge';
  changes: RestoreChanges;
  bytesToWrite: number;
  notes: string[];
}

export interface InstancePolicy {
  instanceId: string;
  manualBackupLimit: number | null;
  effectiveManualBackupLimit: number;
  manualRetention: RetentionPolicy | null;
  timezone: string;
  manualBackups: { counted: number; pinned: number };
  updatedAt: string | null;
}

export type ManualRetentionPreview = Omit<RetentionPreview, 'scheduleId'> & { instanceId: string };

export const ACTIVE_JOB: ReadonlySet<JobStatus> = new Set(['queued', 'running']);
