import { CairnError } from '@cairn/core';

/** Who is calling: resolved from the bearer token by the auth middleware. */
export interface Actor {
  tokenId: string;
  role: 'admin' | 'member';
  /** The token's tenant; null only for admin tokens created without one. */
  tenantId: string | null;
}

export const isAdmin = (actor: Actor): boolean => actor.role === 'admin';

/**
 * The tenant an actor is confined to, or undefined for admins (who see everything). Queries add
 * it to their `where`, so other tenants' rows are simply not found (404, not 403: SPEC §1).
 */
export function tenantScope(actor: Actor): string | undefined {
  if (actor.role === 'admin') return undefined;
  if (!actor.tenantId) throw new CairnError('forbidden', 'this member token has no tenant');
  return actor.tenantId;
}

/** `tenantScope` in the form core's services take (`{}` for admins). */
export function scopeOf(actor: Actor): { tenantId?: string } {
  const tenantId = tenantScope(actor);
  return tenantId ? { tenantId } : {};
}

export function requireAdmin(actor: Actor, what = 'this operation'): void {
  if (actor.role !== 'admin') throw new CairnError('forbidden', `${what} needs an admin token`);
}
