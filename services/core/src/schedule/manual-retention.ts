import type { JobQueues } from '../queue/job-queues.ts';
import type { BackupFilter, InstancePolicy, RecordSet } from '../records/records.ts';
import {
  applyRetentionTarget,
  policyOf,
  previewRetentionOf,
  type RetentionDeps,
  type RetentionRunReport,
  type RetentionScopePreview,
} from './retention.service.ts';
import type { RetentionPolicy } from './retention.ts';

/**
 * Retention of an instance's manual backups (issue 13): the instance policy's `manualRetention`
 * (the keep rules and maxAgeDays of a schedule, read in the policy's time zone) applied to the
 * instance's `trigger=manual` backups by the same code as a schedule's retention
 * (retention.service.ts): completed, unpinned backups only; dropped ones soft-deleted, kept ones
 * given `expiresAt`. It runs in the periodic retention run and when the policy changes; without a
 * policy manual backups are kept until deleted, up to the manual limit.
 */

/** The backups a manual retention policy covers. */
export const manualRetentionScope = (instanceId: string): BackupFilter => ({ instanceId, trigger: 'manual' });

/** The stored manual retention policy of an instance, or null when it has none. */
export function manualPolicyOf(policy: Pick<InstancePolicy, 'manualRetention'> | null): RetentionPolicy | null {
  if (!policy || policy.manualRetention === null || typeof policy.manualRetention !== 'object') return null;
  return policyOf({ retention: policy.manualRetention });
}

export interface ManualRetentionPreviewResult extends RetentionScopePreview {
  instanceId: string;
}

/** Dry run: what `policy` would keep and drop now among the instance's manual backups, calendar buckets in `timezone`. */
export async function previewManualRetention(
  records: RecordSet,
  instanceId: string,
  policy: RetentionPolicy,
  timezone: string,
  clock?: () => Date,
): Promise<ManualRetentionPreviewResult> {
  return { instanceId, ...(await previewRetentionOf(records, manualRetentionScope(instanceId), policy, timezone, clock)) };
}

export interface ManualRetentionRunReport extends Omit<RetentionRunReport, 'scheduleId' | 'status'> {
  instanceId: string;
  /** no-policy: the instance has no manual retention policy (any more): nothing was changed. */
  status: 'applied' | 'no-policy';
}

/** Applies the instance's manual retention policy now. */
export async function applyManualRetention(deps: RetentionDeps, instanceId: string): Promise<ManualRetentionRunReport> {
  const report: ManualRetentionRunReport = { instanceId, status: 'applied', kept: 0, expiresUpdated: 0, deleted: [], failed: [] };
  const stored = await deps.records.policies.get(instanceId);
  const policy = manualPolicyOf(stored);
  if (!stored || !policy) return { ...report, status: 'no-policy' };
  const outcome = await applyRetentionTarget(deps, {
    scope: manualRetentionScope(instanceId),
    policy,
    timezone: stored.timezone,
    // The instance's lock: clearing the policy clears expiresAt under it (InstancePolicyService).
    lock: { kind: 'instance', id: instanceId },
    stillApplies: async (tx) => manualPolicyOf(await tx.policies.get(instanceId)) !== null,
    context: { instanceId, policy: 'manual' },
  });
  if (outcome === null) return { ...report, status: 'no-policy' };
  return { ...report, ...outcome };
}

/** The periodic run: every instance with a manual retention policy; one instance's failure does not stop the others. */
export async function applyAllManualRetention(
  deps: RetentionDeps,
): Promise<{ instances: number; deleted: number; failed: { instanceId: string; error: string }[] }> {
  const out = { instances: 0, deleted: 0, failed: [] as { instanceId: string; error: string }[] };
  let cursor: string | undefined;
  for (;;) {
    const page = await deps.records.policies.find({ hasManualRetention: true }, { after: cursor, take: 200 });
    for (const { instanceId } of page) {
      try {
        const r = await applyManualRetention(deps, instanceId);
        out.instances++;
        out.deleted += r.deleted.length;
        for (const f of r.failed) out.failed.push({ instanceId, error: `${f.backupId}: ${f.error}` });
      } catch (err) {
        out.failed.push({ instanceId, error: (err as Error).message });
      }
    }
    if (page.length < 200) break;
    cursor = page[page.length - 1]!.instanceId;
  }
  return out;
}

/** Asks the control workers to apply an instance's manual retention (after its policy changed); bursts collapse as for schedules. */
export async function enqueueManualRetention(jobQueues: Pick<JobQueues, 'enqueueControl'>, instanceId: string): Promise<void> {
  await jobQueues.enqueueControl('retention', { instanceId }, `retention-manual:${instanceId}:${Date.now()}`, {
    deduplication: { id: `retention-manual-${instanceId}`, keepLastIfActive: true },
  });
}
