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
 * Why a string cannot be stored or passed on, or null: Postgres text refuses NUL, and a lone
 * UTF-16 surrogate has no UTF-8 form (Postgres and JSON consumers reject it). Every request string
 * that reaches the database, a file name or another service goes through this one check.
 */
export function unstorableText(v: string): string | null {
  if (v.includes('\0')) return 'must not contain NUL';
  if (LONE_SURROGATE.test(v)) return 'must not contain a lone UTF-16 surrogate';
  return null;
}
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * The one text type of requests: length bounds, no NUL, no lone surrogate. `then` adds the
 * field's own rule, run only on storable text within bounds (so one problem is reported once).
 */
export function Text(bounds: { min?: number; max: number; trim?: boolean; tooShort?: string }, then?: (v: string) => string | null) {
  const base = bounds.trim ? z.string().trim() : z.string();
  return base
    .min(bounds.min ?? 0, bounds.tooShort ?? (bounds.min === 1 ? 'must not be empty' : `must be at least ${bounds.min} characters`))
    .max(bounds.max, `must be at most ${bounds.max} characters`)
    .superRefine((v, ctx) => {
      if (v.length < (bounds.min ?? 0) || v.length > bounds.max) return;
      const problem = unstorableText(v) ?? then?.(v) ?? null;
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    });
}

/**
 * An absolute, normalised host path. Containment in the node's volume roots needs the Node row
 * and is checked by the gateway; symlinked escapes are refused by the worker at run time.
 */
export const HostPath = Text({ min: 2, max: 4096, tooShort: 'must be an absolute path below /' }, (p) => {
  if (!p.startsWith('/')) return 'must be an absolute path';
  if (p.split('/').includes('..')) return "must not contain '..'";
  if (p.endsWith('/') || path.posix.normalize(p) !== p) return "must be normalised (no '.', '//' or trailing '/')";
  return null;
});

/**
 * Why `p` is not a path inside a backup, or null: `<volume>` or `<volume>/<relative path>`, never
 * absolute, never with `.`/`..` components — the same form as the archive's entry names. The one
 * check of every backup path a request names (download, restore, migrate, the files prefix).
 */
export function backupPathProblem(p: string): string | null {
  if (p.startsWith('/')) return "must be '<volume>/<path>' without a leading '/'";
  if (p.split('/').some((s) => s === '..' || s === '.')) return "must not contain '.' or '..' components";
  if (p.endsWith('/') || p.includes('//')) return "must not contain empty components or a trailing '/'";
  if (!ResourceName.safeParse(p.split('/')[0]).success) return 'must start with a volume name';
  return null;
}

export const BackupPath = Text({ min: 1, max: 4096 }, backupPathProblem);

/** A backup path to list below: empty for everything; trailing '/' are dropped before the check. */
export const BackupPathPrefix = Text({ max: 4096 }, (p) => {
  const trimmed = p.replace(/\/+$/, '');
  return trimmed === '' && p !== '' ? "must not be only '/'" : trimmed === '' ? null : backupPathProblem(trimmed);
}).transform((p) => p.replace(/\/+$/, ''));

export const GlobPattern = Text({ min: 1, max: 1024 });

/** A boolean query parameter: `true`/`false` (or `1`/`0`), documented as such. */
export const queryFlag = (defaultValue: boolean) =>
  z
    .enum(['true', 'false', '1', '0'])
    .default(defaultValue ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1');

/** Cursor pagination: `cursor` is the last id of the previous page (ids sort by creation time). */
export const Limit = z.coerce.number().int().min(1).max(500).default(50);
export const Cursor = Text({ min: 1, max: 4096 });
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
