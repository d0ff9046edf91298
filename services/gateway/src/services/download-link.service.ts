import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { CairnError, type Config, type Logger } from '@cairn/core';
import type { DownloadLinkView } from '@cairn/core/api/index.ts';
import type { Actor } from './actor.ts';
import type { BackupFilesService, Download } from './backup-files.service.ts';
import type { BackupService } from './backup.service.ts';
import type { TokenService } from './token.service.ts';

/** How long a link works: long enough to start a download, short enough that a leaked one is stale. */
export const DOWNLOAD_LINK_TTL_MS = 5 * 60_000;
/** Signed with the payload, so a token of another kind signed by the same secret is never one of these. */
const PURPOSE = 'cairn-download-link.v1';

/** What a link is bound to: one backup, one path (or the archive), the API token that asked, an expiry. */
interface LinkPayload {
  /** backup id */
  b: string;
  /** path, or null for the whole archive */
  p: string | null;
  /** the issuing API token's id (its tenant and revocation are checked again when the link is used) */
  t: string;
  /** expiry, ms since the epoch */
  e: number;
}

/**
 * The key that signs download links: DOWNLOAD_LINK_SECRET, else derived from CAIRN_ADMIN_TOKEN
 * (one-way: the link key reveals nothing of the token; every gateway replica derives the same one),
 * else random for this process (links then work only on the gateway that issued them).
 */
export function downloadLinkKey(config: Partial<Pick<Config, 'DOWNLOAD_LINK_SECRET' | 'CAIRN_ADMIN_TOKEN'>>, logger: Logger): Buffer {
  if (config.DOWNLOAD_LINK_SECRET) return createHmac('sha256', config.DOWNLOAD_LINK_SECRET).update(PURPOSE).digest();
  if (config.CAIRN_ADMIN_TOKEN) return createHmac('sha256', config.CAIRN_ADMIN_TOKEN).update(PURPOSE).digest();
  logger.warn('neither DOWNLOAD_LINK_SECRET nor CAIRN_ADMIN_TOKEN is set: download links work only on the gateway process that issued them');
  return randomBytes(32);
}

export interface DownloadLinkServiceOptions {
  key: Buffer;
  backups: BackupService;
  files: BackupFilesService;
  tokens: Pick<TokenService, 'actorOf'>;
  logger: Logger;
  ttlMs?: number;
  now?: () => number;
}

/**
 * Download links (issue 15): a browser cannot send the bearer token on a plain navigation, and a
 * fetch that builds a Blob holds the whole archive in memory. A link is `<payload>.<HMAC>`: the
 * tenant check is made when it is issued (and again, as the issuing token, when it is used), it
 * expires after a few minutes, and it opens exactly one backup and path. It never carries the
 * API token.
 */
export class DownloadLinkService {
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(private readonly options: DownloadLinkServiceOptions) {
    this.ttlMs = options.ttlMs ?? DOWNLOAD_LINK_TTL_MS;
    this.now = options.now ?? Date.now;
  }

  async issue(actor: Actor, backupId: string, path: string | undefined): Promise<DownloadLinkView> {
    const backup = await this.options.backups.findVisible(actor, backupId);
    if (backup.status !== 'completed')
      throw new CairnError('conflict', `backup ${backup.id} is ${backup.status}: only completed backups can be downloaded`, {
        details: { status: backup.status },
      });
    if (path !== undefined) await this.options.files.assertPaths(backup, [path], 'path');
    const payload: LinkPayload = { b: backup.id, p: path ?? null, t: actor.tokenId, e: this.now() + this.ttlMs };
    const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
    this.options.logger.info({ backupId: backup.id, path: path ?? null, by: actor.tokenId }, 'download link issued');
    return { url: `/v1/downloads/${body}.${this.sign(body)}`, expiresAt: new Date(payload.e).toISOString(), backupId: backup.id, path: path ?? null };
  }

  /** The download a link opens, as its issuing token would get it; 401 for a forged, altered or expired link. */
  async open(token: string, signal: AbortSignal): Promise<Download> {
    const payload = this.verify(token);
    const actor = await this.options.tokens.actorOf(payload.t);
    return this.options.files.download(actor, payload.b, payload.p ?? undefined, signal);
  }

  private verify(token: string): LinkPayload {
    const invalid = () => new CairnError('unauthorized', 'invalid download link: ask for a new one (POST /v1/backups/:id/download-links)');
    const dot = token.indexOf('.');
    if (dot <= 0) throw invalid();
    const body = token.slice(0, dot);
    const given = Buffer.from(token.slice(dot + 1), 'base64url');
    const expected = Buffer.from(this.sign(body), 'base64url');
    // Constant time: a wrong signature reveals nothing of how much of it was right.
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid();
    let payload: LinkPayload;
    try {
      payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as LinkPayload;
    } catch {
      throw invalid();
    }
    if (typeof payload.b !== 'string' || typeof payload.t !== 'string' || typeof payload.e !== 'number') throw invalid();
    if (this.now() >= payload.e)
      throw new CairnError(
        'unauthorized',
        `download link expired at ${new Date(payload.e).toISOString()}: ask for a new one (POST /v1/backups/:id/download-links)`,
      );
    return payload;
  }

  private sign(body: string): string {
    return createHmac('sha256', this.options.key).update(`${PURPOSE}.${body}`).digest('base64url');
  }
}
