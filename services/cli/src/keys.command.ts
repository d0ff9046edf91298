import type { CairnClient } from './api-client.ts';

/** `cairn keys rewrap [--dry-run]` (issue 14, key rotation). */
export const KEYS_USAGE = `  keys rewrap [--dry-run] [--json]               re-wrap every backup's data key under the active master key (admin)`;

interface RewrapReport {
  activeKeyId: string;
  dryRun: boolean;
  rewrapped: number;
  alreadyActive: number;
  skippedRunning: string[];
  failed: { backupId: string; keyId: string; error: string }[];
  stillNeeded: string[];
}

/** Prints the report; exit 1 when a backup could not be re-wrapped. */
export async function keysCommand(
  client: CairnClient,
  a: { sub: string | undefined; dryRun: boolean; json: boolean },
  usage: (message: string) => Error,
): Promise<number> {
  if (a.sub !== 'rewrap') throw usage(a.sub ? `unknown keys command ${a.sub}` : 'missing keys command (rewrap)');
  const r = await client.request<RewrapReport>('POST', '/v1/admin/keys/rewrap', { dryRun: a.dryRun });
  if (a.json) console.log(JSON.stringify(r, null, 2));
  else {
    console.log(`${r.dryRun ? 'would re-wrap' : 're-wrapped'} ${r.rewrapped} data key(s) under ${r.activeKeyId}; ${r.alreadyActive} already under it`);
    if (r.skippedRunning.length) console.log(`skipped ${r.skippedRunning.length} pending/running backup(s): run again once they end`);
    for (const f of r.failed) console.log(`FAILED ${f.backupId} (key ${f.keyId}): ${f.error}`);
    console.log(
      r.stillNeeded.length ? `master keys still needed: ${r.stillNeeded.join(', ')}` : 'no backup needs any other master key: old keys can be removed',
    );
  }
  return r.failed.length ? 1 : 0;
}
