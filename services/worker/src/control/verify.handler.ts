import { CairnError, frameOpenerFor, newId, openIndexObject, type Backup, type Job } from '@cairn/core';
import {
  DEFAULT_SAMPLE_PERCENT,
  VERIFY_LEVELS,
  isVerifyFinding,
  verifyBackup,
  type VerifyLevel,
  type VerifyReport,
  type VerifyRequest,
} from '@cairn/core/domain/backup-verify.ts';
import type { ControlContext, ControlHandler } from './control-context.ts';
import type { JobRun } from '../job-lifecycle.ts';

/** Defaults of the fleet-wide run when the context names none (VERIFY_LEVEL, VERIFY_BYTES_BUDGET). */
const POLICY_DEFAULTS = { level: 'sample' as VerifyLevel, bytesBudget: 10 * 1024 ** 3 };
/** Candidates one fleet-wide run looks at (the least recently verified first). */
export const VERIFY_RUN_CANDIDATES = 1000;

/**
 * Verify / scrub (issue 14), on the control worker (it needs only S3 and Postgres):
 *
 * - with a jobId (POST /v1/backups/:id/verify): verifies that backup at the level in the Job's
 *   params. The outcome goes on the Backup (`verifiedAt`, `verifyLevel`, `verifyStatus`,
 *   `verifyError`); a finding fails the Job with its code (checksum-mismatch, archive-corrupt,
 *   archive-missing) and a message naming the object, block or file. A failure to check at all
 *   (S3 down) is retried and leaves the Backup's last verification as it was.
 * - without (the periodic run, VERIFY_EVERY): completed backups, the least recently verified
 *   first, at VERIFY_LEVEL, until VERIFY_BYTES_BUDGET bytes were read (at least one backup per
 *   run). Recorded as a `verify` Job with a summary, and one child `verify` Job per backup.
 */
export const runVerify: ControlHandler = (ctx, payload) => {
  if (payload.jobId) {
    const jobId = payload.jobId;
    return {
      record: { kind: 'existing', jobId },
      work: {
        async run(run) {
          const job = run.job!;
          if (!job.backupId) throw new CairnError('validation', `verify job ${jobId} names no backup`);
          const request = requestOf(job.params);
          const outcome = await verifyOne(ctx, job.backupId, request, run);
          if (outcome.status === 'gone') return { status: 'cancelled', reason: outcome.reason };
          if (outcome.status === 'failed') throw outcome.error;
          return { status: 'succeeded', result: outcome.report };
        },
      },
    };
  }
  const policyJobId = newId();
  const { level, bytesBudget } = ctx.verify ?? POLICY_DEFAULTS;
  return {
    record: { kind: 'create', job: { id: policyJobId, type: 'verify', params: { policy: true, level, bytesBudget }, requestedBy: 'system' } },
    work: {
      async run(run) {
        const result = await runPolicy(ctx, run, policyJobId, { level }, bytesBudget);
        run.log.info({ checked: result.checked, failed: result.failed.length, bytesRead: result.bytesRead }, 'verify run finished');
        return { status: 'succeeded', result, returnValue: { policyJobId, checked: result.checked, failed: result.failed.length } };
      },
    },
  };
};

function requestOf(params: unknown): VerifyRequest {
  const p = (params ?? {}) as { level?: unknown; samplePercent?: unknown };
  const level = VERIFY_LEVELS.includes(p.level as VerifyLevel) ? (p.level as VerifyLevel) : 'quick';
  const samplePercent = typeof p.samplePercent === 'number' && p.samplePercent > 0 && p.samplePercent <= 100 ? p.samplePercent : undefined;
  return { level, ...(level === 'sample' ? { samplePercent: samplePercent ?? DEFAULT_SAMPLE_PERCENT } : {}) };
}

type OneOutcome =
  | { status: 'ok'; report: VerifyReport }
  | { status: 'failed'; error: CairnError; bytesRead: number }
  /** The backup is no longer completed (deleted meanwhile): nothing to say about it. */
  | { status: 'gone'; reason: string };

/** Verifies one backup and records the outcome on it; errors that are not findings are thrown. */
async function verifyOne(ctx: ControlContext, backupId: string, request: VerifyRequest, run: Pick<JobRun, 'signal' | 'progress' | 'log'>): Promise<OneOutcome> {
  const backup = await ctx.records.backups.get(backupId);
  if (!backup) return { status: 'gone', reason: `backup ${backupId} no longer exists` };
  if (backup.status !== 'completed') return { status: 'gone', reason: `backup ${backupId} is ${backup.status}: only completed backups are verified` };
  const now = (): Date => ctx.clock?.() ?? new Date();
  try {
    const report = await verifyBackup(ctx.store, backup, {
      ...request,
      signal: run.signal,
      // An encrypted backup: its index and frames opened with the data keys the keyring unwraps
      // (a missing key is a config error naming it, not a finding about the backup).
      openIndex: (stored) => openIndexObject(ctx.keyring?.(), backup, stored),
      frameOpener: (index) => frameOpenerFor(ctx.keyring?.(), ctx.records.backups, backup, index),
      onProgress: (stage, p) => run.progress(stage, p),
      storeThread: ctx.reads?.storeThread,
      rangeReads: ctx.reads?.rangeReads,
    });
    await record(ctx, backup, { verifiedAt: now(), verifyLevel: request.level, verifyStatus: 'ok', verifyError: null });
    run.log.info({ backupId, level: request.level, bytesRead: report.bytesRead, filesChecked: report.filesChecked }, 'backup verified');
    return { status: 'ok', report };
  } catch (err) {
    if (!isVerifyFinding(err)) throw err;
    // A backup deleted while it was read loses its objects: that is no finding about it.
    const current = await ctx.records.backups.get(backupId);
    if (current?.status !== 'completed')
      return { status: 'gone', reason: `backup ${backupId} is ${current?.status ?? 'gone'}: only completed backups are verified` };
    await record(ctx, backup, { verifiedAt: now(), verifyLevel: request.level, verifyStatus: 'failed', verifyError: err.message });
    run.log.warn({ backupId, level: request.level, code: err.code, err: err.message }, 'backup failed verification');
    return { status: 'failed', error: err, bytesRead: 0 };
  }
}

async function record(
  ctx: ControlContext,
  backup: Backup,
  changes: { verifiedAt: Date; verifyLevel: string; verifyStatus: 'ok' | 'failed'; verifyError: string | null },
) {
  await ctx.records.backups.updateWhere({ id: backup.id, status: 'completed' }, changes);
}

interface PolicyResult {
  level: VerifyLevel;
  bytesBudget: number;
  bytesRead: number;
  checked: number;
  ok: string[];
  failed: { backupId: string; jobId: string; code: string; error: string }[];
  /** Not checked: gone meanwhile, or the check itself failed (S3 down...). */
  skipped: { backupId: string; reason: string }[];
}

/** The periodic run: the least recently verified completed backups, within the byte budget. */
async function runPolicy(ctx: ControlContext, run: JobRun, parentJobId: string, request: VerifyRequest, bytesBudget: number): Promise<PolicyResult> {
  const result: PolicyResult = { level: request.level, bytesBudget, bytesRead: 0, checked: 0, ok: [], failed: [], skipped: [] };
  const req: VerifyRequest = request.level === 'sample' ? { ...request, samplePercent: DEFAULT_SAMPLE_PERCENT } : request;
  for (const candidate of await ctx.records.backups.leastRecentlyVerified(VERIFY_RUN_CANDIDATES)) {
    if (result.checked > 0 && result.bytesRead >= bytesBudget) break;
    if (run.signal.aborted) break;
    const child = await ctx.records.jobs.create({
      id: newId(),
      type: 'verify',
      status: 'running',
      instanceId: candidate.instanceId,
      backupId: candidate.id,
      parentJobId,
      params: { ...req },
      requestedBy: 'system',
      startedAt: new Date(),
    });
    let outcome: OneOutcome;
    try {
      outcome = await verifyOne(ctx, candidate.id, req, { signal: run.signal, progress: () => undefined, log: run.log });
    } catch (err) {
      const e = err instanceof CairnError ? err : new CairnError('unavailable', (err as Error).message, { cause: err });
      await settle(ctx, child, 'failed', { error: e.message, errorCode: e.code });
      result.skipped.push({ backupId: candidate.id, reason: e.message });
      if (e.code === 'cancelled' || run.signal.aborted) break;
      continue;
    }
    if (outcome.status === 'gone') {
      await settle(ctx, child, 'cancelled', { error: outcome.reason, errorCode: 'cancelled' });
      result.skipped.push({ backupId: candidate.id, reason: outcome.reason });
      continue;
    }
    result.checked++;
    if (outcome.status === 'ok') {
      result.bytesRead += outcome.report.bytesRead;
      result.ok.push(candidate.id);
      await settle(ctx, child, 'succeeded', { result: outcome.report });
    } else {
      // What a failed check read is not known exactly: count the backup's stored size against the budget.
      result.bytesRead += Number(candidate.sizeBytes ?? 0n);
      result.failed.push({ backupId: candidate.id, jobId: child.id, code: outcome.error.code, error: outcome.error.message });
      await settle(ctx, child, 'failed', { error: outcome.error.message, errorCode: outcome.error.code });
    }
    run.progress('verifying', { bytesDone: Math.min(result.bytesRead, bytesBudget), bytesTotal: bytesBudget, filesDone: result.checked, filesTotal: 0 });
  }
  return result;
}

async function settle(
  ctx: ControlContext,
  job: Job,
  status: 'succeeded' | 'failed' | 'cancelled',
  changes: { result?: VerifyReport; error?: string; errorCode?: string },
): Promise<void> {
  await ctx.records.jobs.transition(job.id, ['running'], status, { finishedAt: new Date(), ...changes });
}
