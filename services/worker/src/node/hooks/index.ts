/**
 * Pre/post hooks (issue 13). Other node work that needs the application quiet (a migrate cutover)
 * calls `runWithHooks(hookEnvOf(ctx), {instance, stage, job, signal}, work)` as the backup and
 * restore pipelines do.
 */
export {
  runWithHooks,
  thawOpenWindows,
  windowSummary,
  type HookEnv,
  type HookTarget,
  type HookWarning,
  type Hooked,
  type ThawedWindow,
} from './run-with-hooks.ts';
export { HookCommands, parseHookCommands, type HookCommandDef } from './hook-commands.ts';
export { runCommandHook, type HookRunResult } from './command-hook.ts';
export { runWebhookHook } from './webhook-hook.ts';
export { hookEnvOf } from './node-hooks.ts';
