import { ApiError, type CairnClient, UsageError } from './api-client.ts';
import type { Page } from './api-responses.ts';

export interface InstanceSummary {
  id: string;
  name: string;
  tenant: string;
  nodeId: string;
  [key: string]: unknown;
}

/** Every instance the token can see, page by page. */
export async function listAllInstances(client: CairnClient): Promise<InstanceSummary[]> {
  const all: InstanceSummary[] = [];
  let cursor: string | null = null;
  do {
    const q = new URLSearchParams({ limit: '500', ...(cursor ? { cursor } : {}) });
    const page: Page<InstanceSummary> = await client.request('GET', `/v1/instances?${q}`);
    all.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return all;
}

/**
 * The id of the instance `ref` names: an id as it is, else a name (`tenant/name` to pick the
 * tenant). Several instances of that name in different tenants (an admin sees them all) is an
 * error that lists them.
 */
export async function resolveInstanceId(client: CairnClient, ref: string, what = 'instance'): Promise<string> {
  const slash = ref.indexOf('/');
  const [tenant, name] = slash > 0 ? [ref.slice(0, slash), ref.slice(slash + 1)] : [undefined, ref];
  if (tenant === undefined) {
    try {
      return (await client.request<InstanceSummary>('GET', `/v1/instances/${encodeURIComponent(ref)}`)).id;
    } catch (err) {
      // 404: no instance has this id; 400: not id-shaped. Either way it may be a name.
      if (!(err instanceof ApiError) || (err.status !== 404 && err.status !== 400)) throw err;
    }
  }
  const matches = (await listAllInstances(client)).filter((i) => i.name === name && (tenant === undefined || i.tenant === tenant));
  if (matches.length === 1) return matches[0]!.id;
  if (!matches.length) throw new ApiError(404, 'not_found', `${what} ${ref} not found (by id or name)`);
  const list = matches.map((i) => `${i.tenant}/${i.name} (${i.id})`).join(', ');
  throw new UsageError(`${what} name ${ref} is ambiguous: ${list}; give the id or tenant/name`);
}
