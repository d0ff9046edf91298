import { z } from 'zod';
import { BackupPath, Timestamp } from './common.schemas.ts';
import { named } from './registry.ts';

export const CreateDownloadLinkBody = named(
  'DownloadLinkRequest',
  z.object({ path: BackupPath.optional().describe('one file or directory, answered as a plain tar; the whole archive when absent') }).strict(),
);
export type CreateDownloadLinkBody = z.infer<typeof CreateDownloadLinkBody>;

export const DownloadLinkView = named(
  'DownloadLink',
  z.object({
    url: z.string().describe('path of the download on this gateway (GET, no Authorization header): /v1/downloads/<signed token>'),
    expiresAt: Timestamp,
    backupId: z.string(),
    path: z.string().nullable(),
  }),
  'A short-lived link to one download of one backup, signed by the gateway; it carries no API token.',
);
export type DownloadLinkView = z.infer<typeof DownloadLinkView>;

export const DownloadTokenParams = z.object({ token: z.string().min(1).max(4096) }).strict();
