import { CairnError, encryptionOf, type Keyring, type Logger, type Records } from '@cairn/core';
import type { RewrapReport } from '@cairn/core/api/keys.schemas.ts';
import { refreshManifests } from '@cairn/core/domain/catalog-manifest.ts';
import type { ObjectStore } from '@cairn/core/storage/object-store.ts';

const PAGE = 500;
const IN_FLIGHT = ['pending', 'running'];

/**
 * Key rotation (issue 14): re-wraps the data key of every encrypted backup under the active
 * master key (the first of CAIRN_MASTER_KEYS). The data itself is not touched: only the wrap on
 * the row changes. Every backup row counts, deleted ones too: a live incremental may still read
 * frames from a deleted backup's archive under that backup's key. A backup still pending or
 * running is skipped (its attempt may write a fresh wrap): run again once it ends. The report
 * names the master keys any backup still needs; a key no longer listed there can be removed.
 */
export class KeyRewrapService {
  constructor(
    private readonly deps: {
      records: Records;
      keyring: () => Keyring | undefined;
      logger: Logger;
      /** Where the backups' manifests are rewritten with their new wraps (issue 14: a catalog rebuild must not bring back a removed key's wrap). */
      store?: ObjectStore;
    },
  ) {}

  async rewrap(dryRun: boolean): Promise<RewrapReport> {
    const keyring = this.deps.keyring();
    if (!keyring) throw new CairnError('conflict', 'encryption at rest is off: CAIRN_MASTER_KEYS is not set');
    const report: RewrapReport = { activeKeyId: keyring.activeId, dryRun, rewrapped: 0, alreadyActive: 0, skippedRunning: [], failed: [], stillNeeded: [] };
    const needed = new Set<string>();
    /** Under the active key now: their manifests are rewritten (a failed write is caught up by the next run). */
    const active: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.deps.records.backups.find({}, { order: 'asc', ...(after ? { after } : {}), take: PAGE });
      for (const b of page) {
        const enc = encryptionOf(b.encryption);
        if (!enc) continue;
        if (enc.keyId === keyring.activeId) {
          report.alreadyActive++;
          active.push(b.id);
          continue;
        }
        if (IN_FLIGHT.includes(b.status)) {
          report.skippedRunning.push(b.id);
          needed.add(enc.keyId);
          continue;
        }
        try {
          const wrapped = keyring.wrap(keyring.unwrap(enc, b.id), b.id);
          // Only a row whose wrap is still the one read: nothing else writes it once the backup ended.
          if (!dryRun) await this.deps.records.backups.updateWhere({ id: b.id, status: b.status }, { encryption: { ...wrapped } });
          report.rewrapped++;
          active.push(b.id);
        } catch (err) {
          report.failed.push({ backupId: b.id, keyId: enc.keyId, error: (err as Error).message });
          needed.add(enc.keyId);
        }
      }
      if (page.length < PAGE) break;
      after = page[page.length - 1]!.id;
    }
    report.stillNeeded = [...needed].sort();
    if (!dryRun && this.deps.store && active.length) {
      const manifests = await refreshManifests(this.deps.records, this.deps.store, active);
      if (manifests.failed.length)
        this.deps.logger.warn({ failed: manifests.failed.slice(0, 20) }, 're-wrapped backups whose manifest could not be rewritten: run the re-wrap again');
    }
    this.deps.logger.info({ ...report, skippedRunning: report.skippedRunning.length, failed: report.failed.length }, 'data keys re-wrapped');
    return report;
  }
}
