import type { Context } from 'koa';
import { CairnError } from '@cairn/core';
import type { Actor } from '../services/actor.ts';
import type { TokenService } from '../services/token.service.ts';
import { bindRequestLog } from './request-context.ts';

/** Resolves `Authorization: Bearer <token>` once per request (cached in ctx.state.actor). */
export function bearerAuthenticator(tokens: TokenService): (ctx: Context) => Promise<Actor> {
  return async (ctx) => {
    if (ctx.state.actor) return ctx.state.actor as Actor;
    const header = ctx.get('authorization');
    if (!header) throw new CairnError('unauthorized', 'missing bearer token: send Authorization: Bearer <token>');
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) throw new CairnError('unauthorized', 'malformed Authorization header: expected Bearer <token>');
    const actor = await tokens.authenticate(m[1]!);
    ctx.state.actor = actor;
    bindRequestLog(ctx, { tokenId: actor.tokenId });
    return actor;
  };
}
