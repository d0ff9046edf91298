import { RewrapBody, RewrapReport } from '@cairn/core/api/keys.schemas.ts';
import type { ApiRegistry } from '../http/api-routes.ts';
import type { KeyRewrapService } from '../services/key-rewrap.service.ts';

export function keyRoutes(api: ApiRegistry, keys: KeyRewrapService): void {
  api.add({
    method: 'post',
    path: '/v1/admin/keys/rewrap',
    operationId: 'rewrapDataKeys',
    summary: "Re-wrap every encrypted backup's data key under the active master key (key rotation; the data is not re-encrypted)",
    tag: 'admin',
    access: 'admin',
    body: RewrapBody,
    responses: {
      200: { description: 'what was re-wrapped, and which master keys are still needed', schema: RewrapReport },
      409: { description: 'encryption at rest is off (CAIRN_MASTER_KEYS is not set)' },
    },
    async handler(ctx, { body }) {
      ctx.body = await keys.rewrap(body.dryRun);
    },
  });
}
