import { CreateTokenBody, CreatedToken, IdParams, ListTokensQuery, TokenList, TokenView } from '@cairn/core/api/index.ts';
import type { ApiRegistry } from '../http/api-routes.ts';
import type { TokenService } from '../services/token.service.ts';

export function tokenRoutes(api: ApiRegistry, tokens: TokenService): void {
  api.add({
    method: 'post',
    path: '/v1/tokens',
    operationId: 'createToken',
    summary: 'Create an API token (the secret is shown only in this response)',
    tag: 'tokens',
    access: 'admin',
    body: CreateTokenBody,
    responses: { 201: { description: 'created', schema: CreatedToken } },
    async handler(ctx, { actor, body }) {
      ctx.status = 201;
      ctx.body = await tokens.create(actor, body);
    },
  });
  api.add({
    method: 'get',
    path: '/v1/tokens',
    operationId: 'listTokens',
    summary: 'List API tokens (never their secrets)',
    tag: 'tokens',
    access: 'admin',
    query: ListTokensQuery,
    responses: { 200: { description: 'a page of tokens', schema: TokenList } },
    async handler(ctx, { query }) {
      ctx.body = await tokens.list(query);
    },
  });
  api.add({
    method: 'delete',
    path: '/v1/tokens/:id',
    operationId: 'revokeToken',
    summary: 'Revoke an API token',
    tag: 'tokens',
    access: 'admin',
    params: IdParams,
    responses: {
      200: { description: 'the revoked token', schema: TokenView },
      409: { description: 'the bootstrap admin token (CAIRN_ADMIN_TOKEN), or the last admin token that is not revoked' },
    },
    async handler(ctx, { actor, params }) {
      ctx.body = await tokens.revoke(actor, params.id);
    },
  });
}
