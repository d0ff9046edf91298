import { createHash, randomBytes } from 'node:crypto';
import { CairnError, newId, type Logger, type Records } from '@cairn/core';
import type { CreateTokenBody, CreatedToken, ListTokensQuery, TokenList, TokenView } from '@cairn/core/api/index.ts';
import type { Actor } from './actor.ts';
import { tokenView } from './presenters.ts';
import { TokenCache } from './token-cache.ts';

export const BOOTSTRAP_TOKEN_NAME = 'bootstrap-admin';

/** Tokens are `cairn_` + 32 random bytes (base64url); only their sha256 is stored. */
export function generateToken(): string {
  return `cairn_${randomBytes(32).toString('base64url')}`;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export interface TokenServiceOptions {
  records: Pick<Records, 'tokens' | 'tenants' | 'transaction'>;
  logger: Logger;
  /** lastUsedAt is written at most this often per token, so reads do not turn into writes. */
  touchIntervalMs?: number;
  /**
   * How long a valid token is authenticated without reading its row again (default 2000 ms; 0:
   * every request reads it). A revocation through another gateway takes effect here within this.
   */
  authCacheMs?: number;
  now?: () => Date;
}

/** API tokens: authentication of requests, bootstrap admin, and the admin token routes. */
export class TokenService {
  private readonly records: TokenServiceOptions['records'];
  private readonly logger: Logger;
  private readonly touchIntervalMs: number;
  private readonly now: () => Date;
  private readonly cache: TokenCache;
  /** sha256 of CAIRN_ADMIN_TOKEN, once ensureBootstrapAdmin ran: that token cannot be revoked. */
  private bootstrapHash: string | undefined;

  constructor(options: TokenServiceOptions) {
    this.records = options.records;
    this.logger = options.logger;
    this.touchIntervalMs = options.touchIntervalMs ?? 60_000;
    this.now = options.now ?? (() => new Date());
    this.cache = new TokenCache(options.authCacheMs ?? 2000);
  }

  /** Resolves a presented secret to its actor; unknown and revoked tokens are both 401. */
  async authenticate(secret: string): Promise<Actor> {
    const hash = hashToken(secret);
    const now = this.now().getTime();
    let known = this.cache.get(hash, now);
    if (!known) {
      const row = await this.records.tokens.getByHash(hash);
      if (!row || row.revokedAt) throw new CairnError('unauthorized', 'invalid or revoked token');
      const actor: Actor = { tokenId: row.id, role: row.role, tenantId: row.tenantId };
      const lastUsedAt = row.lastUsedAt?.getTime() ?? null;
      known = this.cache.set(hash, actor, lastUsedAt, now) ?? { actor, lastUsedAt, expiresAt: now };
    }
    if (known.lastUsedAt === null || now - known.lastUsedAt >= this.touchIntervalMs) {
      // Best effort and conditional, so concurrent requests (and gateways) write once; never delays the request.
      known.lastUsedAt = now;
      const tokenId = known.actor.tokenId;
      this.records.tokens
        .touch(tokenId, new Date(now), new Date(now - this.touchIntervalMs))
        .catch((err: Error) => this.logger.debug({ err: err.message, tokenId }, 'lastUsedAt update failed'));
    }
    return { ...known.actor };
  }

  /** The actor of a token by id (a download link's issuer); a missing or revoked token is 401. */
  async actorOf(tokenId: string): Promise<Actor> {
    const row = await this.records.tokens.get(tokenId);
    if (!row || row.revokedAt) throw new CairnError('unauthorized', 'the token that issued this link is revoked');
    return { tokenId: row.id, role: row.role, tenantId: row.tenantId };
  }

  /**
   * Makes `secret` (CAIRN_ADMIN_TOKEN) a valid admin token. Other tokens are left alone: several
   * deployments (or test runs) may share a database, each with its own bootstrap secret, so a
   * rotated secret's old row is revoked through the API, not implicitly here. The current one
   * cannot be revoked (see revoke); one revoked elsewhere stays revoked: a revocation wins over a restart.
   */
  async ensureBootstrapAdmin(secret: string): Promise<void> {
    // Known before the row is written, so it is protected from revocation even while Postgres is down.
    this.bootstrapHash = hashToken(secret);
    // Another replica starting at the same moment may create it first: that one is kept.
    await this.records.tokens.createUnlessExists({ id: newId(), tenantId: null, role: 'admin', name: BOOTSTRAP_TOKEN_NAME, tokenHash: hashToken(secret) });
  }

  async create(actor: Actor, body: CreateTokenBody): Promise<CreatedToken> {
    const secret = generateToken();
    // A new tenant is made race-free on its own (concurrent first uses of it all succeed).
    const tenant = body.tenant ? await this.records.tenants.ensure(body.tenant, newId()) : null;
    const row = await this.records.tokens.create({ id: newId(), name: body.name, role: body.role, tenantId: tenant?.id ?? null, tokenHash: hashToken(secret) });
    this.logger.info({ tokenId: row.id, role: row.role, tenant: row.tenant?.name, by: actor.tokenId }, 'token created');
    return { ...tokenView(row), token: secret };
  }

  async list(query: ListTokensQuery): Promise<TokenList> {
    const rows = await this.records.tokens.list({ includeRevoked: query.includeRevoked }, { order: 'desc', before: query.cursor, take: query.limit + 1 });
    const page = rows.slice(0, query.limit);
    return { items: page.map(tokenView), nextCursor: rows.length > query.limit ? page[page.length - 1]!.id : null };
  }

  /**
   * Revoking is idempotent: a token already revoked keeps its first revocation time. Nobody can
   * lock everyone out: the bootstrap admin token (this gateway's CAIRN_ADMIN_TOKEN) is never
   * revoked, and neither is the last admin token that is not revoked (both 409). The admin set is
   * counted under one lock, so two admins revoking each other at once cannot both succeed.
   */
  async revoke(actor: Actor, id: string): Promise<TokenView> {
    const found = await this.records.tokens.get(id);
    if (!found) throw new CairnError('not-found', `token ${id} not found`);
    if (this.bootstrapHash !== undefined && found.tokenHash === this.bootstrapHash) {
      throw new CairnError(
        'conflict',
        'the bootstrap admin token (CAIRN_ADMIN_TOKEN) cannot be revoked: set a new CAIRN_ADMIN_TOKEN, restart the gateways, then revoke the old one',
      );
    }
    if (!found.revokedAt) {
      await this.records.transaction(async (tx) => {
        if (found.role === 'admin') {
          await tx.lock('admin-tokens', 'all');
          if ((await tx.tokens.countActive({ role: 'admin', notId: id })) === 0) {
            throw new CairnError('conflict', `token ${id} is the last admin token: create another admin token before revoking it`);
          }
        }
        await tx.tokens.revoke(id, this.now());
      });
      this.cache.forget(id);
      this.logger.info({ tokenId: id, by: actor.tokenId }, 'token revoked');
    }
    return tokenView((await this.records.tokens.get(id)) ?? found);
  }
}
