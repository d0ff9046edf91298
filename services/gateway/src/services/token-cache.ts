import type { Actor } from './actor.ts';

/** What authenticating a token found, kept for a moment so each request does not read its row again. */
export interface CachedToken {
  actor: Actor;
  /** When this gateway last saw lastUsedAt written (ms since the epoch; null: never). */
  lastUsedAt: number | null;
  /** The entry is not used from this time on (ms since the epoch). */
  expiresAt: number;
}

/**
 * Valid tokens by the sha256 of their secret, each for `ttlMs` (issue 17: reading the token row
 * was one database round trip per request). Only valid tokens are kept: a token created on
 * another gateway works at once. A revocation on this gateway forgets the token at once; one on
 * another gateway takes effect here within `ttlMs`. At most `maxEntries`: beyond, the oldest goes.
 */
export class TokenCache {
  private readonly entries = new Map<string, CachedToken>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  get(hash: string, now: number): CachedToken | undefined {
    const entry = this.entries.get(hash);
    if (entry && entry.expiresAt <= now) {
      this.entries.delete(hash);
      return undefined;
    }
    return entry;
  }

  set(hash: string, actor: Actor, lastUsedAt: number | null, now: number): CachedToken | undefined {
    if (this.ttlMs <= 0) return undefined;
    this.entries.delete(hash); // re-inserted last: the Map's order is the age order
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    const entry = { actor, lastUsedAt, expiresAt: now + this.ttlMs };
    this.entries.set(hash, entry);
    return entry;
  }

  /** Forgets a token (revoked here). */
  forget(tokenId: string): void {
    for (const [hash, entry] of this.entries) if (entry.actor.tokenId === tokenId) this.entries.delete(hash);
  }

  get size(): number {
    return this.entries.size;
  }
}
