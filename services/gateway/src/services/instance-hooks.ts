import { HOOK_POINTS, hasHooks, hooksOf, newHookSecret, type InstanceHooksSpec } from '@cairn/core/domain/hooks.ts';
import type { InstanceHooks, Node, RecordSet, TxRecords } from '@cairn/core';
import type { InstanceHooksBody, InstanceView } from '@cairn/core/api/index.ts';
import { validationError } from '../http/validation.ts';

/**
 * The gateway's side of instance hooks (issue 13): a command hook may only name a command that the
 * instance's node defines (its worker reports the names of its hooks file); the hook secret is made
 * with the instance's first hooks (or on rotation) and shown in that one response only.
 */

/** The saved hooks of one request, and the secret when this request made one (to show once). */
export interface SavedHooks {
  row: InstanceHooks | null;
  secret?: string;
}

/** 400 naming every command hook whose command `node` does not define. */
export function checkHookCommands(hooks: InstanceHooksBody | InstanceHooksSpec | null | undefined, node: Node, field = 'hooks'): void {
  if (!hooks) return;
  const defined = node.hookCommands ?? [];
  const details = HOOK_POINTS.flatMap((point) => {
    const spec = hooks[point];
    if (spec?.type !== 'command' || defined.includes(spec.name)) return [];
    const known = defined.length ? `its hooks file defines: ${defined.join(', ')}` : 'it has no hooks file';
    return [{ path: `${field}.${point}.name`, message: `node ${node.id} defines no hook command ${spec.name} (${known})` }];
  });
  if (details.length) throw validationError('request', details);
}

/** Saves the hooks of a new instance; the first hooks make its secret. */
export async function saveNewInstanceHooks(tx: TxRecords, instanceId: string, hooks: InstanceHooksBody | undefined): Promise<SavedHooks> {
  if (!hooks || !hasHooks(hooks)) return { row: null };
  const secret = newHookSecret();
  return { row: await tx.hooks.setConfig(instanceId, { hooks, secret }), secret };
}

/**
 * A PATCH's hook changes, under the instance's lock: `hooks` replaces the set (null: none), the
 * first hooks make the secret, `rotateHookSecret` makes a new one. Command hooks (given, or kept
 * while the instance moves to `node`) are checked against the node.
 */
export async function applyHookChanges(
  tx: TxRecords,
  instanceId: string,
  node: Node | null,
  change: { hooks?: InstanceHooksBody | null; rotateHookSecret?: true },
): Promise<SavedHooks> {
  const current = await tx.hooks.getConfig(instanceId);
  const hooks: InstanceHooksSpec | InstanceHooksBody = change.hooks === undefined ? hooksOf(current?.hooks) : (change.hooks ?? {});
  if (node) checkHookCommands(hooks, node);
  if (change.hooks === undefined && !change.rotateHookSecret) return { row: current };
  const secret = change.rotateHookSecret || (!current?.secret && hasHooks(hooks)) ? newHookSecret() : undefined;
  const row = await tx.hooks.setConfig(instanceId, { hooks, ...(secret ? { secret } : {}) });
  return { row, ...(secret ? { secret } : {}) };
}

/** The hook rows of the given instances, by instance id. */
export async function hookRows(records: RecordSet, instanceIds: string[]): Promise<Map<string, InstanceHooks>> {
  if (!instanceIds.length) return new Map();
  return new Map((await records.hooks.configs(instanceIds)).map((c) => [c.instanceId, c]));
}

/** The view with the secret this request made, if any (the only time it is ever shown). */
export function withSecret(view: InstanceView, saved: SavedHooks | null): InstanceView {
  return saved?.secret ? { ...view, hookSecret: saved.secret } : view;
}
