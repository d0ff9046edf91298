import fs from 'node:fs';
import {
  CronExpression,
  InstanceHooksBody,
  InstanceName,
  ManualBackupLimit,
  NodeId,
  RetentionPolicySchema,
  TenantName,
  TimeZoneName,
  VolumeName,
  VolumeSpec,
} from '@cairn/core/api/index.ts';
import { canonicalTimeZone } from '@cairn/core/schedule/cron.ts';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { UsageError } from '../api-client.ts';

/**
 * The file of `cairn apply -f`: instances with their volumes and, when given, hooks, manual
 * backup policy and schedules. Each part uses the API's own schema, so the file is refused with
 * the API's messages before anything is sent. A key left out is left as it is on the server.
 */
const ScheduleEntry = z
  .object({
    cron: CronExpression,
    timezone: TimeZoneName.default('UTC').transform((tz) => canonicalTimeZone(tz) ?? tz),
    retention: RetentionPolicySchema,
    volumes: z.array(VolumeName).min(1).optional().describe('default: every volume'),
    enabled: z.boolean().default(true),
  })
  .strict();

const PolicyEntry = z
  .object({
    manualBackupLimit: ManualBackupLimit.nullable().optional(),
    manualRetention: RetentionPolicySchema.nullable().optional(),
    timezone: TimeZoneName.transform((tz) => canonicalTimeZone(tz) ?? tz).optional(),
  })
  .strict();

const InstanceEntry = z
  .object({
    name: InstanceName,
    tenant: TenantName.optional(),
    node: NodeId.optional(),
    volumes: z.array(VolumeSpec).min(1),
    hooks: InstanceHooksBody.nullable().optional(),
    policy: PolicyEntry.optional(),
    schedules: z.array(ScheduleEntry).optional(),
  })
  .strict();

const ApplyFileSchema = z.object({ instances: z.array(InstanceEntry).default([]) }).strict();

export type DesiredSchedule = z.output<typeof ScheduleEntry>;
export type DesiredInstance = z.output<typeof InstanceEntry>;
export type DesiredState = z.output<typeof ApplyFileSchema>;

/**
 * `${VAR}` and `${VAR:-default}` in string values, from the environment (`$$` is a literal `$`),
 * so one file serves several machines (`${PWD}`, a node id). An unset variable without a default is an error.
 */
export function interpolate(value: string, env: NodeJS.ProcessEnv, at: string): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (whole, name: string | undefined, fallback: string | undefined) => {
    if (whole === '$$') return '$';
    const v = env[name!];
    if (v !== undefined && v !== '') return v;
    if (fallback !== undefined) return fallback;
    throw new UsageError(`${at}: variable ${name} is not set (write \${${name}:-default} for a default)`);
  });
}

function interpolateAll(node: unknown, env: NodeJS.ProcessEnv, at: string): unknown {
  if (typeof node === 'string') return interpolate(node, env, at);
  if (Array.isArray(node)) return node.map((v, i) => interpolateAll(v, env, `${at}[${i}]`));
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateAll(v, env, `${at}.${k}`)]));
  }
  return node;
}

const pathOf = (path: PropertyKey[]) => path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${String(p)}`)).join('');

/** Parses and checks the text of an apply file; `source` names it in errors. */
export function parseApplyFile(text: string, source: string, env: NodeJS.ProcessEnv = process.env): DesiredState {
  const doc = parseDocument(text);
  if (doc.errors.length) throw new UsageError(`${source}: ${doc.errors[0]!.message}`);
  const raw = interpolateAll(doc.toJS() ?? {}, env, source);
  const parsed = ApplyFileSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${pathOf(i.path) || '(file)'}: ${i.message}`);
    throw new UsageError(`${source} is not a valid apply file:\n${lines.join('\n')}`);
  }
  const seen = new Set<string>();
  parsed.data.instances.forEach((inst, i) => {
    const key = `${inst.tenant ?? ''}/${inst.name}`;
    if (seen.has(key)) throw new UsageError(`${source}: instances[${i}]: instance ${inst.name} is listed twice`);
    seen.add(key);
  });
  return parsed.data;
}

export function readApplyFile(file: string, env: NodeJS.ProcessEnv = process.env): DesiredState {
  let text: string;
  try {
    text = file === '-' ? fs.readFileSync(0, 'utf8') : fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
  return parseApplyFile(text, file === '-' ? 'stdin' : file, env);
}
