import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Pre/post hooks of an instance (issue 13): what they are, what the events they receive look
 * like, how those events are signed, and what a run of one records. Running them is the node
 * worker's (services/worker/src/node/hooks); choosing and checking them is the gateway's.
 */

export const HOOK_POINTS = ['preBackup', 'postBackup', 'preRestore', 'postRestore'] as const;
export type HookPoint = (typeof HOOK_POINTS)[number];
export type HookStageName = 'backup' | 'restore';
export type HookPhase = 'pre' | 'post';
export type HookOnError = 'fail' | 'continue';

export const DEFAULT_HOOK_TIMEOUT_SECONDS = 30;
export const MAX_HOOK_TIMEOUT_SECONDS = 3600;

export interface WebhookHookSpec {
  type: 'webhook';
  url: string;
  timeoutSeconds: number;
  onError: HookOnError;
}

export interface CommandHookSpec {
  type: 'command';
  /** A command the admin defined in the node worker's hooks file (CAIRN_NODE_HOOKS). */
  name: string;
  timeoutSeconds: number;
  onError: HookOnError;
}

export type HookSpec = WebhookHookSpec | CommandHookSpec;
export type InstanceHooksSpec = Partial<Record<HookPoint, HookSpec>>;

export function hookPoint(stage: HookStageName, phase: HookPhase): HookPoint {
  return `${phase}${stage === 'backup' ? 'Backup' : 'Restore'}` as HookPoint;
}

/** `pre-backup`, `post-restore`...: the event type, and the job progress stage while the hook runs (`pre-backup-hook`). */
export function hookEventType(stage: HookStageName, phase: HookPhase): string {
  return `${phase}-${stage}`;
}

/** What a hook is, in words: `preBackup hook (command pg-checkpoint)`. */
export function describeHook(point: HookPoint, spec: HookSpec): string {
  return `${point} hook (${spec.type === 'command' ? `command ${spec.name}` : `webhook ${webhookLabel(spec.url)}`})`;
}

/** A webhook URL as logged and shown in messages: no credentials, no query string (it may carry a token). */
export function webhookLabel(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}

/** The hooks stored for an instance (a Json column), read defensively: anything malformed is left out. */
export function hooksOf(value: unknown): InstanceHooksSpec {
  const out: InstanceHooksSpec = {};
  if (!value || typeof value !== 'object' || Array.isArray(value)) return out;
  for (const point of HOOK_POINTS) {
    const spec = hookSpecOf((value as Record<string, unknown>)[point]);
    if (spec) out[point] = spec;
  }
  return out;
}

export function hookSpecOf(value: unknown): HookSpec | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  const timeoutSeconds = typeof v.timeoutSeconds === 'number' && v.timeoutSeconds > 0 ? v.timeoutSeconds : DEFAULT_HOOK_TIMEOUT_SECONDS;
  const onError: HookOnError = v.onError === 'continue' ? 'continue' : 'fail';
  if (v.type === 'webhook' && typeof v.url === 'string') return { type: 'webhook', url: v.url, timeoutSeconds, onError };
  if (v.type === 'command' && typeof v.name === 'string') return { type: 'command', name: v.name, timeoutSeconds, onError };
  return undefined;
}

export function hasHooks(hooks: InstanceHooksSpec): boolean {
  return HOOK_POINTS.some((p) => hooks[p] !== undefined);
}

// ----- signing -----

/** The header carrying a webhook event's signature: `sha256=<hex HMAC-SHA256 of the raw body under the instance's hook secret>`. */
export const HOOK_SIGNATURE_HEADER = 'x-cairn-signature';
export const HOOK_EVENT_HEADER = 'x-cairn-event';
export const HOOK_DELIVERY_HEADER = 'x-cairn-delivery';

/** A new per-instance hook secret (shown once). */
export function newHookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

export function signHookBody(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** Whether `signature` (the header's value) is the signature of `body` under `secret`; constant time. */
export function verifyHookSignature(secret: string, body: string | Buffer, signature: string | undefined | null): boolean {
  if (!signature) return false;
  const expected = Buffer.from(signHookBody(secret, body));
  const given = Buffer.from(signature);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

// ----- events -----

/** How the quiesced work ended, as the post hook is told. */
export type HookOutcomeStatus = 'succeeded' | 'failed' | 'cancelled' | 'interrupted';

export interface HookOutcome {
  status: HookOutcomeStatus;
  /** Why it failed, was cancelled or interrupted. */
  error: string | null;
  /** How the pre hook ended (null: there was none). */
  preHook: { status: HookRunStatusName; exitCode: number | null; httpStatus: number | null } | null;
}

/** The JSON a webhook receives as its body and a command on its standard input. */
export interface HookEvent {
  /** Unique per delivery (also in the X-Cairn-Delivery header). */
  id: string;
  /** `pre-backup`, `post-backup`, `pre-restore`, `post-restore`. */
  type: string;
  hook: HookPoint;
  stage: HookStageName;
  phase: HookPhase;
  /** Pairs a pre event with its post event. */
  windowId: string;
  jobId: string;
  attempt: number;
  backupId: string | null;
  nodeId: string;
  instance: { id: string; name: string | null; tenantId: string | null };
  /** Post hooks only. */
  outcome: HookOutcome | null;
  /** A post hook run by a node worker start or the sweep, after the job's worker died between pre and post. */
  recovery: boolean;
  sentAt: string;
}

// ----- what a run records -----

export type HookRunStatusName = 'running' | 'succeeded' | 'failed' | 'timeout' | 'cancelled' | 'skipped';

export interface HookRunReport {
  hook: HookPoint;
  type: HookSpec['type'];
  /** The command name, or the webhook's URL without credentials or query. */
  target: string;
  onError: HookOnError;
  status: HookRunStatusName;
  startedAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  exitCode: number | null;
  /** The signal that ended the command (its own, or the kill of a timeout). */
  signal: string | null;
  httpStatus: number | null;
  /** The last bytes of the command's output (stdout and stderr) or of the webhook's response. */
  outputTail: string;
  error: string | null;
}

/** Characters of output kept on the record. */
export const HOOK_OUTPUT_TAIL_CHARS = 2000;
/** Characters of output quoted in a job's error message. */
export const HOOK_MESSAGE_TAIL_CHARS = 400;

/** What went wrong, in one line: `exit code 3`, `HTTP 500`, `timed out after 2 s`. */
export function hookFailureWhat(r: Pick<HookRunReport, 'status' | 'exitCode' | 'signal' | 'httpStatus' | 'error'>, timeoutSeconds: number): string {
  if (r.status === 'timeout') return `timed out after ${timeoutSeconds} s`;
  if (r.status === 'cancelled') return 'cancelled';
  if (r.exitCode !== null) return `exit code ${r.exitCode}`;
  if (r.httpStatus !== null) return `HTTP ${r.httpStatus}`;
  if (r.signal) return `killed by ${r.signal}`;
  return r.error ?? 'failed';
}

/** The message of a failed hook: which hook, its exit code or HTTP status, and the tail of its output. */
export function hookFailureMessage(point: HookPoint, spec: HookSpec, report: HookRunReport): string {
  const tail = report.outputTail.trim().slice(-HOOK_MESSAGE_TAIL_CHARS);
  const what = hookFailureWhat(report, spec.timeoutSeconds);
  const extra = report.error && report.error !== what ? ` (${report.error})` : '';
  return `${describeHook(point, spec)} failed: ${what}${extra}${tail ? `; output: ${JSON.stringify(tail)}` : ''}`;
}

/** One window of a job's run as shown on the Job (`job.hooks.windows`). */
export interface HookWindowSummary {
  id: string;
  stage: HookStageName;
  attempt: number;
  status: 'open' | 'thawing' | 'closed';
  pre: HookRunReport | null;
  post: HookRunReport | null;
  /** What the post hook was told. */
  outcome: string | null;
  /** Pre hook end (or work start) to post hook start, in ms. */
  quiescedMs: number | null;
  /** node-start or sweep: the post hook ran after the job's worker died. */
  thawedBy: string | null;
  openedAt: string;
  closedAt: string | null;
}

/** `job.hooks`: every window of the job, oldest first, and the last one's quiesced time. */
export interface JobHooksSummary {
  windows: HookWindowSummary[];
  quiescedMs: number | null;
}
