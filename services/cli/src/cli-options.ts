import type { parseArgs } from 'node:util';
import { UsageError } from './api-client.ts';

/** Every flag of every command (node:util parseArgs); a command ignores the ones it does not take. */
export const OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
  file: { type: 'string', short: 'f' },
  'dry-run': { type: 'boolean', default: false },
  prune: { type: 'boolean', default: false },
  yes: { type: 'boolean', short: 'y', default: false },
  name: { type: 'string' },
  node: { type: 'string' },
  tenant: { type: 'string' },
  role: { type: 'string' },
  volume: { type: 'string', multiple: true },
  exclude: { type: 'string', multiple: true },
  hooks: { type: 'string' },
  'no-hooks': { type: 'boolean', default: false },
  'rotate-hook-secret': { type: 'boolean', default: false },
  force: { type: 'boolean', default: false },
  path: { type: 'string', multiple: true },
  prefix: { type: 'string' },
  target: { type: 'string' },
  mode: { type: 'string' },
  kind: { type: 'string' },
  note: { type: 'string' },
  pin: { type: 'boolean', default: false },
  pinned: { type: 'boolean', default: false },
  unpinned: { type: 'boolean', default: false },
  'name-prefix': { type: 'string' },
  clear: { type: 'boolean', default: false },
  'manual-limit': { type: 'string' },
  'no-retention': { type: 'boolean', default: false },
  preview: { type: 'boolean', default: false },
  status: { type: 'string' },
  type: { type: 'string' },
  instance: { type: 'string' },
  output: { type: 'string', short: 'o' },
  cron: { type: 'string' },
  tz: { type: 'string' },
  'keep-last': { type: 'string' },
  'keep-hourly': { type: 'string' },
  'keep-daily': { type: 'string' },
  'keep-weekly': { type: 'string' },
  'keep-monthly': { type: 'string' },
  'keep-yearly': { type: 'string' },
  'max-age-days': { type: 'string' },
  'all-volumes': { type: 'boolean', default: false },
  enable: { type: 'boolean', default: false },
  disable: { type: 'boolean', default: false },
  'include-revoked': { type: 'boolean', default: false },
  'to-node': { type: 'string' },
  'to-instance': { type: 'string' },
  'from-backup': { type: 'string' },
  volumes: { type: 'string' },
  paths: { type: 'string' },
  'no-wait': { type: 'boolean', default: false },
  follow: { type: 'boolean', default: false },
  level: { type: 'string' },
  'sample-percent': { type: 'string' },
} as const;

export type Opts = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true; strict: true }>>['values'];

export const need = (v: string | undefined, what: string): string => {
  if (!v) throw new UsageError(`missing ${what}`);
  return v;
};
export const enc = encodeURIComponent;
export const query = (q: Record<string, string | undefined>) => {
  const s = new URLSearchParams(Object.entries(q).filter((e): e is [string, string] => e[1] !== undefined)).toString();
  return s ? `?${s}` : '';
};
export const int = (v: string | undefined, flag: string) => {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${flag} must be a whole number`);
  return Number(v);
};
export const csv = (v: string) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

const RETENTION_FLAGS = ['keep-last', 'keep-hourly', 'keep-daily', 'keep-weekly', 'keep-monthly', 'keep-yearly', 'max-age-days'] as const;

/** The --keep-* / --max-age-days flags as a retention policy body (`{keepLast: 3}`); empty when none was given. */
export function retentionFlags(o: Opts): Record<string, number> {
  return Object.fromEntries(
    RETENTION_FLAGS.map((flag) => [flag.replace(/-(\w)/g, (_, c: string) => c.toUpperCase()), int(o[flag], flag)] as const).filter(
      (e): e is readonly [string, number] => e[1] !== undefined,
    ),
  );
}
