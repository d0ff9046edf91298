import { z } from 'zod';
import { BackupPath, BackupPathPrefix, Cursor, Id, Limit, NullableTimestamp, Text, Timestamp, VolumeName, csvOf, pageOf, queryFlag } from './common.schemas.ts';
import { JobView } from './jobs.schemas.ts';
import { BACKUP_KIND_REQUESTS } from '../domain/backup-kind.ts';
import { BACKUP_NAME_MAX, BackupName, BackupNote, PinnedFlag } from './backup-names.schemas.ts';
import { named } from './registry.ts';
import { VerifyFields } from './verify.schemas.ts';

export const BACKUP_STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled', 'deleting', 'deleted'] as const;
export const BACKUP_TRIGGERS = ['manual', 'schedule', 'migrate'] as const;

export const BackupStatusName = z.enum(BACKUP_STATUSES);
export type BackupStatusName = z.infer<typeof BackupStatusName>;
export const BackupTriggerName = z.enum(BACKUP_TRIGGERS);
export type BackupTriggerName = z.infer<typeof BackupTriggerName>;

const uniqueNames = (what: string) => (names: string[], ctx: z.RefinementCtx) => {
  names.forEach((n, i) => {
    if (names.indexOf(n) !== i) ctx.addIssue({ code: 'custom', path: [i], message: `duplicate ${what} ${n}` });
  });
};

export const StartBackupBody = named(
  'StartBackupRequest',
  z
    .object({
      volumes: z.array(VolumeName).min(1).max(64).superRefine(uniqueNames('volume')).optional().describe('a subset of the instance volumes; all when absent'),
      kind: z
        .enum(BACKUP_KIND_REQUESTS, { error: `must be one of ${BACKUP_KIND_REQUESTS.join(', ')}` })
        .optional()
        .describe(
          'auto (default): incremental on the newest completed backup of the same volumes and codec, a full one every FULL_BACKUP_EVERY backups; ' +
            'full; incremental (409 when no backup can be its parent)',
        ),
      name: BackupName.optional().describe('409 when another backup of the instance that is not deleted has it'),
      note: BackupNote.optional(),
      pinned: z.boolean().optional().describe('pinned: never expired by retention, not counted against the manual limit, deletion refused until unpinned'),
    })
    .strict(),
);
export type StartBackupBody = z.infer<typeof StartBackupBody>;

export const BackupView = named(
  'Backup',
  z.object({
    id: z.string(),
    instanceId: z.string(),
    status: BackupStatusName,
    trigger: BackupTriggerName,
    scheduleId: z.string().nullable(),
    kind: z.enum(['full', 'incremental']),
    parentId: z.string().nullable(),
    volumes: z.array(z.string()),
    storageKey: z.string(),
    indexKey: z.string(),
    format: z.number().int(),
    compression: z.string(),
    encryption: z.object({ mode: z.string(), keyId: z.string().optional() }),
    sizeBytes: z.number().nullable().describe('bytes stored (compressed) in its own archive object; the same as storedBytes'),
    storedBytes: z.number().nullable().describe('bytes this backup uploaded: its own archive object (compressed)'),
    logicalBytes: z.number().nullable().describe('bytes of the whole tree it restores (file contents)'),
    reusedBytes: z.number().nullable().describe("stored bytes it reads from other backups' archive objects (an incremental's unchanged entries)"),
    exclusiveBytes: z
      .number()
      .optional()
      .describe('GET /v1/backups/:id of a completed backup: the bytes only this backup holds, what deleting it frees (archive objects, approximate)'),
    fileCount: z.number().int().nullable(),
    sha256: z.string().nullable(),
    warnings: z.array(z.unknown()),
    expiresAt: NullableTimestamp,
    createdAt: Timestamp,
    startedAt: NullableTimestamp,
    completedAt: NullableTimestamp,
    deletedAt: NullableTimestamp,
    error: z.string().nullable(),
    requestedBy: z.string(),
    name: z.string().nullable().describe('unique among the backups of its instance that are not deleting or deleted'),
    note: z.string().nullable(),
    pinned: z.boolean().describe('never expired by retention, not counted against the manual limit, deletion refused until unpinned'),
    ...VerifyFields,
  }),
  'A backup is a restore point only when `completed`.',
);
export type BackupView = z.infer<typeof BackupView>;

export const BackupStarted = named('BackupStarted', z.object({ backup: BackupView, job: JobView }));
export type BackupStarted = z.infer<typeof BackupStarted>;

export const BackupList = pageOf('BackupList', BackupView);
export type BackupList = z.infer<typeof BackupList>;

export const ListBackupsQuery = z
  .object({
    status: csvOf(BACKUP_STATUSES).optional().describe('comma-separated; by default every status except deleted'),
    trigger: csvOf(BACKUP_TRIGGERS).optional(),
    name: Text({ min: 1, max: BACKUP_NAME_MAX }).optional().describe('only the backup of this name'),
    namePrefix: Text({ min: 1, max: BACKUP_NAME_MAX }).optional().describe('only backups whose name starts with this (case-sensitive)'),
    pinned: PinnedFlag.describe('true: only pinned backups; false: only unpinned ones'),
    volume: VolumeName.optional().describe('only backups that include the volume of this name'),
    cursor: Cursor.optional(),
    limit: Limit,
  })
  .strict();
export type ListBackupsQuery = z.infer<typeof ListBackupsQuery>;

export const DeleteBackupResult = named(
  'DeleteBackupResult',
  z.object({ backup: BackupView, job: JobView.nullable().describe('the cleanup job removing the objects') }),
);
export type DeleteBackupResult = z.infer<typeof DeleteBackupResult>;

export const BatchDeleteBody = named('BatchDeleteRequest', z.object({ ids: z.array(Id).min(1).max(100).superRefine(uniqueNames('id')) }).strict());
export type BatchDeleteBody = z.infer<typeof BatchDeleteBody>;

export const BatchDeleteResult = named(
  'BatchDeleteResult',
  z.object({
    results: z.array(
      z.object({
        id: z.string(),
        ok: z.boolean(),
        status: BackupStatusName.optional(),
        jobId: z.string().nullable().optional(),
        error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }).optional(),
      }),
    ),
  }),
  'One result per requested id, in request order.',
);
export type BatchDeleteResult = z.infer<typeof BatchDeleteResult>;

export const FileEntry = named(
  'FileEntry',
  z.object({
    path: z.string().describe("'<volume>/<relative path>'"),
    type: z.enum(['file', 'dir', 'symlink', 'hardlink']),
    size: z.number(),
    mode: z.number().int().describe('permission bits'),
    uid: z.number().int(),
    gid: z.number().int(),
    mtime: z.string().describe('ISO 8601 (millisecond precision; the index keeps nanoseconds)'),
    linkTarget: z.string().optional().describe('symlink target, or for a hard link the archive path it links to'),
    sha256: z.string().optional().describe('content hash of a file'),
  }),
);
export type FileEntry = z.infer<typeof FileEntry>;

export const FileList = named('FileList', z.object({ backupId: z.string(), prefix: z.string(), items: z.array(FileEntry), nextCursor: z.string().nullable() }));
export type FileList = z.infer<typeof FileList>;

export const ListFilesQuery = z
  .object({
    prefix: BackupPathPrefix.default('').describe("'<volume>' or '<volume>/<dir>': entries below it (and the entry itself); empty for everything"),
    recursive: queryFlag(true).describe('false: only the direct children of prefix'),
    cursor: Cursor.optional().describe('the last path of the previous page'),
    limit: z.coerce.number().int().min(1).max(1000).default(200),
  })
  .strict();
export type ListFilesQuery = z.infer<typeof ListFilesQuery>;

export const DownloadQuery = z.object({ path: BackupPath.optional().describe('one file or directory, answered as a plain tar') }).strict();
export type DownloadQuery = z.infer<typeof DownloadQuery>;

export const RestoreBody = named(
  'RestoreRequest',
  z
    .object({
      targetInstanceId: Id.optional().describe('default: the instance the backup was taken from'),
      volumes: z
        .array(VolumeName)
        .min(1)
        .max(64)
        .superRefine(uniqueNames('volume'))
        .optional()
        .describe('default: every volume of the backup (or those named by paths)'),
      paths: z.array(BackupPath).min(1).max(1000).superRefine(uniqueNames('path')).optional().describe("'<volume>/<relative path>' files or directories"),
      mode: z
        .enum(['replace', 'merge'])
        .optional()
        .describe('replace (default): the volume (or each path) becomes exactly the backup; merge: write over what is there'),
      dryRun: z
        .boolean()
        .optional()
        .describe(
          'true: a job that only compares the backup with the target and reports what the restore would create, change and delete ' +
            '(result.changes); it writes nothing, runs no hooks and does not hold the instance',
        ),
    })
    .strict(),
);
export type RestoreBody = z.infer<typeof RestoreBody>;
