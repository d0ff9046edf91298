import { type DeletionQueues, softDeleteBackups } from '../domain/backup-deletion.ts';
import type { Logger } from '../logging/logger.ts';
import type { JobQueues } from '../queue/job-queues.ts';
import type { RecordSet, Records, Schedule } from '../records/records.ts';
import { planRetention, type RetentionPlan, type RetentionPolicy } from './retention.ts';
import { SYSTEM_ACTOR } from './schedule-firing.ts';

/**
 * Applying retention to a schedule's backups (SPEC §9): after each scheduled backup and
 * periodically. Only the schedule's `completed` backups are candidates; dropped ones go through the
 * normal soft delete (from `completed` only, so a backup that changed state meanwhile is left
 * alone), kept ones get `expiresAt` from maxAgeDays.
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

async function candidatesOf(records: RecordSet, scheduleId: string) {
  const rows = await records.backups.find({ scheduleId, status: 'completed' }, { order: 'desc' });
  return rows.map(({ id, createdAt, expiresAt }) => ({ id, createdAt, expiresAt }));
}

export interface RetentionPreviewResult {
  scheduleId: string;
  timezone: string;
  at: Date;
  plan: RetentionPlan;
  /** Backups of the schedule in other states than completed: never touched by retention. */
  untouched: number;
}

/** Dry run: what `policy` (default: the schedule's own) would keep and drop now, and why. */
export async function previewRetention(records: RecordSet, schedule: Schedule, policy?: RetentionPolicy, clock?: () => Date): Promise<RetentionPreviewResult> {
  const at = (clock ?? (() => new Date()))();
  const candidates = await candidatesOf(records, schedule.id);
  const untouched = await records.backups.count({ scheduleId: schedule.id, statusNot: ['completed', 'deleting', 'deleted'] });
  const plan = planRetention(candidates, policy ?? policyOf(schedule), { timezone: schedule.timezone, clock: () => at });
  return { scheduleId: schedule.id, timezone: schedule.timezone, at, plan, untouched };
}

export async function applyRetention(deps: RetentionDeps, scheduleId: string): Promise<RetentionRunReport> {
  const clock = deps.clock ?? (() => new Date());
  const report: RetentionRunReport = { scheduleId, status: 'applied', kept: 0, expiresUpdated: 0, deleted: [], failed: [] };
  const schedule = await deps.records.schedules.get(scheduleId);
  if (!schedule) return { ...report, status: 'schedule-missing' };
  const candidates = await candidatesOf(deps.records, scheduleId);
  const plan = planRetention(candidates, policyOf(schedule), { timezone: schedule.timezone, clock });
  report.kept = plan.keep.length;

  const current = new Map(candidates.map((c) => [c.id, c.expiresAt?.getTime() ?? null]));
  const expiring = plan.keep.filter((kept) => current.get(kept.id) !== (kept.expiresAt?.getTime() ?? null));
  // Under the schedule's lock, and only while it exists: deleting the schedule clears expiresAt
  // under the same lock, so a run that read the schedule just before cannot set it again after.
  const updated = await deps.records.transaction(async (tx) => {
    await tx.lock('schedule', scheduleId);
    if (!(await tx.schedules.get(scheduleId))) return null;
    let count = 0;
    for (const kept of expiring) count += await tx.backups.updateWhere({ id: kept.id, status: 'completed' }, { expiresAt: kept.expiresAt });
    return count;
  });
  if (updated === null) return { ...report, status: 'schedule-missing', kept: 0 };
  report.expiresUpdated = updated;

  if (plan.drop.length) {
    const results = await softDeleteBackups(
      deps.records,
      deps.queues,
      plan.drop.map((d) => d.id),
      SYSTEM_ACTOR,
      { from: ['completed'], reason: 'retention', params: { scheduleId } },
    );
    for (const r of results) {
      if (r.ok) report.deleted.push(r.id);
      else report.failed.push({ backupId: r.id, error: r.error.message });
    }
  }
  if (report.deleted.length || report.failed.length) {
    deps.logger?.info({ scheduleId, deleted: report.deleted.length, failed: report.failed, kept: report.kept }, 'retention applied');
  }
  return report;
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
