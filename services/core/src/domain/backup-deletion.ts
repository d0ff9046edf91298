import { CairnError } from '../errors.ts';
import { newId } from '../ids.ts';
import { CONTROL_QUEUE, type ControlJobName, type ControlJobPayload } from '../queue/contracts.ts';
import { ACTIVE_JOB_STATUSES, type Backup, type BackupStatus, type Job, type Records } from '../records/records.ts';
import { cancelJob } from './job-cancel.ts';

/**
 * The one soft delete of backups (SPEC §10), shared by `DELETE /backups/:id`, the batch delete
 * and retention: the backup turns `deleting` at once (conditional update), a `cleanup` Job row is
 * written and a `cleanup` control job enqueued to remove its objects and mark it `deleted`.
 *
 * Deleting a backup never breaks another: its archive object stays while a live incremental reads
 * from it (the cleanup decides, domain/object-references.ts). The `deleting` state is written here,
 * before the cleanup takes the GC lock, so from then on no new backup can reference it
 * (referenceParent accepts only a `completed` parent).
 */

/** What deletion needs from the queues: JobQueues and the gateway's QueuePort both fit. */
export interface DeletionQueues {
  enqueueControl(name: ControlJobName, payload: ControlJobPayload, jobId: string): Promise<void>;
  cancel(queueName: string, jobId: string, reason: string): Promise<'removed' | 'signalled' | 'gone'>;
  /**
   * Resolves when Redis answers, throws CairnError('unavailable') otherwise (the gateway's
   * QueuePort). Checked before anything changes, so a delete while Redis is down changes nothing.
   */
  ready?(): Promise<void>;
}

export interface SoftDeleteOptions {
  /**
   * States a backup may be deleted from. Default: every state but deleting/deleted. Retention
   * passes `['completed']`, so a backup that is running (or anything else) is never expired.
   */
  from?: BackupStatus[];
  /** Only backups of instances of this tenant (members); absent for admins and the system. */
  tenantId?: string;
  /** Recorded in the cleanup Job's params (`retention`, `user`...). */
  reason?: string;
  /** Extra params for the cleanup Job (e.g. the schedule whose retention deleted it). */
  params?: Record<string, string | number | boolean | null>;
  now?: () => Date;
}

export interface BatchSoftDeleteOptions extends SoftDeleteOptions {
  /**
   * Turns an error that is not a CairnError (a database error, a bug) into the per-id error.
   * Default: `unavailable` with its message. The gateway passes its HTTP error mapping.
   */
  classifyError?: (err: unknown, backupId: string) => CairnError;
}

export interface SoftDeleted {
  id: string;
  /** The backup as it is now: `deleting`, or `deleted` when it already was. */
  backup: Backup;
  /** The cleanup job (reused when one was active); null for an already deleted backup. */
  cleanupJob: Job | null;
  /** Producer jobs of the backup that were cancelled or signalled. */
  cancelledJobs: string[];
}

export type SoftDeleteResult = ({ ok: true } & SoftDeleted) | { id: string; ok: false; error: CairnError };

/** Job types that read a backup's objects: the backup cannot be deleted under them. */
const READERS = ['restore', 'verify', 'migrate'] as const;
const LIVE: BackupStatus[] = ['pending', 'running', 'completed', 'failed', 'cancelled'];

/**
 * Soft-deletes each backup on its own, in order; one result per id. Repeating it is safe: an
 * active cleanup job is reused, a failed or lost one replaced, a `deleted` backup left alone.
 */
export async function softDeleteBackups(
  records: Records,
  queues: DeletionQueues,
  ids: readonly string[],
  requestedBy: string,
  options: BatchSoftDeleteOptions = {},
): Promise<SoftDeleteResult[]> {
  const classify =
    options.classifyError ??
    ((err: unknown, id: string) => new CairnError('unavailable', `could not delete backup ${id}: ${(err as Error).message}`, { cause: err }));
  const results: SoftDeleteResult[] = [];
  for (const id of ids) {
    try {
      results.push({ ok: true, ...(await softDeleteBackup(records, queues, id, requestedBy, options)) });
    } catch (err) {
      results.push({ id, ok: false, error: err instanceof CairnError ? err : classify(err, id) });
    }
  }
  return results;
}

/** The refusal to delete a pinned backup (409), naming how to unpin it. */
export function pinnedError(backup: Pick<Backup, 'id' | 'name'>): CairnError {
  const named = backup.name ? ` (${backup.name})` : '';
  return new CairnError('conflict', `backup ${backup.id}${named} is pinned; unpin it (PATCH /v1/backups/${backup.id} {"pinned": false}) before deleting it`, {
    details: { backupId: backup.id, pinned: true },
  });
}

/**
 * Soft-deletes one backup (`DELETE /backups/:id`) and throws what stops it: not-found (or another
 * tenant's), conflict (a pinned backup; a restore, verify or migrate reads it; a state outside `from`), unavailable
 * (Redis down before anything changed, or the cleanup could not be enqueued: that cleanup job is
 * marked failed, the backup stays `deleting` and repeating the call retries).
 */
export async function softDeleteBackup(
  records: Records,
  queues: DeletionQueues,
  id: string,
  requestedBy: string,
  options: SoftDeleteOptions = {},
): Promise<SoftDeleted> {
  const now = options.now ?? (() => new Date());
  const from = (options.from ?? LIVE).filter((s) => s !== 'deleting' && s !== 'deleted');
  const where = { id, tenantId: options.tenantId };
  // Answer what needs no queue first (unknown, already deleted), then refuse early if Redis is down.
  const seen = await records.backups.findFirst(where);
  if (!seen) throw new CairnError('not-found', `backup ${id} not found`);
  if (seen.status === 'deleted') return { id, backup: seen, cleanupJob: null, cancelledJobs: [] };
  if (seen.pinned && seen.status !== 'deleting') throw pinnedError(seen);
  await queues.ready?.();

  const { backup, cleanup } = await records.transaction(async (tx) => {
    await tx.lock('backup', id);
    const found = await tx.backups.findFirst(where);
    if (!found) throw new CairnError('not-found', `backup ${id} not found`);
    if (found.status === 'deleted') return { backup: found, cleanup: null };
    // A pinned backup is never deleted (issue 13), by a user or by retention, until it is unpinned.
    if (found.pinned && found.status !== 'deleting') throw pinnedError(found);
    const reader = await tx.jobs.findFirst({ backupId: id, type: READERS, status: ACTIVE_JOB_STATUSES });
    if (reader)
      throw new CairnError('conflict', `backup ${id} is being read by ${reader.type} job ${reader.id}; cancel it or wait`, { details: { jobId: reader.id } });
    if (found.status !== 'deleting') {
      if (!(await tx.backups.transition(id, from, 'deleting', { deletedAt: now() })))
        throw new CairnError('conflict', `backup ${id} is ${found.status}; it can be deleted only when ${from.join(', ')}`, {
          details: { status: found.status },
        });
    }
    const backup = (await tx.backups.get(id))!;
    const active = await tx.jobs.findFirst({ backupId: id, type: 'cleanup', status: ACTIVE_JOB_STATUSES });
    const cleanup =
      active ??
      (await tx.jobs.create({
        id: newId(),
        type: 'cleanup',
        status: 'queued',
        instanceId: backup.instanceId,
        backupId: id,
        queue: CONTROL_QUEUE,
        params: { reason: options.reason ?? 'deleted', ...(options.params ?? {}) },
        requestedBy,
      }));
    return { backup, cleanup };
  });
  if (!cleanup) return { id, backup, cleanupJob: null, cancelledJobs: [] };

  const cancelledJobs: string[] = [];
  let step = 'enqueue the cleanup';
  try {
    // The backup being produced right now: stop it (its worker removes what it uploaded).
    const producers = await records.jobs.find({ backupId: id, type: 'backup', status: ACTIVE_JOB_STATUSES });
    for (const job of producers) {
      step = `cancel backup job ${job.id}`;
      if ((await cancelJob(records, queues, job, `backup ${id} deleted`)) !== 'unchanged') cancelledJobs.push(job.id);
    }
    step = 'enqueue the cleanup';
    // Idempotent: BullMQ job id = Cairn job id, so re-enqueueing an existing cleanup is a no-op.
    if (cleanup.status === 'queued') await queues.enqueueControl('cleanup', { backupId: id, jobId: cleanup.id }, cleanup.id);
  } catch (err) {
    // A queued cleanup nobody enqueued would block every retry (it counts as active): fail it.
    const reason = `could not ${step}: ${(err as Error).message}`;
    const details = { backupId: id, jobId: cleanup.id };
    try {
      await records.jobs.transition(cleanup.id, ['queued'], 'failed', { error: reason, errorCode: 'unavailable' });
    } catch (writeErr) {
      // Both are reported: the cause of the failure and why the cleanup job still reads queued (the sweep closes it).
      throw new CairnError('unavailable', `${reason}; marking cleanup job ${cleanup.id} failed failed too: ${(writeErr as Error).message}`, {
        cause: err,
        details,
      });
    }
    throw new CairnError('unavailable', `${reason}; the backup stays deleting, repeat the delete to retry`, { cause: err, details });
  }
  const cleanupJob = (await records.jobs.get(cleanup.id)) ?? cleanup;
  return { id, backup, cleanupJob, cancelledJobs };
}
