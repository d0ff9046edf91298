import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BOOTSTRAP_TOKEN_NAME, generateToken, hashToken, TokenService } from '@cairn/gateway/services/token.service.ts';
import { admin, gatewayFixture, rejection } from './gateway-fixture.ts';

describe('TokenService', () => {
  it('stores only the sha256 of a new secret and authenticates it to its role and tenant', async () => {
    const f = gatewayFixture();
    const created = await f.tokens.create(admin, { name: 'ci', role: 'member', tenant: 'acme' });
    expect(created.token).toMatch(/^cairn_[A-Za-z0-9_-]{43}$/);
    expect(created).toMatchObject({ name: 'ci', role: 'member', tenant: 'acme', lastUsedAt: null, revokedAt: null });

    const row = await f.records.tokens.get(created.id);
    expect(row!.tokenHash).toBe(createHash('sha256').update(created.token).digest('hex'));
    expect(JSON.stringify(row)).not.toContain(created.token);

    const tenant = await f.records.tenants.getByName('acme');
    expect(await f.tokens.authenticate(created.token)).toEqual({ tokenId: created.id, role: 'member', tenantId: tenant!.id });
  });

  it('creates the tenant once and reuses it for later tokens', async () => {
    const f = gatewayFixture();
    const a = await f.tokens.create(admin, { name: 'a', role: 'member', tenant: 'acme' });
    const b = await f.tokens.create(admin, { name: 'b', role: 'admin', tenant: 'acme' });
    expect((await f.tokens.authenticate(a.token)).tenantId).toBe((await f.tokens.authenticate(b.token)).tenantId);
    const none = await f.tokens.create(admin, { name: 'c', role: 'admin' });
    expect(none.tenant).toBeNull();
    expect((await f.tokens.authenticate(none.token)).tenantId).toBeNull();
  });

  it('answers 401 for unknown and revoked secrets', async () => {
    const f = gatewayFixture();
    expect((await rejection(f.tokens.authenticate(generateToken()))).code).toBe('unauthorized');
    await f.tokens.create(admin, { name: 'keeper', role: 'admin' });
    const t = await f.tokens.create(admin, { name: 'x', role: 'admin' });
    await f.tokens.revoke(admin, t.id);
    const err = await rejection(f.tokens.authenticate(t.token));
    expect(err).toMatchObject({ code: 'unauthorized', message: 'invalid or revoked token' });
  });

  it('authenticates a known token from its cache for a moment; a revocation here takes effect at once, one on another gateway within the TTL', async () => {
    const f = gatewayFixture();
    await f.tokens.create(admin, { name: 'keeper', role: 'admin' });
    const t = await f.tokens.create(admin, { name: 'x', role: 'member', tenant: 'acme' });
    const reads = () => f.records.calls.filter((c) => c === 'tokens.getByHash').length;
    const actor = await f.tokens.authenticate(t.token);
    const before = reads();
    expect(await f.tokens.authenticate(t.token)).toEqual(actor);
    expect(reads()).toBe(before); // from the cache

    // Revoked through this gateway: refused at once.
    await f.tokens.revoke(admin, t.id);
    expect((await rejection(f.tokens.authenticate(t.token))).code).toBe('unauthorized');

    // Revoked through another gateway (its own TokenService over the same records): refused here once the TTL (2 s) has passed.
    const u = await f.tokens.create(admin, { name: 'y', role: 'member', tenant: 'acme' });
    await f.tokens.authenticate(u.token);
    const other = new TokenService({ records: f.records, logger: f.logger, now: () => f.clock.now });
    await other.revoke(admin, u.id);
    expect((await f.tokens.authenticate(u.token)).tokenId).toBe(u.id);
    f.clock.now = new Date(f.clock.now.getTime() + 2000);
    expect((await rejection(f.tokens.authenticate(u.token))).code).toBe('unauthorized');
  });

  it('with authCacheMs 0 reads the token row on every request', async () => {
    const f = gatewayFixture();
    const t = await f.tokens.create(admin, { name: 'x', role: 'admin' });
    const uncached = new TokenService({ records: f.records, logger: f.logger, now: () => f.clock.now, authCacheMs: 0 });
    const reads = () => f.records.calls.filter((c) => c === 'tokens.getByHash').length;
    await uncached.authenticate(t.token);
    await uncached.authenticate(t.token);
    expect(reads()).toBe(2);
  });

  it('writes lastUsedAt at most once per touch interval', async () => {
    const f = gatewayFixture();
    const t = await f.tokens.create(admin, { name: 'x', role: 'admin' });
    const first = new Date(f.clock.now);
    await f.tokens.authenticate(t.token);
    await expect.poll(async () => (await f.records.tokens.get(t.id))!.lastUsedAt).toEqual(first);

    f.clock.now = new Date(first.getTime() + 30_000);
    await f.tokens.authenticate(t.token);
    await new Promise((r) => setTimeout(r, 10));
    expect((await f.records.tokens.get(t.id))!.lastUsedAt).toEqual(first);

    f.clock.now = new Date(first.getTime() + 61_000);
    await f.tokens.authenticate(t.token);
    await expect.poll(async () => (await f.records.tokens.get(t.id))!.lastUsedAt).toEqual(f.clock.now);
  });

  it('authenticates even when recording lastUsedAt fails', async () => {
    const f = gatewayFixture();
    const t = await f.tokens.create(admin, { name: 'x', role: 'admin' });
    f.records.failNext('tokens.touch');
    expect((await f.tokens.authenticate(t.token)).tokenId).toBe(t.id);
  });

  it('revokes idempotently, keeping the first revocation time; unknown ids are 404', async () => {
    const f = gatewayFixture();
    const t = await f.tokens.create(admin, { name: 'x', role: 'member', tenant: 'acme' });
    const first = await f.tokens.revoke(admin, t.id);
    expect(first.revokedAt).toBe(f.clock.now.toISOString());
    f.clock.now = new Date(f.clock.now.getTime() + 5000);
    expect((await f.tokens.revoke(admin, t.id)).revokedAt).toBe(first.revokedAt);
    expect((await rejection(f.tokens.revoke(admin, 'no-such-token'))).code).toBe('not-found');
  });

  it('lists newest first, page by page, leaving out revoked tokens unless asked', async () => {
    const f = gatewayFixture();
    const made: Array<{ id: string }> = [];
    for (let i = 0; i < 5; i++) made.push(await f.tokens.create(admin, { name: `t${i}`, role: 'admin' }));
    await f.tokens.revoke(admin, made[2]!.id);
    const ids = made
      .map((t) => t.id)
      .sort()
      .reverse();
    const live = ids.filter((id) => id !== made[2]!.id);

    const page1 = await f.tokens.list({ limit: 3, includeRevoked: false });
    expect(page1.items.map((t) => t.id)).toEqual(live.slice(0, 3));
    expect(page1.nextCursor).toBe(live[2]);
    const page2 = await f.tokens.list({ limit: 3, includeRevoked: false, cursor: page1.nextCursor! });
    expect(page2.items.map((t) => t.id)).toEqual(live.slice(3));
    expect(page2.nextCursor).toBeNull();

    const all = await f.tokens.list({ limit: 10, includeRevoked: true });
    expect(all.items.map((t) => t.id)).toEqual(ids);
    expect(JSON.stringify(all)).not.toMatch(/tokenHash|cairn_/);
  });

  it('makes the bootstrap secret an admin token once, and leaves a revoked one revoked', async () => {
    const f = gatewayFixture();
    const secret = generateToken();
    await f.tokens.ensureBootstrapAdmin(secret);
    await f.tokens.ensureBootstrapAdmin(secret);
    const rows = await f.records.tokens.list({ includeRevoked: true });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ name: BOOTSTRAP_TOKEN_NAME, role: 'admin', tenantId: null, tokenHash: hashToken(secret) });

    // Revoked outside this gateway (one whose CAIRN_ADMIN_TOKEN is another): a restart does not undo it.
    await f.records.tokens.revoke(rows[0]!.id, new Date());
    await f.tokens.ensureBootstrapAdmin(secret);
    expect((await rejection(f.tokens.authenticate(secret))).code).toBe('unauthorized');
  });

  it('never revokes the bootstrap admin token, even with other admin tokens left (409)', async () => {
    const f = gatewayFixture();
    const secret = generateToken();
    await f.tokens.ensureBootstrapAdmin(secret);
    await f.tokens.create(admin, { name: 'other', role: 'admin' });
    const bootstrap = (await f.records.tokens.getByHash(hashToken(secret)))!;
    const err = await rejection(f.tokens.revoke(admin, bootstrap.id));
    expect(err).toMatchObject({ code: 'conflict', message: expect.stringContaining('bootstrap admin token') });
    expect((await f.tokens.authenticate(secret)).tokenId).toBe(bootstrap.id);
  });

  it('refuses to revoke the last admin token (409); members and other admins revoke freely', async () => {
    const f = gatewayFixture();
    const a = await f.tokens.create(admin, { name: 'a', role: 'admin' });
    const b = await f.tokens.create(admin, { name: 'b', role: 'admin' });
    const m = await f.tokens.create(admin, { name: 'm', role: 'member', tenant: 'acme' });
    expect((await f.tokens.revoke(admin, a.id)).revokedAt).not.toBeNull();
    const err = await rejection(f.tokens.revoke(admin, b.id));
    expect(err).toMatchObject({ code: 'conflict', message: expect.stringContaining('last admin token') });
    expect((await f.tokens.authenticate(b.token)).role).toBe('admin');
    expect((await f.tokens.revoke(admin, m.id)).revokedAt).not.toBeNull();
    // Already revoked: still idempotent, not a conflict.
    expect((await f.tokens.revoke(admin, a.id)).revokedAt).not.toBeNull();
  });
});
