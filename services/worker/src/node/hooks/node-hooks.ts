import type { NodeContext } from '../node-context.ts';
import { HookCommands } from './hook-commands.ts';
import type { HookEnv } from './run-with-hooks.ts';

/** The hook environment of a node job: its node, its records, the commands of its hooks file (none when the context has none). */
export function hookEnvOf(ctx: Pick<NodeContext, 'records' | 'nodeId' | 'logger' | 'hookCommands'>): HookEnv {
  return { records: ctx.records, nodeId: ctx.nodeId, commands: ctx.hookCommands ?? HookCommands.none(), logger: ctx.logger };
}
