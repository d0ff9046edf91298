import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { createLogger } from '@cairn/core';
import type { Actor } from '@cairn/gateway/services/actor.ts';
import { DOWNLOAD_LINK_TTL_MS, DownloadLinkService, downloadLinkKey } from '@cairn/gateway/services/download-link.service.ts';
import { admin, gatewayFixture, member, rejection } from './gateway-fixture.ts';

const logger = createLogger({ level: 'silent' });

async function setup() {
  const f = gatewayFixture();
  f.node('n1', ['/srv/a']);
  const tenant = f.tenant('acme');
  // A real token row: a link is used as the token that issued it.
  const token = await f.tokens.create(admin, { name: 'ui', role: 'member', tenant: 'acme' });
  const owner: Actor = { tokenId: token.id, role: 'member', tenantId: tenant.id };
  const inst = await f.instance({ nodeId: 'n1', volumes: [{ name: 'data', hostPath: '/srv/a/data' }] }, owner);
  const { backup, job } = await f.backups.start(owner, inst.id, {});
  await f.complete(backup.id, job.id);
  const row = (await f.records.backups.get(backup.id))!;
  const archive = await f.storeArchive(row, { data: { 'readme.txt': 'hello\n', 'docs/a.txt': 'a'.repeat(1000) } });
  await f.records.backups.updateWhere({ id: backup.id }, { sizeBytes: BigInt(archive.length) });
  const clock = { ms: Date.parse('2026-12-01T12:00:00.000Z') };
  const links = (key = Buffer.alloc(32, 7)) =>
    new DownloadLinkService({ key, backups: f.backups, files: f.files, tokens: f.tokens, logger, now: () => clock.ms });
  return { f, owner, backup: row, archive, clock, links, token };
}

const tokenOf = (url: string) => url.slice('/v1/downloads/'.length);
const signal = () => new AbortController().signal;

describe('DownloadLinkService', () => {
  it('issues a link bound to a backup and path that opens exactly that download, without the API token', async () => {
    const { owner, backup, archive, links, token } = await setup();
    const service = links();
    const whole = await service.issue(owner, backup.id, undefined);
    expect(whole.url).toMatch(/^\/v1\/downloads\/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(whole.url).not.toContain(token.token);
    expect(whole.expiresAt).toBe(new Date(Date.parse('2026-12-01T12:00:00.000Z') + DOWNLOAD_LINK_TTL_MS).toISOString());
    expect(await buffer((await service.open(tokenOf(whole.url), signal())).stream)).toEqual(archive);

    const one = await service.issue(owner, backup.id, 'data/readme.txt');
    const download = await service.open(tokenOf(one.url), signal());
    expect(download.filename).toBe('readme.txt.tar');
    expect((await buffer(download.stream)).toString('latin1')).toContain('hello\n');
  });

  it('checks the tenant and the path when issuing', async () => {
    const { f, backup, links } = await setup();
    const stranger = member(f.tenant('other').id);
    expect((await rejection(links().issue(stranger, backup.id, undefined))).code).toBe('not-found');
    expect(await rejection(links().issue(admin, backup.id, 'data/nope'))).toMatchObject({ code: 'validation' });
  });

  it('refuses an altered, forged, expired or revoked link with 401', async () => {
    const { f, owner, backup, links, clock, token } = await setup();
    const service = links();
    const link = tokenOf((await service.issue(owner, backup.id, 'data/readme.txt')).url);
    const [body, sig] = link.split('.') as [string, string];

    // Another path in the same payload, with the old signature.
    const payload = JSON.parse(Buffer.from(body, 'base64url').toString());
    const altered = `${Buffer.from(JSON.stringify({ ...payload, p: null })).toString('base64url')}.${sig}`;
    expect(await rejection(service.open(altered, signal()))).toMatchObject({ code: 'unauthorized', message: expect.stringMatching(/invalid download link/) });
    // Signed with another key (another deployment, or a guess).
    expect(await rejection(links(Buffer.alloc(32, 8)).open(link, signal()))).toMatchObject({ code: 'unauthorized' });
    for (const junk of ['', 'x', `${body}.`, `${body}.${sig.slice(1)}`, `.${sig}`])
      expect(await rejection(service.open(junk, signal()))).toMatchObject({ code: 'unauthorized' });

    clock.ms += DOWNLOAD_LINK_TTL_MS;
    expect(await rejection(service.open(link, signal()))).toMatchObject({ code: 'unauthorized', message: expect.stringMatching(/expired at/) });

    clock.ms -= 1000;
    await service.open(link, signal());
    await f.tokens.revoke(admin, token.id);
    expect(await rejection(service.open(link, signal()))).toMatchObject({ code: 'unauthorized', message: expect.stringMatching(/revoked/) });
  });

  it('derives the same key from the same secret on every replica, a different one per secret', () => {
    const a = downloadLinkKey({ DOWNLOAD_LINK_SECRET: 's'.repeat(32) }, logger);
    expect(downloadLinkKey({ DOWNLOAD_LINK_SECRET: 's'.repeat(32), CAIRN_ADMIN_TOKEN: 't'.repeat(24) }, logger)).toEqual(a);
    const fromAdmin = downloadLinkKey({ CAIRN_ADMIN_TOKEN: 't'.repeat(24) }, logger);
    expect(fromAdmin).not.toEqual(a);
    expect(fromAdmin.toString('latin1')).not.toContain('t'.repeat(24));
    expect(downloadLinkKey({}, logger)).not.toEqual(downloadLinkKey({}, logger));
  });
});
