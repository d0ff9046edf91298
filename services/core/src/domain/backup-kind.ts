import { CairnError } from '../errors.ts';
import type { Backup, BackupRecords } from '../records/records.ts';

/**
 * Which kind a new backup is, and on which parent an incremental one builds (SPEC §5
 * "Incremental backups", issue 11 "Backup kinds").
 *
 * - `full`: a full backup.
 * - `incremental`: an incremental backup of the newest eligible parent; none → 409 conflict.
 * - `auto` (the default, and what schedules fire): incremental when there is an eligible parent
 *   and the chain it ends has fewer than `fullEvery - 1` incrementals since its full backup, so
 *   that every `fullEvery`-th backup of a chain is a full one (FULL_BACKUP_EVERY); else full.
 *
 * An eligible parent is a backup of the same instance that is `completed` (not deleted), covers
 * the same set of volumes (a row's empty `volumes` means all of the instance's), uses the same
 * codec, and was written in archive format 2 (a format 1 index has no change-detection fields
 * nor frames cut at entry boundaries). The newest one (by completion) is the parent.
 *
 * {@link chooseBackupKind} decides from rows alone (pure, unit-tested); {@link decideBackupKind}
 * loads the rows it needs first.
 */

export const BACKUP_KIND_REQUESTS = ['auto', 'full', 'incremental'] as const;
export type BackupKindRequest = (typeof BACKUP_KIND_REQUESTS)[number];

/** The archive format versions a parent may have been written in. */
export const PARENT_FORMAT_VERSIONS: readonly number[] = [2];

/** What the choice reads of a backup row. */
export type KindRow = Pick<Backup, 'id' | 'instanceId' | 'status' | 'kind' | 'parentId' | 'volumes' | 'compression' | 'format' | 'deletedAt' | 'completedAt'> &
  Partial<Pick<Backup, 'verifyStatus'>>;

export interface KindRequest {
  requested: BackupKindRequest;
  /** The volumes the new backup covers. */
  volumes: readonly string[];
  /** Every volume of the instance now: what a row's empty `volumes` stands for. */
  instanceVolumes: readonly string[];
  /** The new backup's codec. */
  compression: string;
  /** A full backup every this many backups of a chain (FULL_BACKUP_EVERY, ≥ 1). */
  fullEvery: number;
}

export type KindChoice =
  | { kind: 'full'; parentId: null; reason: string }
  | {
      kind: 'incremental';
      parentId: string;
      /** Incremental backups between the parent's full backup and the new one (the parent included when it is one). */
      incrementalsBefore: number;
      reason: string;
    };

const sameSet = (a: readonly string[], b: readonly string[]): boolean => {
  const x = [...new Set(a)].sort();
  const y = [...new Set(b)].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
};

/** Why `row` cannot be the parent of the backup requested, or null when it can. */
export function parentIneligibility(row: KindRow, request: Omit<KindRequest, 'requested' | 'fullEvery'>): string | null {
  if (row.status !== 'completed' || row.deletedAt) return `it is ${row.deletedAt && row.status === 'completed' ? 'deleted' : row.status}`;
  const volumes = row.volumes.length ? row.volumes : request.instanceVolumes;
  if (!sameSet(volumes, request.volumes)) return `it covers volumes ${[...volumes].sort().join(', ') || '(none)'}`;
  if (row.compression !== request.compression) return `its codec is ${row.compression}`;
  if (!PARENT_FORMAT_VERSIONS.includes(row.format)) return `it is in archive format ${row.format}`;
  // Verification (issue 14) found it damaged: nothing may point at its frames again.
  if (row.verifyStatus === 'failed') return 'it failed verification';
  return null;
}

const completedTime = (r: KindRow) => r.completedAt?.getTime() ?? Number.NEGATIVE_INFINITY;

/** The newest backup among `rows` that can be the parent, if any. */
export function newestEligibleParent(rows: readonly KindRow[], request: Omit<KindRequest, 'requested' | 'fullEvery'>): KindRow | undefined {
  return rows
    .filter((r) => parentIneligibility(r, request) === null)
    .sort((a, b) => completedTime(b) - completedTime(a) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))[0];
}

/**
 * The number of incremental backups from `parent` back to the full backup its chain starts with
 * (0 when the parent is full). Ancestors are looked up in `rows` whatever their state: a deleted
 * backup still counts in the chain. `Infinity` when the chain cannot be followed to a full backup
 * (an ancestor's row is gone): nothing proves it short, so `auto` starts a new chain.
 */
export function incrementalsSince(parent: KindRow, rows: readonly KindRow[], limit = Number.MAX_SAFE_INTEGER): number {
  const byId = new Map(rows.map((r) => [r.id, r]));
  let count = 0;
  let node: KindRow | undefined = parent;
  const seen = new Set<string>();
  while (node.kind === 'incremental') {
    if (seen.has(node.id) || !node.parentId) return Number.POSITIVE_INFINITY;
    seen.add(node.id);
    count++;
    if (count > limit) return count;
    node = byId.get(node.parentId);
    if (!node) return Number.POSITIVE_INFINITY;
  }
  return count;
}

/**
 * The kind of a new backup and its parent, from the instance's backup rows: its completed backups
 * (the candidates) and the ancestors of the newest eligible one (for the chain length). Throws
 * CairnError `conflict` for `incremental` when no backup can be its parent.
 */
export function chooseBackupKind(request: KindRequest, rows: readonly KindRow[]): KindChoice {
  if (request.requested === 'full') return { kind: 'full', parentId: null, reason: 'a full backup was requested' };
  const parent = newestEligibleParent(rows, request);
  if (!parent) {
    const reason = noParentReason(request, rows);
    if (request.requested === 'incremental') {
      throw new CairnError('conflict', `cannot take an incremental backup: ${reason}; take a full (or auto) backup first`, {
        details: { kind: 'incremental', volumes: [...request.volumes].sort(), compression: request.compression },
      });
    }
    return { kind: 'full', parentId: null, reason };
  }
  const before = incrementalsSince(parent, rows, request.fullEvery);
  if (request.requested === 'auto' && before >= request.fullEvery - 1) {
    const chain = Number.isFinite(before) ? `${before} incremental backup(s) since its full backup` : 'no full backup found at its start';
    return {
      kind: 'full',
      parentId: null,
      reason: `a full backup every ${request.fullEvery} (FULL_BACKUP_EVERY): the chain of backup ${parent.id} has ${chain}`,
    };
  }
  return { kind: 'incremental', parentId: parent.id, incrementalsBefore: before, reason: `changes since backup ${parent.id}` };
}

function noParentReason(request: KindRequest, rows: readonly KindRow[]): string {
  const volumes = [...request.volumes].sort().join(', ');
  const what = `no completed backup of volumes ${volumes} with codec ${request.compression} in archive format ${PARENT_FORMAT_VERSIONS.join(' or ')}`;
  const newest = rows
    .filter((r) => r.status === 'completed' && !r.deletedAt)
    .sort((a, b) => completedTime(b) - completedTime(a) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))[0];
  if (!newest) return `${what} (the instance has no completed backup)`;
  return `${what} (the newest completed backup ${newest.id} cannot be a parent: ${parentIneligibility(newest, request)})`;
}

/** How many completed backups of an instance are looked at for a parent, newest first. */
export const PARENT_CANDIDATES = 200;

/**
 * Loads what {@link chooseBackupKind} needs: the instance's newest completed backups and the
 * ancestors of the newest eligible one, up to `fullEvery` of them. Pass a transaction's records
 * to decide under its locks.
 */
export async function loadKindRows(backups: Pick<BackupRecords, 'find' | 'get'>, instanceId: string, request: KindRequest): Promise<KindRow[]> {
  if (request.requested === 'full') return [];
  const rows: KindRow[] = await backups.find({ instanceId, status: 'completed' }, { order: 'desc', take: PARENT_CANDIDATES });
  const parent = newestEligibleParent(rows, request);
  const known = new Map(rows.map((r) => [r.id, r]));
  let node = parent;
  for (let i = 0; node && node.kind === 'incremental' && node.parentId && i <= request.fullEvery; i++) {
    const next: KindRow | null = known.get(node.parentId) ?? (await backups.get(node.parentId));
    if (!next || next.instanceId !== instanceId) break;
    if (!known.has(next.id)) {
      known.set(next.id, next);
      rows.push(next);
    }
    node = next;
  }
  return rows;
}

/** {@link loadKindRows} then {@link chooseBackupKind}. */
export async function decideBackupKind(backups: Pick<BackupRecords, 'find' | 'get'>, instanceId: string, request: KindRequest): Promise<KindChoice> {
  return chooseBackupKind(request, await loadKindRows(backups, instanceId, request));
}
