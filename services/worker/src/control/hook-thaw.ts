import { TERMINAL_JOB_STATUSES, type Logger, type Records } from '@cairn/core';
import { hookSpecOf } from '@cairn/core/domain/hooks.ts';
import { HookCommands } from '../node/hooks/hook-commands.ts';
import { thawOpenWindows, type ThawedWindow } from '../node/hooks/run-with-hooks.ts';

/** A window's job must have ended at least this long ago before the sweep thaws it (its own worker closes it before the job ends). */
export const HOOK_THAW_GRACE_MS = 60_000;
const BATCH = 200;

export interface HookThawReport {
  thawed: ThawedWindow[];
  /** Windows whose post hook is a command: only their node's worker can run it, at its next start. */
  leftForNodeStart: string[];
}

/**
 * The sweep's part of "a worker that dies between pre and post" (issue 13): hook windows still
 * open whose job has ended (its worker died; the sweep marked it interrupted) get their post hook
 * run here when it is a webhook (or closed when there is none). A command post hook can only run
 * on its node, so those wait for that node worker's next start, which thaws every open window of
 * its node before anything else.
 */
export async function thawAbandonedHookWindows(deps: { records: Records; logger: Logger }, now: Date, graceMs = HOOK_THAW_GRACE_MS): Promise<HookThawReport> {
  const report: HookThawReport = { thawed: [], leftForNodeStart: [] };
  const before = new Date(now.getTime() - graceMs);
  let after: string | undefined;
  for (;;) {
    const windows = await deps.records.hooks.windows({ status: 'open', openedBefore: before }, { after, take: BATCH });
    const due = [];
    for (const w of windows) {
      const job = await deps.records.jobs.get(w.jobId);
      if (job && !TERMINAL_JOB_STATUSES.includes(job.status)) continue; // its worker (or its node's next start) owns it
      if (job?.finishedAt && job.finishedAt > before) continue;
      // A migrate's cutover backup holds its window open on purpose: the migrate thaws it when it ends.
      const parent = job?.parentJobId ? await deps.records.jobs.get(job.parentJobId) : null;
      if (parent && !TERMINAL_JOB_STATUSES.includes(parent.status)) continue;
      if (hookSpecOf((w.specs as { post?: unknown } | null)?.post)?.type === 'command') {
        report.leftForNodeStart.push(w.id);
        continue;
      }
      due.push(w);
    }
    if (due.length) {
      const env = { records: deps.records, nodeId: 'sweep', commands: HookCommands.none(), logger: deps.logger };
      report.thawed.push(...(await thawOpenWindows(env, due, 'sweep')));
    }
    if (windows.length < BATCH) break;
    after = windows[windows.length - 1]!.id;
  }
  return report;
}
