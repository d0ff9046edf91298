import { IdParams, JobStarted } from '@cairn/core/api/index.ts';
import { MigrateBody } from '@cairn/core/api/migrate.schemas.ts';
import type { ApiRegistry } from '../http/api-routes.ts';
import type { MigrateService } from '../services/migrate.service.ts';

const DESCRIPTION = [
  'Exactly one target. `targetInstanceId`: copy the data into another instance of the tenant (any node); its volumes of the same names',
  'are replaced, or with `paths` only those paths are merged in. `targetNodeId`: move the instance to another node, each volume to',
  '`hostPaths[<volume>]` (default: the same path), inside the node’s volume roots; a bulk copy while the instance runs, then a short',
  'cutover (final incremental, verified) after which the instance points at the target node. The source data is never deleted.',
  'Answers the parent `migrate` job; `GET /v1/jobs/:id` lists its child jobs, and cancelling it cancels them.',
].join(' ');

const ERRORS = {
  400: { description: 'both or neither target; a volume missing on the target; a host path outside the node’s roots; same node or instance' },
  404: { description: 'unknown (or another tenant’s) instance, backup, target instance or node' },
  409: {
    description: 'the node is offline; a host path is another instance’s; a migrate, backup or restore of the source or target is in flight (`details.jobId`)',
  },
  422: { description: 'the source has no volumes' },
};

export function migrateRoutes(api: ApiRegistry, migrations: MigrateService): void {
  api.add({
    method: 'post',
    path: '/v1/instances/:id/migrate',
    operationId: 'migrateInstance',
    summary: 'Move an instance to another node, or copy its current data into another instance',
    description: DESCRIPTION,
    tag: 'migrate',
    access: 'member',
    params: IdParams,
    body: MigrateBody,
    responses: { 202: { description: 'the migrate job (queued)', schema: JobStarted }, ...ERRORS },
    async handler(ctx, { actor, params, body }) {
      ctx.status = 202;
      ctx.body = { job: await migrations.fromInstance(actor, params.id, body) };
    },
  });
  api.add({
    method: 'post',
    path: '/v1/backups/:id/migrate',
    operationId: 'migrateBackup',
    summary: 'Migrate from a completed backup: copy it into another instance, or move its instance to another node starting from it',
    description: `${DESCRIPTION} The source is the backup’s instance; a backup that is not completed is a 409.`,
    tag: 'migrate',
    access: 'member',
    params: IdParams,
    body: MigrateBody,
    responses: { 202: { description: 'the migrate job (queued)', schema: JobStarted }, ...ERRORS },
    async handler(ctx, { actor, params, body }) {
      ctx.status = 202;
      ctx.body = { job: await migrations.fromBackup(actor, params.id, body) };
    },
  });
}
