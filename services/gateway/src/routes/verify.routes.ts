import { IdParams, JobStarted } from '@cairn/core/api/index.ts';
import { VerifyBody } from '@cairn/core/api/verify.schemas.ts';
import type { ApiRegistry } from '../http/api-routes.ts';
import type { VerifyService } from '../services/verify.service.ts';

export function verifyRoutes(api: ApiRegistry, verifies: VerifyService): void {
  api.add({
    method: 'post',
    path: '/v1/backups/:id/verify',
    operationId: 'verifyBackup',
    summary: 'Verify a completed backup against what is stored (quick, sample or full)',
    description:
      'Runs on the control worker. The outcome goes on the backup (`verifiedAt`, `verifyLevel`, `verifyStatus`, `verifyError`); ' +
      'a problem found fails the job with its code (checksum-mismatch, archive-corrupt, archive-missing) and a message naming the object, block or file, ' +
      'and the backup is never again chosen as an incremental parent.',
    tag: 'backups',
    access: 'member',
    params: IdParams,
    body: VerifyBody,
    responses: {
      202: { description: 'the verify job (queued)', schema: JobStarted },
      404: { description: 'unknown (or another tenant’s) backup' },
      409: { description: 'the backup is not completed, or a verify of it is in flight' },
    },
    async handler(ctx, { actor, params, body }) {
      ctx.status = 202;
      ctx.body = { job: await verifies.start(actor, params.id, body) };
    },
  });
}
