import { z } from 'zod';
import { DEFAULT_HOOK_TIMEOUT_SECONDS, MAX_HOOK_TIMEOUT_SECONDS } from '../domain/hooks.ts';
import { Text } from './common.schemas.ts';
import { named } from './registry.ts';

/** Instance hooks in requests and responses (issue 13); what they do is in domain/hooks.ts and the README. */

const TimeoutSeconds = z
  .number()
  .int('must be a whole number of seconds')
  .min(1)
  .max(MAX_HOOK_TIMEOUT_SECONDS)
  .default(DEFAULT_HOOK_TIMEOUT_SECONDS)
  .describe('the hook is stopped (a command: its whole process group is killed) after this long');

const OnError = z
  .enum(['fail', 'continue'])
  .default('fail')
  .describe('fail: a failing pre hook fails the job (naming the hook, its exit code or HTTP status and its output); continue: the job goes on with a warning');

const WebhookUrl = Text({ max: 2048 }, (v) => {
  try {
    const u = new URL(v);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '' ? null : 'must be an http:// or https:// URL';
  } catch {
    return 'must be an http:// or https:// URL';
  }
});

export const HookCommandName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'must be a command name of the node hooks file (1-63 letters, digits, _ . -)');

export const WebhookHookBody = z
  .object({
    type: z.literal('webhook'),
    url: WebhookUrl.describe('receives a POST of the JSON event, signed: X-Cairn-Signature: sha256=<HMAC-SHA256 of the body under the hook secret>'),
    timeoutSeconds: TimeoutSeconds,
    onError: OnError,
  })
  .strict();

export const CommandHookBody = z
  .object({
    type: z.literal('command'),
    name: HookCommandName.describe("a command the admin defined in the node worker's hooks file (CAIRN_NODE_HOOKS); see the node's hookCommands"),
    timeoutSeconds: TimeoutSeconds,
    onError: OnError,
  })
  .strict();

export const HookBody = named('Hook', z.discriminatedUnion('type', [WebhookHookBody, CommandHookBody]), 'A webhook or a command of the node hooks file.');
export type HookBody = z.infer<typeof HookBody>;

export const InstanceHooksBody = named(
  'InstanceHooks',
  z
    .object({
      preBackup: HookBody.optional().describe('runs before the first byte of a backup is read'),
      postBackup: HookBody.optional().describe('runs once the archive is stored, or the backup failed or was cancelled, whenever the pre hook was started'),
      preRestore: HookBody.optional().describe("runs right before a restore changes the instance's volumes"),
      postRestore: HookBody.optional().describe('runs once the restored data is in place, or the previous data is back'),
    })
    .strict(),
  'The pre/post hooks of an instance; a request gives the whole set.',
);
export type InstanceHooksBody = z.infer<typeof InstanceHooksBody>;

export const HookRunView = named(
  'HookRun',
  z.object({
    hook: z.string(),
    type: z.enum(['webhook', 'command']),
    target: z.string().describe("the command's name, or the webhook's URL without credentials or query"),
    onError: z.enum(['fail', 'continue']),
    status: z.enum(['running', 'succeeded', 'failed', 'timeout', 'cancelled', 'skipped']),
    startedAt: z.string(),
    finishedAt: z.string().nullable(),
    durationMs: z.number().nullable(),
    exitCode: z.number().nullable(),
    signal: z.string().nullable(),
    httpStatus: z.number().nullable(),
    outputTail: z.string().describe("the last 2,000 characters of the command's output or the webhook's response"),
    error: z.string().nullable(),
  }),
);

export const JobHooksView = named(
  'JobHooks',
  z.object({
    windows: z.array(
      z.object({
        id: z.string(),
        stage: z.enum(['backup', 'restore']),
        attempt: z.number().int(),
        status: z.enum(['open', 'thawing', 'closed']),
        pre: HookRunView.nullable(),
        post: HookRunView.nullable(),
        outcome: z.string().nullable().describe('what the post hook was told: succeeded, failed, cancelled or interrupted'),
        quiescedMs: z.number().nullable().describe('from the end of the pre hook (or the start of the work) to the start of the post hook'),
        thawedBy: z.string().nullable().describe('node-start or sweep: the post hook ran after the worker of the job stopped between pre and post'),
        openedAt: z.string(),
        closedAt: z.string().nullable(),
      }),
    ),
    quiescedMs: z.number().nullable().describe('the quiesced time of the last window'),
  }),
  "What the job's hooks did, one window per run that had hooks.",
);
