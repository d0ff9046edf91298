import type { Logger, Records } from '@cairn/core';
import { CatalogRebuildBody, CatalogRebuildReport } from '@cairn/core/api/catalog.schemas.ts';
import { rebuildCatalog } from '@cairn/core/domain/catalog-rebuild.ts';
import type { ObjectStore } from '@cairn/core/storage/object-store.ts';
import type { ApiRegistry } from '../http/api-routes.ts';

/**
 * Restore from the bucket alone (issue 14). Synchronous: the rebuild streams through the bucket
 * listing holding one instance's keys at a time and reads one small manifest per backup, so its
 * cost is one pass over the listing; an operator runs it once, after losing the database, and
 * wants the report in the answer. Safe to repeat, and to run twice at once (rows are only
 * created, a duplicate counts as existing).
 */
export function catalogRoutes(api: ApiRegistry, deps: { records: Records; store: ObjectStore; logger: Logger }): void {
  api.add({
    method: 'post',
    path: '/v1/admin/catalog/rebuild',
    operationId: 'rebuildCatalog',
    summary: 'Recreate the instance and backup records of a lost database from the bucket',
    description:
      'Reads every backup manifest (and, without one, the index) in the bucket and creates the missing tenants, nodes (unseen), instances, ' +
      'volumes, completed backups and their object references. Existing rows are never changed; what cannot be rebuilt is reported with the reason.',
    tag: 'admin',
    access: 'admin',
    body: CatalogRebuildBody,
    responses: { 200: { description: 'the rebuild report', schema: CatalogRebuildReport } },
    async handler(ctx, { actor, body }) {
      deps.logger.info({ dryRun: body.dryRun, by: actor.tokenId }, 'catalog rebuild started');
      const report = await rebuildCatalog(deps.records, deps.store, { dryRun: body.dryRun, logger: deps.logger });
      deps.logger.info(
        { dryRun: body.dryRun, instances: report.instances.created, backups: report.backups.created, skipped: report.backups.skipped },
        'catalog rebuild done',
      );
      ctx.body = report;
    },
  });
}
