import path from 'node:path';
import { z } from 'zod';
import { named } from './registry.ts';

/** Shapes shared by several resources: ids, names, paths, pagination, the error body. */

export const Id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'must be an id (letters, digits, _ . -)');

export const IdParams = z.object({ id: Id }).strict();
export type IdParams = z.infer<typeof IdParams>;

/** Names of tenants, instances and volumes; volume names become the top directory in archives. */
export const ResourceName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'must be 1-63 letters, digits, _ . - starting with a letter or digit');
export const TenantName = ResourceName;
export const VolumeName = ResourceName;
export const InstanceName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'must be 1-128 letters, digits, _ . - starting with a letter or digit');
export const NodeId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'must be a node id (1-63 letters, digits, _ . -)');

/** Timestamps travel as ISO 8601 strings (UTC). */
export const Timestamp = z.iso.datetime();
export const NullableTimestamp = Timestamp.nullable();

/**
 * An absolute, normalised host path. Containment in the node's volume roots needs the Node row
 * and is checked by the gateway; symlinked escapes are refused by the worker at run time.
 */
export const HostPath = z
  .string()
  .min(2, 'must be an absolute path below /')
  .max(4096)
  .superRefine((p, ctx) => {
    if (p.includes('\0')) ctx.addIssue({ code: 'custom', message: 'must not contain NUL' });
    else if (!p.startsWith('/')) ctx.addIssue({ code: 'custom', message: 'must be an absolute path' });
    else if (p.split('/').includes('..')) ctx.addIssue({ code: 'custom', message: "must not contain '..'" });
    else if (p.endsWith('/') || path.posix.normalize(p) !== p) ctx.addIssue({ code: 'custom', message: "must be normalised (no '.', '//' or trailing '/')" });
  });

/**
 * A path inside a backup: `<volume>` or `<volume>/<relative path>`, never absolute, never with
 * `.`/`..` components — the same form as the archive's entry names.
 */
export const BackupPath = z
  .string()
  .min(1)
  .max(4096)
  .superRefine((p, ctx) => {
    if (p.includes('\0')) ctx.addIssue({ code: 'custom', message: 'must not contain NUL' });
    else if (p.startsWith('/')) ctx.addIssue({ code: 'custom', message: "must be '<volume>/<path>' without a leading '/'" });
    else if (p.split('/').some((s) => s === '..' || s === '.')) ctx.addIssue({ code: 'custom', message: "must not contain '.' or '..' components" });
    else if (p.endsWith('/') || p.includes('//')) ctx.addIssue({ code: 'custom', message: "must not contain empty components or a trailing '/'" });
    else if (!ResourceName.safeParse(p.split('/')[0]).success) ctx.addIssue({ code: 'custom', message: 'must start with a volume name' });
  });

export const GlobPattern = z
  .string()
  .min(1)
  .max(1024)
  .refine((p) => !p.includes('\0'), 'must not contain NUL');

/** A boolean query parameter: `true`/`false` (or `1`/`0`), documented as such. */
export const queryFlag = (defaultValue: boolean) =>
  z
    .enum(['true', 'false', '1', '0'])
    .default(defaultValue ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1');

/** Cursor pagination: `cursor` is the last id of the previous page (ids sort by creation time). */
export const Limit = z.coerce.number().int().min(1).max(500).default(50);
export const Cursor = z.string().min(1).max(4096);
export const PageQuery = z.object({ cursor: Cursor.optional(), limit: Limit }).strict();
export type PageQuery = z.infer<typeof PageQuery>;

/** `{items, nextCursor}`: nextCursor is null on the last page. */
export function pageOf<T extends z.ZodType>(id: string, item: T) {
  return named(id, z.object({ items: z.array(item), nextCursor: z.string().nullable() }));
}

/** A comma-separated list in a query string (`?status=queued,running`), each value checked. */
export function csvOf<T extends readonly [string, ...string[]]>(values: T) {
  return z
    .string()
    .regex(new RegExp(`^(${values.join('|')})(,(${values.join('|')}))*$`), `must be one or more of ${values.join(', ')} separated by commas`)
    .transform((v) => [...new Set(v.split(','))] as T[number][]);
}

export const ErrorDetail = named('ErrorDetail', z.object({ path: z.string(), message: z.string() }));
export type ErrorDetail = z.infer<typeof ErrorDetail>;

export const ErrorBody = named(
  'Error',
  z.object({
    error: z.object({
      code: z.string(),
      message: z.string(),
      details: z.unknown().optional(),
    }),
  }),
  'Every error: `details` names each bad field (validation) or carries context such as the running job id (conflict).',
);
export type ErrorBody = z.infer<typeof ErrorBody>;
