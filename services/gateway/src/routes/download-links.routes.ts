import Router from '@koa/router';
import { CreateDownloadLinkBody, DownloadLinkView, DownloadTokenParams, IdParams } from '@cairn/core/api/index.ts';
import type { ApiRegistry } from '../http/api-routes.ts';
import { parseOrThrow } from '../http/validation.ts';
import type { DownloadLinkService } from '../services/download-link.service.ts';
import { sendDownload } from './backups.routes.ts';

/**
 * Download links (issue 15): issued with the API token, used without one (a browser navigates to
 * the link and streams the download to disk). The download route itself is public: the signed
 * link is its credential.
 */
export function downloadLinkRoutes(api: ApiRegistry, links: DownloadLinkService): Router {
  api.add({
    method: 'post',
    path: '/v1/backups/:id/download-links',
    operationId: 'createDownloadLink',
    summary: 'A short-lived signed link to download a completed backup (or one path of it) without the API token',
    description:
      'The link is bound to this backup and path and to the token that asked for it (a revoked token revokes its links), ' +
      'and expires after 5 minutes. GET it with no Authorization header.',
    tag: 'backups',
    access: 'member',
    params: IdParams,
    body: CreateDownloadLinkBody,
    responses: { 201: { description: 'the link', schema: DownloadLinkView }, 409: { description: 'the backup is not completed' } },
    async handler(ctx, { actor, params, body }) {
      ctx.status = 201;
      ctx.body = await links.issue(actor, params.id, body.path);
    },
  });
  api.document({
    method: 'get',
    path: '/v1/downloads/:token',
    operationId: 'downloadByLink',
    summary: 'Download through a link from POST /v1/backups/:id/download-links (no Authorization header)',
    tag: 'backups',
    access: 'public',
    params: DownloadTokenParams,
    responses: {
      200: { description: 'the archive or, for a path, a tar of that path', contentType: 'application/octet-stream' },
      401: { description: 'the link is invalid or expired, or the token that issued it is revoked', contentType: 'application/json' },
    },
  });
  const router = new Router();
  router.get('/v1/downloads/:token', async (ctx) => {
    const { token } = parseOrThrow(DownloadTokenParams, ctx.params, 'path parameters');
    // The link is a credential: not to be cached, nor sent on as a referrer.
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Referrer-Policy', 'no-referrer');
    await sendDownload(ctx, (signal) => links.open(token, signal));
  });
  return router;
}
