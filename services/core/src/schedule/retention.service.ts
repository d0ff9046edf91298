import { type DeletionQueues, softDeleteBackups } from '../domain/backup-deletion.ts';
import type { Logger } from '../logging/logger.ts';
import type { JobQueues } from '../queue/job-queues.ts';
import type { BackupFilter, LockKind, RecordSet, Records, Schedule, TxRecords } from '../records/records.ts';
import { planRetention, type RetentionPlan, type RetentionPolicy } from './retention.ts';
import { SYSTEM_ACTOR } from './schedule-firing.ts';

/**
 * Applying retention to a schedule's backups (SPEC §9): after each scheduled backup and
 * periodically. Only the schedule's `completed` backups are candidates; dropped ones go through the
 * normal soft delete (from `completed` only, so a backup that changed state meanwhile is left
 * alone), kept ones get `expiresAt` from maxAgeDays. A pinned backup is never a candidate (issue
 * 13): neither kept nor dropped, no expiresAt, and the soft delete refuses it should it be pinned
 * after the plan was made. The same code applies an instance's retention policy for its manual
 * backups (manual-retention.ts): only the set of backups, the policy and the lock differ.
 */

export interface RetentionDeps {
  records: Records;
  queues: DeletionQueues;
  logger?: Logger;
  clock?: () => Date;
}

export interface RetentionRunReport {
  scheduleId: string;
  status: 'applied' | 'schedule-missing';
  kept: number;
  /** Kept backups whose expiresAt changed. */
  expiresUpdated: number;
  /** Backups now `deleting`. */
  deleted: string[];
  /** Backups the plan dropped that could not be deleted now (read by a restore...). */
  failed: { backupId: string; error: string }[];
}

/** The stored retention JSON as a policy (unknown keys ignored, non-numbers dropped). */
export function policyOf(schedule: Pick<Schedule, 'retention'>): RetentionPolicy {
  const raw = (schedule.retention ?? {}) as Record<string, unknown>;
  const out: RetentionPolicy = {};
  for (const key of ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly', 'maxAgeDays'] as const) {
    const v = raw[key];
    if (typeof v === 'number' && Number.isFinite(v)) out[key] = v;
  }
  return out;
}

/** The backups retention may act on among a scope: completed and not pinned. */
const RETAINABLE = { status: 'completed', pinned: false } as const satisfies BackupFilter;

async function candidatesOf(records: RecordSet, scope: BackupFilter) {
  const rows = await records.backups.find({ ...scope, ...RETAINABLE }, { order: 'desc' });
  return rows.map(({ id, createdAt, expiresAt }) => ({ id, createdAt, expiresAt }));
}

/** A dry run over one set of backups (a schedule's, an instance's manual ones). */
export interface RetentionScopePreview {
  timezone: string;
  at: Date;
  plan: RetentionPlan;
  /** Backups of the scope in other states than completed: never touched by retention. */
  untouched: number;
  /** Completed backups of the scope that are pinned, newest first: never touched by retention either. */
  pinned: string[];
}

export interface RetentionPreviewResult extends RetentionScopePreview {
  scheduleId: string;
}

/** Dry run over the backups matching `scope`: what `policy` would keep and drop now (in `timezone`), and why. */
export async function previewRetentionOf(
  records: RecordSet,
  scope: BackupFilter,
  policy: RetentionPolicy,
  timezone: string,
  clock?: () => Date,
): Promise<RetentionScopePreview> {
  const at = (clock ?? (() => new Date()))();
  const candidates = await candidatesOf(records, scope);
  const untouched = await records.backups.count({ ...scope, statusNot: ['completed', 'deleting', 'deleted'] });
  const pinned = (await records.backups.find({ ...scope, status: 'completed', pinned: true }, { order: 'desc' })).map((b) => b.id);
  const plan = planRetention(candidates, policy, { timezone, clock: () => at });
  return { timezone, at, plan, untouched, pinned };
}

/** Dry run: what `policy` (default: the schedule's own) would keep and drop now, and why. */
export async function previewRetention(records: RecordSet, schedule: Schedule, policy?: RetentionPolicy, clock?: () => Date): Promise<RetentionPreviewResult> {
  return {
    scheduleId: schedule.id,
    ...(await previewRetentionOf(records, { scheduleId: schedule.id }, policy ?? policyOf(schedule), schedule.timezone, clock)),
  };
}

/** What one retention run acts on, and how it makes sure its policy still applies when it writes. */
export interface RetentionTarget {
  /** The backups it covers (of these, the completed and unpinned ones are candidates). */
  scope: BackupFilter;
  policy: RetentionPolicy;
  timezone: string;
  /** Taken while expiresAt is written; whoever removes the policy clears expiresAt under the same lock. */
  lock: { kind: LockKind; id: string };
  /** Checked under the lock: false when the policy went away meanwhile (nothing is written then). */
  stillApplies(tx: TxRecords): Promise<boolean>;
  /** Recorded in the cleanup jobs' params and in the log line (e.g. `{scheduleId}`). */
  context: Record<string, string>;
}

export type RetentionOutcome = Pick<RetentionRunReport, 'kept' | 'expiresUpdated' | 'deleted' | 'failed'>;

/** Plans and applies a retention target; null when its policy no longer applied under the lock (nothing changed). */
export async function applyRetentionTarget(deps: RetentionDeps, target: RetentionTarget): Promise<RetentionOutcome | null> {
  const clock = deps.clock ?? (() => new Date());
  const candidates = await candidatesOf(deps.records, target.scope);
  const plan = planRetention(candidates, target.policy, { timezone: target.timezone, clock });
  const out: RetentionOutcome = { kept: plan.keep.length, expiresUpdated: 0, deleted: [], failed: [] };

  const current = new Map(candidates.map((c) => [c.id, c.expiresAt?.getTime() ?? null]));
  const expiring = plan.keep.filter((kept) => current.get(kept.id) !== (kept.expiresAt?.getTime() ?? null));
  // Under the target's lock, and only while its policy applies: removing the policy (deleting the
  // schedule, clearing the manual policy) clears expiresAt under the same lock, so a run that read
  // the policy just before cannot set it again after. A backup pinned meanwhile gets none.
  const updated = await deps.records.transaction(async (tx) => {
    await tx.lock(target.lock.kind, target.lock.id);
    if (!(await target.stillApplies(tx))) return null;
    let count = 0;
    for (const kept of expiring) count += await tx.backups.updateWhere({ id: kept.id, ...RETAINABLE }, { expiresAt: kept.expiresAt });
    return count;
  });
  if (updated === null) return null;
  out.expiresUpdated = updated;

  if (plan.drop.length) {
    const results = await softDeleteBackups(
      deps.records,
      deps.queues,
      plan.drop.map((d) => d.id),
      SYSTEM_ACTOR,
      { from: ['completed'], reason: 'retention', params: target.context },
    );
    for (const r of results) {
      if (r.ok) out.deleted.push(r.id);
      else out.failed.push({ backupId: r.id, error: r.error.message });
    }
  }
  if (out.deleted.length || out.failed.length) {
    deps.logger?.info({ ...target.context, deleted: out.deleted.length, failed: out.failed, kept: out.kept }, 'retention applied');
  }
  return out;
}

export async function applyRetention(deps: RetentionDeps, scheduleId: string): Promise<RetentionRunReport> {
  const report: RetentionRunReport = { scheduleId, status: 'applied', kept: 0, expiresUpdated: 0, deleted: [], failed: [] };
  const schedule = await deps.records.schedules.get(scheduleId);
  if (!schedule) return { ...report, status: 'schedule-missing' };
  const outcome = await applyRetentionTarget(deps, {
    scope: { scheduleId },
    policy: policyOf(schedule),
    timezone: schedule.timezone,
    lock: { kind: 'schedule', id: scheduleId },
    stillApplies: async (tx) => (await tx.schedules.get(scheduleId)) !== null,
    context: { scheduleId },
  });
  if (outcome === null) return { ...report, status: 'schedule-missing' };
  return { ...report, ...outcome };
}

/** Retention of every schedule (the periodic run); one schedule's failure does not stop the others. */
export async function applyAllRetention(deps: RetentionDeps): Promise<{ schedules: number; deleted: number; failed: { scheduleId: string; error: string }[] }> {
  const out = { schedules: 0, deleted: 0, failed: [] as { scheduleId: string; error: string }[] };
  let cursor: string | undefined;
  for (;;) {
    const page = await deps.records.schedules.find({}, { after: cursor, take: 200 });
    for (const { id } of page) {
      try {
        const r = await applyRetention(deps, id);
        out.schedules++;
        out.deleted += r.deleted.length;
        for (const f of r.failed) out.failed.push({ scheduleId: id, error: `${f.backupId}: ${f.error}` });
      } catch (err) {
        out.failed.push({ scheduleId: id, error: (err as Error).message });
      }
    }
    if (page.length < 200) break;
    cursor = page[page.length - 1]!.id;
  }
  return out;
}

/**
 * Asks the control workers to apply a schedule's retention (the backup pipeline calls this after a
 * scheduled backup completes). Bursts collapse: while one run for the schedule waits, more
 * requests join it; one arriving while it runs queues exactly one more run after it.
 */
export async function enqueueRetention(jobQueues: Pick<JobQueues, 'enqueueControl'>, scheduleId: string): Promise<void> {
  await jobQueues.enqueueControl('retention', { scheduleId }, `retention:${scheduleId}:${Date.now()}`, {
    deduplication: { id: `retention-${scheduleId}`, keepLastIfActive: true },
  });
}
