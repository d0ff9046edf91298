/**
 * Object keys of a backup (SPEC §5), built in exactly this one place. Keys are relative to the
 * store's configured prefix.
 */
export type Compression = 'zstd' | 'gzip' | 'none';

const ARCHIVE_SUFFIX: Record<Compression, string> = { zstd: 'archive.tar.zst', gzip: 'archive.tar.gz', none: 'archive.tar' };

export function backupPrefix(instanceId: string, backupId: string): string {
  return `instances/${instanceId}/backups/${backupId}/`;
}

export function archiveKey(instanceId: string, backupId: string, compression: Compression): string {
  return `${backupPrefix(instanceId, backupId)}${ARCHIVE_SUFFIX[compression]}`;
}

export function indexKey(instanceId: string, backupId: string): string {
  return `${backupPrefix(instanceId, backupId)}index.json.gz`;
}

/** The backup id a key belongs to, or null for keys outside the layout (used by orphan sweeps). */
export function parseBackupKey(key: string): { instanceId: string; backupId: string } | null {
  const m = /^instances\/([^/]+)\/backups\/([^/]+)\//.exec(key);
  return m ? { instanceId: m[1]!, backupId: m[2]! } : null;
}

/**
 * The backup's manifest (issue 14, restore from the bucket alone): its row and its instance as
 * JSON, written once the backup is completed. Part of the backup: its cleanup removes it with the
 * index. Read by `cairn catalog rebuild` (domain/catalog-manifest.ts).
 */
export function manifestKey(instanceId: string, backupId: string): string {
  return `${backupPrefix(instanceId, backupId)}manifest.json`;
}
