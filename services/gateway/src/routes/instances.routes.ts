import {
  BackupList,
  BackupStarted,
  Coverage,
  CreateInstanceBody,
  DeleteInstanceQuery,
  DeletedInstance,
  IdParams,
  InstanceList,
  InstanceView,
  ListBackupsQuery,
  ListInstancesQuery,
  StartBackupBody,
  UpdateInstanceBody,
} from '@cairn/core/api/index.ts';
import type { ApiRegistry } from '../http/api-routes.ts';
import type { BackupService } from '../services/backup.service.ts';
import type { InstanceService } from '../services/instance.service.ts';

export function instanceRoutes(api: ApiRegistry, instances: InstanceService, backups: BackupService): void {
  api.add({
    method: 'post',
    path: '/v1/instances',
    operationId: 'createInstance',
    summary: 'Register an instance and its volumes',
    description: "Every hostPath must be absolute, normalised and inside one of the node's volumeRoots.",
    tag: 'instances',
    access: 'member',
    body: CreateInstanceBody,
    responses: { 201: { description: 'registered', schema: InstanceView }, 409: { description: 'an instance with this name exists in the tenant' } },
    async handler(ctx, { actor, body }) {
      ctx.status = 201;
      ctx.body = await instances.register(actor, body);
    },
  });
  api.add({
    method: 'get',
    path: '/v1/instances',
    operationId: 'listInstances',
    summary: 'List instances, newest first',
    tag: 'instances',
    access: 'member',
    query: ListInstancesQuery,
    responses: { 200: { description: 'a page of instances', schema: InstanceList } },
    async handler(ctx, { actor, query }) {
      ctx.body = await instances.list(actor, query);
    },
  });
  api.add({
    method: 'get',
    path: '/v1/instances/:id',
    operationId: 'getInstance',
    summary: 'Show an instance',
    tag: 'instances',
    access: 'member',
    params: IdParams,
    responses: { 200: { description: 'the instance', schema: InstanceView } },
    async handler(ctx, { actor, params }) {
      ctx.body = await instances.get(actor, params.id);
    },
  });
  api.add({
    method: 'patch',
    path: '/v1/instances/:id',
    operationId: 'updateInstance',
    summary: 'Rename, move to another node, or replace the volumes',
    tag: 'instances',
    access: 'member',
    params: IdParams,
    body: UpdateInstanceBody,
    responses: { 200: { description: 'the changed instance', schema: InstanceView }, 409: { description: 'duplicate name, or a backup/restore is in flight' } },
    async handler(ctx, { actor, params, body }) {
      ctx.body = await instances.update(actor, params.id, body);
    },
  });
  api.add({
    method: 'delete',
    path: '/v1/instances/:id',
    operationId: 'deleteInstance',
    summary: 'Remove an instance (refused while it has backups, unless force=true)',
    tag: 'instances',
    access: 'member',
    params: IdParams,
    query: DeleteInstanceQuery,
    responses: {
      200: { description: 'removed', schema: DeletedInstance },
      409: { description: 'the instance still has backups or running jobs, or pinned backups (refused even with force)' },
    },
    async handler(ctx, { actor, params, query }) {
      ctx.body = await instances.remove(actor, params.id, query.force);
    },
  });
  api.add({
    method: 'get',
    path: '/v1/instances/:id/coverage',
    operationId: 'getCoverage',
    summary: 'Which volumes can be backed up, and why the others are skipped',
    tag: 'instances',
    access: 'member',
    params: IdParams,
    responses: { 200: { description: 'coverage', schema: Coverage } },
    async handler(ctx, { actor, params }) {
      ctx.body = await instances.coverage(actor, params.id);
    },
  });
  api.add({
    method: 'post',
    path: '/v1/instances/:id/backups',
    operationId: 'startBackup',
    summary: 'Start a manual backup',
    description:
      'At most one backup or restore per instance runs at a time (409 with the running job id); manual backups are limited per instance (429). ' +
      '`kind` chooses full, incremental or auto (default); the backup record carries the kind chosen and its parent. ' +
      '`name` must be free among the backups of the instance that are not deleted (409 naming it); a `pinned` backup is not counted against the limit.',
    tag: 'backups',
    access: 'member',
    params: IdParams,
    body: StartBackupBody,
    responses: {
      202: { description: 'the backup record and its job', schema: BackupStarted },
      409: { description: 'a backup or restore of the instance is queued or running, kind incremental with no backup to build on, or the name is taken' },
      422: { description: 'nothing to back up' },
      429: { description: "manual backup limit reached (the instance policy's, or MANUAL_BACKUP_LIMIT; pinned backups not counted)" },
    },
    async handler(ctx, { actor, params, body }) {
      ctx.status = 202;
      ctx.body = await backups.start(actor, params.id, body);
    },
  });
  api.add({
    method: 'get',
    path: '/v1/instances/:id/backups',
    operationId: 'listBackups',
    summary: 'List the backups of an instance, newest first',
    description: 'Filters: status, trigger, name (exact), namePrefix, pinned.',
    tag: 'backups',
    access: 'member',
    params: IdParams,
    query: ListBackupsQuery,
    responses: { 200: { description: 'a page of backups', schema: BackupList } },
    async handler(ctx, { actor, params, query }) {
      ctx.body = await backups.list(actor, params.id, query);
    },
  });
}
