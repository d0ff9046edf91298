import {
  BackupView,
  BatchDeleteBody,
  BatchDeleteResult,
  DeleteBackupResult,
  DownloadQuery,
  FileList,
  IdParams,
  JobStarted,
  ListFilesQuery,
  RestoreBody,
  UpdateBackupBody,
} from '@cairn/core/api/index.ts';
import type { Context } from 'koa';
import type { ApiRegistry } from '../http/api-routes.ts';
import type { BackupFilesService, Download } from '../services/backup-files.service.ts';
import type { BackupService } from '../services/backup.service.ts';
import type { RestoreService } from '../services/restore.service.ts';

export function backupRoutes(api: ApiRegistry, backups: BackupService, files: BackupFilesService, restores: RestoreService): void {
  api.add({
    method: 'get',
    path: '/v1/backups/:id',
    operationId: 'getBackup',
    summary: 'Show a backup',
    tag: 'backups',
    access: 'member',
    params: IdParams,
    responses: { 200: { description: 'the backup', schema: BackupView } },
    async handler(ctx, { actor, params }) {
      ctx.body = await backups.get(actor, params.id);
    },
  });
  api.add({
    method: 'patch',
    path: '/v1/backups/:id',
    operationId: 'updateBackup',
    summary: 'Name, annotate, pin or unpin a backup',
    description:
      'A name is unique among the backups of the instance that are not deleting or deleted (409 naming it). ' +
      'A pinned backup is never expired by retention or maxAgeDays, is not counted against the manual limit, and refuses deletion (409) until unpinned.',
    tag: 'backups',
    access: 'member',
    params: IdParams,
    body: UpdateBackupBody,
    responses: {
      200: { description: 'the changed backup', schema: BackupView },
      409: { description: 'the name is taken, the backup is being deleted, or it cannot be pinned in its state' },
    },
    async handler(ctx, { actor, params, body }) {
      ctx.body = await backups.update(actor, params.id, body);
    },
  });
  api.add({
    method: 'delete',
    path: '/v1/backups/:id',
    operationId: 'deleteBackup',
    summary: 'Delete a backup (soft: deleting now, objects removed by a cleanup job)',
    tag: 'backups',
    access: 'member',
    params: IdParams,
    responses: {
      202: { description: 'the backup (deleting) and its cleanup job', schema: DeleteBackupResult },
      409: { description: 'the backup is pinned, or a restore is reading it' },
    },
    async handler(ctx, { actor, params }) {
      ctx.status = 202;
      ctx.body = await backups.remove(actor, params.id);
    },
  });
  api.add({
    method: 'post',
    path: '/v1/backups/delete',
    operationId: 'deleteBackups',
    summary: 'Delete several backups; one result per id',
    description: 'Each id on its own: a pinned backup (or one being read) is refused with a conflict error in its result, the others are deleted.',
    tag: 'backups',
    access: 'member',
    body: BatchDeleteBody,
    responses: { 200: { description: 'per-id results', schema: BatchDeleteResult } },
    async handler(ctx, { actor, body }) {
      ctx.body = await backups.removeMany(actor, body.ids);
    },
  });
  api.add({
    method: 'get',
    path: '/v1/backups/:id/files',
    operationId: 'listBackupFiles',
    summary: 'Browse the files of a completed backup (reads only its index)',
    tag: 'backups',
    access: 'member',
    params: IdParams,
    query: ListFilesQuery,
    responses: { 200: { description: 'a page of entries, sorted by path', schema: FileList }, 409: { description: 'the backup is not completed' } },
    async handler(ctx, { actor, params, query }) {
      ctx.body = await files.list(actor, params.id, query);
    },
  });
  api.add({
    method: 'get',
    path: '/v1/backups/:id/download',
    operationId: 'downloadBackup',
    summary: 'Download the archive as stored, or one path of it as a plain tar',
    tag: 'backups',
    access: 'member',
    params: IdParams,
    query: DownloadQuery,
    responses: {
      200: { description: 'the archive (.tar.zst, .tar.gz or .tar) or, with path, a tar of that path', contentType: 'application/octet-stream' },
      409: { description: 'the backup is not completed' },
    },
    async handler(ctx, { actor, params, query }) {
      await sendDownload(ctx, (signal) => files.download(actor, params.id, query.path, signal));
    },
  });
  api.add({
    method: 'post',
    path: '/v1/backups/:id/restore',
    operationId: 'restoreBackup',
    summary: 'Restore a completed backup into its instance or another one',
    description:
      'With dryRun: true the job only compares: its result.changes counts what the restore would create, change, delete and leave ' +
      '(with up to 20 sample paths of each kind), and nothing is written. A real restore reports the same result.changes.',
    tag: 'backups',
    access: 'member',
    params: IdParams,
    body: RestoreBody,
    responses: {
      202: { description: 'the restore job', schema: JobStarted },
      409: { description: 'the backup is not completed, or the target has a backup/restore in flight' },
    },
    async handler(ctx, { actor, params, body }) {
      ctx.status = 202;
      ctx.body = { job: await restores.start(actor, params.id, body) };
    },
  });
}

/** Streams a download as an attachment; the client going away stops the reads behind it. */
export async function sendDownload(ctx: Context, open: (signal: AbortSignal) => Promise<Download>): Promise<void> {
  const gone = new AbortController();
  ctx.res.once('close', () => {
    if (!ctx.res.writableFinished) gone.abort(new Error('client disconnected'));
  });
  const download = await open(gone.signal);
  ctx.status = 200;
  ctx.type = download.contentType;
  ctx.set('Content-Disposition', contentDisposition(download.filename));
  ctx.body = download.stream;
  // After the body: Koa drops Content-Length when a stream body is set.
  if (download.length !== undefined) ctx.length = download.length;
}

/** `attachment` with an ASCII fallback and the exact UTF-8 name (RFC 6266 / 5987). */
export function contentDisposition(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename)}`;
}
