import { CairnError, abortError, isCairnError, newId, retryWrite, type HookWindow, type Logger, type RecordSet } from '@cairn/core';
import {
  describeHook,
  hookEventType,
  hookFailureMessage,
  hookPoint,
  hookSpecOf,
  hooksOf,
  webhookLabel,
  type HookEvent,
  type HookOutcome,
  type HookPhase,
  type HookPoint,
  type HookRunReport,
  type HookSpec,
  type HookStageName,
  type HookWindowSummary,
  type JobHooksSummary,
} from '@cairn/core/domain/hooks.ts';
import { runCommandHook, type HookRunResult } from './command-hook.ts';
import type { HookCommands } from './hook-commands.ts';
import { runWebhookHook } from './webhook-hook.ts';

/**
 * Hooks around a job's quiesced work (issue 13), safe by construction:
 * - a durable window record is written before the pre hook starts, so a worker that dies after
 *   that point leaves a record of the post hook it owes (thawOpenWindows runs it later);
 * - the post hook runs whenever the pre hook was started: after success, failure, cancel, or a
 *   pre hook that failed or timed out, and is told how the work ended;
 * - the post hook is claimed (open → thawing) before it runs, so it runs once even when a node
 *   worker start or the sweep thaws the same window;
 * - the quiesced window (pre hook end, or work start, to post hook start) and each hook's
 *   status, duration and output tail are recorded on the window and summarised on the Job.
 *
 * `runWithHooks` is the one entry point: the backup and restore pipelines wrap only the part that
 * needs the application quiet (reading the volumes; swapping the restored data in), and other
 * node work (a migrate cutover) can wrap its own the same way.
 */

/** What running hooks needs from a node worker (or the sweep). */
export interface HookEnv {
  records: Pick<RecordSet, 'hooks' | 'instances' | 'jobs'>;
  nodeId: string;
  /** The node's hooks file; the sweep has none (it only thaws webhooks). */
  commands: HookCommands;
  logger: Logger;
}

export interface HookTarget {
  instance: { id: string; name: string; tenantId: string };
  stage: HookStageName;
  job: { id: string; attempt: number; backupId?: string | null };
  /** The job's signal: a cancel stops the pre hook and the work, never the post hook. */
  signal: AbortSignal;
  /** Job progress stage (`pre-backup-hook`, `post-backup-hook`), shown on the Job and in Bull Board. */
  progress?: (stage: string) => void;
  /** Releases what `work` returned when a post hook with onError "fail" fails after it (temporary files...). */
  discard?: (value: never) => void;
  /**
   * A migrate's cutover backup: after `work` succeeds the window stays open (the application stays
   * quiesced) until the migrate has switched or failed and runs the post hook itself with
   * {@link thawOpenWindows} (node job thaw). A failed `work` thaws at once, as always.
   */
  hold?: boolean;
}

/** A hook that failed with onError "continue": the job completes, with this warning. */
export interface HookWarning {
  code: 'hook-failed';
  hook: HookPoint;
  message: string;
}

export interface Hooked<T> {
  value: T;
  warnings: HookWarning[];
  /** The window as recorded (null: the instance has no hooks for this stage). */
  window: HookWindowSummary | null;
}

/**
 * Runs `work` between the instance's pre and post hooks of `stage`. Without hooks it just runs
 * `work`. Throws what `work` threw (after the post hook), a `hook-failed` CairnError when a hook
 * with onError "fail" failed, or `cancelled`.
 */
export async function runWithHooks<T>(env: HookEnv, target: HookTarget, work: () => Promise<T>): Promise<Hooked<T>> {
  const { stage, signal } = target;
  const config = await env.records.hooks.getConfig(target.instance.id);
  const prePoint = hookPoint(stage, 'pre');
  const postPoint = hookPoint(stage, 'post');
  const hooks = hooksOf(config?.hooks);
  const pre = hooks[prePoint];
  const post = hooks[postPoint];
  if (!pre && !post) return { value: await work(), warnings: [], window: null };
  if (signal.aborted) throw abortError(signal); // nothing started: nothing owed

  const log = env.logger.child({ jobId: target.job.id, instanceId: target.instance.id, stage });
  const secret = config?.secret ?? null;
  const windowId = newId();
  const base = { windowId, jobId: target.job.id, attempt: target.job.attempt, backupId: target.job.backupId ?? null, nodeId: env.nodeId };
  // Durable before anything runs: from here on a post hook is owed.
  await retryWrite(
    () =>
      env.records.hooks.openWindow({
        id: windowId,
        jobId: target.job.id,
        instanceId: target.instance.id,
        nodeId: env.nodeId,
        stage,
        attempt: target.job.attempt,
        specs: { pre: pre ?? null, post: post ?? null },
        ...(pre ? { pre: startedReport(prePoint, pre, new Date()), preStatus: 'running' as const } : {}),
      }),
    { attempts: 4, delayMs: 250 },
  );
  await summarizeJob(env, target.job.id, log);

  const warnings: HookWarning[] = [];
  let preReport: HookRunReport | null = null;
  let quietFrom: number | null = null;
  let failure: { error: unknown } | null = null;
  let value: T | undefined;
  try {
    if (pre) {
      target.progress?.(`${hookEventType(stage, 'pre')}-hook`);
      const event = hookEvent(base, target.instance, stage, 'pre', null, false);
      preReport = await runHook(env, prePoint, pre, event, secret, log, signal);
      await bestEffort(log, 'recording the pre hook', () => env.records.hooks.updateWindow(windowId, { pre: preReport, preStatus: preReport!.status }));
      if (preReport.status === 'cancelled' || signal.aborted) throw abortError(signal);
      if (preReport.status !== 'succeeded') {
        const message = hookFailureMessage(prePoint, pre, preReport);
        if (pre.onError === 'fail') throw new CairnError('hook-failed', message, { details: { hook: prePoint, windowId } });
        warnings.push({ code: 'hook-failed', hook: prePoint, message });
      }
    }
    quietFrom = Date.now();
    value = await work();
  } catch (err) {
    failure = { error: err };
  }
  if (failure === null && target.hold) {
    log.info({ windowId }, 'hook window held open for the migrate cutover');
    const summary = await summarizeJob(env, target.job.id, log);
    return { value: value as T, warnings, window: summary?.windows.find((w) => w.id === windowId) ?? null };
  }
  const outcome: HookOutcome = {
    status: failure === null ? 'succeeded' : signal.aborted || isCairnError(failure.error, 'cancelled') ? 'cancelled' : 'failed',
    error: failure === null ? null : failure.error instanceof Error ? failure.error.message : String(failure.error),
    preHook: preReport ? { status: preReport.status, exitCode: preReport.exitCode, httpStatus: preReport.httpStatus } : null,
  };
  const thawed = await thaw(env, {
    window: { id: windowId, stage, attempt: target.job.attempt, jobId: target.job.id },
    base,
    instance: target.instance,
    post,
    outcome,
    quietFrom: quietFrom ?? (preReport?.finishedAt ? Date.parse(preReport.finishedAt) : Date.now()),
    secret,
    from: ['open'],
    thawedBy: null,
    log,
    progress: target.progress,
  });
  const summary = await summarizeJob(env, target.job.id, log);
  if (failure) throw failure.error;
  if (post && thawed.report && thawed.report.status !== 'succeeded') {
    const message = hookFailureMessage(postPoint, post, thawed.report);
    if (post.onError === 'fail') {
      (target.discard as ((v: T) => void) | undefined)?.(value as T);
      throw new CairnError('hook-failed', message, { details: { hook: postPoint, windowId } });
    }
    warnings.push({ code: 'hook-failed', hook: postPoint, message });
  }
  return { value: value as T, warnings, window: summary?.windows.find((w) => w.id === windowId) ?? null };
}

export interface ThawedWindow {
  windowId: string;
  jobId: string;
  instanceId: string;
  /** The post hook's status; `none` when the window had no post hook; `taken` when someone else claimed it first. */
  post: HookRunReport['status'] | 'none' | 'taken';
}

/**
 * Runs the post hook of windows whose job's worker died between pre and post ("thaw"), telling
 * it the work was `interrupted`, and closes them, recorded with `thawedBy`. A node worker calls it
 * first thing at start for every window of its node still open (or left thawing by a start that
 * died); the sweep for windows of finished jobs whose post hook it can run (webhooks). Each
 * window is claimed before its hook runs, so a post hook runs once.
 */
export async function thawOpenWindows(
  env: HookEnv,
  windows: HookWindow[],
  by: 'node-start' | 'sweep' | 'migrate',
  /** A migrate's own thaw: how its cutover ended (default: `interrupted`). */
  ended?: { status: HookOutcome['status']; error: string | null },
): Promise<ThawedWindow[]> {
  const out: ThawedWindow[] = [];
  for (const w of windows) {
    const log = env.logger.child({ jobId: w.jobId, instanceId: w.instanceId, windowId: w.id, thawedBy: by });
    try {
      const [instance, config, job] = await Promise.all([
        env.records.instances.get(w.instanceId),
        env.records.hooks.getConfig(w.instanceId),
        env.records.jobs.get(w.jobId),
      ]);
      const specs = (w.specs ?? {}) as { post?: unknown };
      const post = hookSpecOf(specs.post);
      const pre = (w.pre ?? null) as HookRunReport | null;
      const stage = w.stage as HookStageName;
      const result = await thaw(env, {
        window: { id: w.id, stage, attempt: w.attempt, jobId: w.jobId },
        base: { windowId: w.id, jobId: w.jobId, attempt: w.attempt, backupId: job?.backupId ?? null, nodeId: w.nodeId },
        instance: { id: w.instanceId, name: instance?.name ?? null, tenantId: instance?.tenantId ?? null },
        post,
        outcome: {
          status: ended?.status ?? 'interrupted',
          error:
            ended !== undefined
              ? ended.error
              : by === 'node-start'
                ? 'the node worker stopped between the pre and post hooks; the post hook ran at its next start'
                : "the job's worker stopped between the pre and post hooks; the post hook was run by the sweep",
          preHook: pre ? { status: pre.status, exitCode: pre.exitCode ?? null, httpStatus: pre.httpStatus ?? null } : null,
        },
        quietFrom: pre?.finishedAt ? Date.parse(pre.finishedAt) : w.openedAt.getTime(),
        secret: config?.secret ?? null,
        from: by === 'node-start' ? ['open', 'thawing'] : ['open'],
        thawedBy: by === 'migrate' ? null : by,
        log,
      });
      await summarizeJob(env, w.jobId, log);
      out.push({ windowId: w.id, jobId: w.jobId, instanceId: w.instanceId, post: !result.claimed ? 'taken' : (result.report?.status ?? 'none') });
      if (result.claimed && by !== 'migrate')
        log.warn({ post: result.report?.status ?? 'none' }, 'ran the post hook of a window left open by a worker that stopped');
    } catch (err) {
      log.error({ err: (err as Error).message }, 'could not thaw a hook window; it stays open');
    }
  }
  return out;
}

interface ThawInput {
  window: { id: string; stage: HookStageName; attempt: number; jobId: string };
  base: EventBase;
  instance: HookEvent['instance'];
  post: HookSpec | undefined;
  outcome: HookOutcome;
  /** When the application went quiet (pre hook end, or work start). */
  quietFrom: number;
  secret: string | null;
  from: HookWindow['status'][];
  thawedBy: 'node-start' | 'sweep' | null;
  log: Logger;
  progress?: (stage: string) => void;
}

/** Claims a window's post hook, runs it (when there is one) and closes the window. */
async function thaw(env: HookEnv, input: ThawInput): Promise<{ claimed: boolean; report: HookRunReport | null }> {
  const { window, post, log } = input;
  const point = hookPoint(window.stage, 'post');
  const postStart = new Date();
  let claimed = true;
  try {
    claimed = await retryWrite(() =>
      env.records.hooks.transitionWindow(
        window.id,
        input.from,
        'thawing',
        post ? { post: startedReport(point, post, postStart), postStatus: 'running', outcome: input.outcome.status } : { outcome: input.outcome.status },
      ),
    );
  } catch (err) {
    // The application must not stay quiesced because the database blinked: run the hook anyway.
    log.warn({ err: (err as Error).message }, 'could not claim the post hook; running it anyway');
  }
  if (!claimed) {
    log.info({ windowId: window.id }, 'post hook already run by someone else');
    return { claimed: false, report: null };
  }
  const quiescedMs = Math.max(0, postStart.getTime() - input.quietFrom);
  let report: HookRunReport | null = null;
  if (post) {
    input.progress?.(`${hookEventType(window.stage, 'post')}-hook`);
    const event = hookEvent(input.base, input.instance, window.stage, 'post', input.outcome, input.thawedBy !== null);
    report = await runHook(env, point, post, event, input.secret, log);
  }
  await bestEffort(log, 'recording the post hook', () =>
    retryWrite(
      () =>
        env.records.hooks.transitionWindow(window.id, ['open', 'thawing'], 'closed', {
          ...(report ? { post: report, postStatus: report.status } : {}),
          outcome: input.outcome.status,
          quiescedMs,
          thawedBy: input.thawedBy,
          closedAt: new Date(),
        }),
      { attempts: 4, delayMs: 250 },
    ),
  );
  log.info({ windowId: window.id, quiescedMs, outcome: input.outcome.status }, 'hook window closed');
  return { claimed: true, report };
}

interface EventBase {
  windowId: string;
  jobId: string;
  attempt: number;
  backupId: string | null;
  nodeId: string;
}

function hookEvent(
  base: EventBase,
  instance: HookEvent['instance'],
  stage: HookStageName,
  phase: HookPhase,
  outcome: HookOutcome | null,
  recovery: boolean,
): HookEvent {
  return {
    id: newId(),
    type: hookEventType(stage, phase),
    hook: hookPoint(stage, phase),
    stage,
    phase,
    ...base,
    instance,
    outcome,
    recovery,
    sentAt: new Date().toISOString(),
  };
}

/** The environment a command hook gets besides its admin-defined one (and the event JSON on stdin). */
function eventEnv(event: HookEvent): Record<string, string> {
  return {
    CAIRN_HOOK: event.hook,
    CAIRN_HOOK_EVENT: event.type,
    CAIRN_HOOK_WINDOW_ID: event.windowId,
    CAIRN_JOB_ID: event.jobId,
    CAIRN_BACKUP_ID: event.backupId ?? '',
    CAIRN_INSTANCE_ID: event.instance.id,
    CAIRN_INSTANCE_NAME: event.instance.name ?? '',
    CAIRN_HOOK_OUTCOME: event.outcome?.status ?? '',
    CAIRN_HOOK_RECOVERY: event.recovery ? '1' : '0',
  };
}

function hookTarget(spec: HookSpec): string {
  return spec.type === 'command' ? spec.name : webhookLabel(spec.url);
}

function startedReport(point: HookPoint, spec: HookSpec, at: Date): HookRunReport {
  return {
    hook: point,
    type: spec.type,
    target: hookTarget(spec),
    onError: spec.onError,
    status: 'running',
    startedAt: at.toISOString(),
    finishedAt: null,
    durationMs: null,
    exitCode: null,
    signal: null,
    httpStatus: null,
    outputTail: '',
    error: null,
  };
}

/** Runs one hook and reports it; never throws. */
async function runHook(
  env: HookEnv,
  point: HookPoint,
  spec: HookSpec,
  event: HookEvent,
  secret: string | null,
  log: Logger,
  signal?: AbortSignal,
): Promise<HookRunReport> {
  const startedAt = new Date();
  const timeoutMs = spec.timeoutSeconds * 1000;
  let result: HookRunResult;
  if (spec.type === 'command') {
    const def = env.commands.get(spec.name);
    result = def
      ? await runCommandHook(def, { env: eventEnv(event), stdin: `${JSON.stringify(event)}\n`, timeoutMs, signal })
      : {
          status: 'failed',
          exitCode: null,
          signal: null,
          httpStatus: null,
          outputTail: '',
          error: `node ${env.nodeId} defines no hook command ${spec.name} (its hooks file lists: ${env.commands.names().join(', ') || 'none'})`,
          durationMs: 0,
        };
  } else {
    result = await runWebhookHook({ url: spec.url, event, secret, timeoutMs, signal });
  }
  const report: HookRunReport = {
    ...startedReport(point, spec, startedAt),
    status: result.status,
    finishedAt: new Date().toISOString(),
    durationMs: result.durationMs,
    exitCode: result.exitCode,
    signal: result.signal,
    httpStatus: result.httpStatus,
    outputTail: result.outputTail,
    error: result.error,
  };
  const fields = {
    hook: describeHook(point, spec),
    status: report.status,
    durationMs: report.durationMs,
    exitCode: report.exitCode,
    httpStatus: report.httpStatus,
  };
  if (report.status === 'succeeded') log.info(fields, 'hook ran');
  else log.warn({ ...fields, error: report.error }, 'hook did not succeed');
  return report;
}

/** Writes `Job.hooks` from the job's windows; best effort. */
async function summarizeJob(env: HookEnv, jobId: string, log: Logger): Promise<JobHooksSummary | null> {
  try {
    const windows = await env.records.hooks.windows({ jobId });
    const summary: JobHooksSummary = { windows: windows.map(windowSummary), quiescedMs: windows.at(-1)?.quiescedMs ?? null };
    await env.records.hooks.setJobHooks(jobId, summary);
    return summary;
  } catch (err) {
    log.warn({ err: (err as Error).message }, "could not record the job's hook summary");
    return null;
  }
}

export function windowSummary(w: HookWindow): HookWindowSummary {
  return {
    id: w.id,
    stage: w.stage,
    attempt: w.attempt,
    status: w.status,
    pre: (w.pre ?? null) as HookRunReport | null,
    post: (w.post ?? null) as HookRunReport | null,
    outcome: w.outcome,
    quiescedMs: w.quiescedMs,
    thawedBy: w.thawedBy,
    openedAt: w.openedAt.toISOString(),
    closedAt: w.closedAt?.toISOString() ?? null,
  };
}

async function bestEffort(log: Logger, what: string, write: () => Promise<unknown>): Promise<void> {
  try {
    await write();
  } catch (err) {
    log.warn({ err: (err as Error).message }, `${what} failed`);
  }
}
