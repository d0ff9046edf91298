import { CairnError } from '../errors.ts';
import { type Backup, LIVE_BACKUP_STATUSES, type Records, type TxRecords } from '../records/records.ts';
import type { ObjectStore } from '../storage/object-store.ts';

/**
 * Archive objects shared between backups, and their garbage collection (SPEC §5 "Incremental
 * backups", §10; issue 11 "Deletion and garbage collection").
 *
 * Every backup writes one archive object (`Backup.storageKey`, under its own prefix); an
 * incremental backup's index also points into the archive objects of older backups of the same
 * instance. `BackupObjectRef(backupId, ownerId)` records that backup `backupId` reads from the
 * object written by backup `ownerId` (the owner). The pipeline of an incremental backup calls
 * {@link referenceParent} before it points at any byte of another object; the cleanup of a
 * deleted backup calls {@link releaseArchiveObjects}. The rules:
 *
 * - A backup is **live** while pending, running or completed (`LIVE_BACKUP_STATUSES`); deleting,
 *   deleted, failed and cancelled are dead, and no state leads from dead back to live.
 * - An archive object is deleted only when its owner is dead and no live backup references it.
 * - References are added only by referenceParent: to a parent that is `completed` at that moment
 *   and to the owners that parent references, under the GC lock.
 *
 * So an object that is collectable (dead owner, no live referrer) stays collectable: the only way
 * to gain a reference is through a live parent that references it already. That is what makes it
 * safe to delete the objects after the deciding transaction has committed, and lets a reader
 * without the lock (the orphan sweep) trust an empty `liveReferrers`.
 *
 * A backup that fails or is cancelled after referencing others should call releaseArchiveObjects
 * from its failure path: an object only it kept alive otherwise stays until it is deleted.
 */

/** The id under which {@link lockObjectReferences} takes the one GC lock (a `backup` lock no ULID can collide with). */
export const GC_LOCK_ID = 'gc';

/**
 * Takes the one global GC lock until the transaction ends. Every decision "this object is
 * referenced by nobody live" and every new reference are made under it: see the callers.
 */
export async function lockObjectReferences(tx: TxRecords): Promise<void> {
  await tx.lock('backup', GC_LOCK_ID);
}

const isLive = (b: Pick<Backup, 'status'>) => LIVE_BACKUP_STATUSES.includes(b.status);

/**
 * Records that backup `backupId` (pending or running) reads from the archive object of its
 * parent `parentId` and from every object the parent reads from; returns those owners (the
 * parent first, then the parent's owners ascending). Only byte ranges in these objects may be
 * referenced by the backup's index. Idempotent.
 *
 * Throws CairnError `conflict` when the parent is no longer `completed` (being deleted, gone...)
 * or the backup is no longer pending/running: the caller then writes a full backup instead.
 * `not-found` / `validation` for unknown ids, a parent of another instance or the backup itself.
 */
export async function referenceParent(records: Records, ref: { backupId: string; parentId: string }): Promise<string[]> {
  const { backupId, parentId } = ref;
  if (backupId === parentId) throw new CairnError('validation', `backup ${backupId} cannot be its own parent`);
  // Refusals are returned out of the transaction and thrown after it: it has written nothing then,
  // and MemoryRecords' rollback would undo writes made outside it meanwhile.
  const outcome = await records.transaction(async (tx): Promise<string[] | CairnError> => {
    // Under the GC lock, a cleanup either ran before us (it turned the parent `deleting` before it
    // took the lock, so we see that below and refuse) or runs after us and sees the references we
    // commit. Read-committed reads after the lock see every change committed before it was granted.
    await lockObjectReferences(tx);
    const backup = await tx.backups.get(backupId);
    const parent = await tx.backups.get(parentId);
    if (!backup) return new CairnError('not-found', `backup ${backupId} not found`);
    if (!parent) return new CairnError('conflict', `parent backup ${parentId} no longer exists`, { details: { parentId } });
    if (parent.instanceId !== backup.instanceId)
      return new CairnError('validation', `parent backup ${parentId} belongs to another instance than backup ${backupId}`);
    if (backup.status !== 'pending' && backup.status !== 'running')
      return new CairnError('conflict', `backup ${backupId} is ${backup.status}; it cannot reference other backups`, { details: { status: backup.status } });
    if (parent.status !== 'completed')
      return new CairnError('conflict', `parent backup ${parentId} is ${parent.status}, not completed; write a full backup`, {
        details: { parentId, status: parent.status },
      });
    const owners = [parentId, ...(await tx.backups.referencedOwners(parentId)).filter((id) => id !== backupId && id !== parentId)];
    await tx.backups.addReferences(backupId, owners);
    return owners;
  });
  if (outcome instanceof CairnError) throw outcome;
  return outcome;
}

/** What a collection decided for one archive object. */
export interface ObjectDecision {
  /** The backup that wrote the object. */
  ownerId: string;
  key: string;
  /** `unreferenced` (its owner is dead and no live backup reads from it), or why it stays. */
  reason: 'unreferenced' | 'owner is live' | 'referenced by live backups';
  /** The owner's status when decided. */
  ownerStatus: Backup['status'];
  /** The live backups still reading from it (a kept object only). */
  referrers?: string[];
}

export interface ReleaseReport {
  /** Objects deleted (they existed). */
  deleted: ObjectDecision[];
  /** Objects nothing live needs that were already gone. */
  absent: ObjectDecision[];
  /** Objects still needed, and by whom. */
  kept: ObjectDecision[];
}

/**
 * Collects what dead backup `backupId` (deleting, deleted, failed or cancelled) held: its own
 * archive object and the objects of every owner it references, each deleted when its owner is
 * dead and no live backup references it, kept otherwise. The backup's own index and other objects
 * are not touched (they are never shared: the cleanup removes them). Safe to repeat, and to run
 * at the same time as other collections and referenceParent calls.
 *
 * Fails transiently (`unavailable`) when the store could not delete an object: running it again
 * finishes the job.
 */
export async function releaseArchiveObjects(records: Records, store: ObjectStore, backupId: string): Promise<ReleaseReport> {
  const decisions = await records.transaction(async (tx): Promise<ObjectDecision[] | CairnError> => {
    // The GC lock: no reference is added while we decide, so "no live backup references it" holds
    // for every object we doom. After we commit it holds for good: a new reference needs a live
    // parent that references the object already (see the module comment). The deletes themselves
    // therefore happen after the commit, outside the lock.
    await lockObjectReferences(tx);
    const backup = await tx.backups.get(backupId);
    // Refusals returned, not thrown, as in referenceParent.
    if (!backup) return new CairnError('not-found', `backup ${backupId} not found`);
    if (isLive(backup)) return new CairnError('conflict', `backup ${backupId} is ${backup.status}; only a dead backup releases its objects`);
    const out: ObjectDecision[] = [];
    for (const ownerId of [backupId, ...(await tx.backups.referencedOwners(backupId))]) {
      const owner = ownerId === backupId ? backup : await tx.backups.get(ownerId);
      // An owner row cannot vanish while referenced (RESTRICT); nothing to decide without its key.
      if (!owner) continue;
      const decision = { ownerId, key: owner.storageKey, ownerStatus: owner.status };
      if (isLive(owner)) {
        out.push({ ...decision, reason: 'owner is live' });
        continue;
      }
      const referrers = await tx.backups.liveReferrers(ownerId);
      out.push(referrers.length ? { ...decision, reason: 'referenced by live backups', referrers } : { ...decision, reason: 'unreferenced' });
    }
    return out;
  });
  if (decisions instanceof CairnError) throw decisions;

  const report: ReleaseReport = { deleted: [], absent: [], kept: [] };
  const doomed: ObjectDecision[] = [];
  for (const d of decisions) {
    if (d.reason !== 'unreferenced') report.kept.push(d);
    else if (await store.head(d.key)) doomed.push(d);
    else report.absent.push(d);
  }
  if (doomed.length) {
    const { failed } = await store.deleteMany(doomed.map((d) => d.key));
    if (failed.length) throw new CairnError('unavailable', `could not delete ${failed.length} archive object(s): ${failed[0]!.message}`, { permanent: false });
    report.deleted.push(...doomed);
  }
  return report;
}

/**
 * The bytes only backup `of` (an id or its row) holds: what deleting it would free in the store. Its own
 * archive object's size when no other live backup reads from it, plus the size of every dead
 * owner's object it is the last live reader of.
 *
 * An approximation, at object granularity, from the rows' `sizeBytes`: an object another live
 * backup still reads from counts 0 even when most of its bytes are read only by this backup (they
 * are freed when that object is, or by a later full or compaction); the index object is left
 * out; and it is a snapshot taken without the GC lock, so a backup starting at the same moment
 * may make it smaller.
 */
export async function exclusiveBytes(records: Records, of: string | Backup): Promise<bigint> {
  // A row the caller already read saves reading it again (GET /v1/backups/:id).
  const backup = typeof of === 'string' ? await records.backups.get(of) : of;
  if (!backup) throw new CairnError('not-found', `backup ${String(of)} not found`);
  const backupId = backup.id;
  const onlyThis = (referrers: string[]) => referrers.every((id) => id === backupId);
  // One read for all of it (issue 17: GET /v1/backups/:id shows this).
  const sharing = await records.backups.objectSharing(backupId);
  let bytes = onlyThis(sharing.liveReferrers) ? (backup.sizeBytes ?? 0n) : 0n;
  for (const { owner, liveReferrers } of sharing.owners) {
    if (!isLive(owner) && onlyThis(liveReferrers)) bytes += owner.sizeBytes ?? 0n;
  }
  return bytes;
}
