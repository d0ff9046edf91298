import { z } from 'zod';
import { CRON_PRESETS, canonicalTimeZone, describeCronErrors, parseCron } from '../schedule/cron.ts';
import { retentionPolicyProblems } from '../schedule/retention.ts';
import { Cursor, Id, Limit, NodeId, NullableTimestamp, Text, Timestamp, VolumeName, pageOf } from './common.schemas.ts';
import { named } from './registry.ts';

/** Request and response shapes of schedules (SPEC §9, §11). */

export const CronExpression = Text({ max: 200 }, (v) => {
  const result = parseCron(v);
  return result.ok ? null : describeCronErrors(result.errors);
}).describe(
  [
    '5 fields (minute hour day-of-month month day-of-week: numbers, ranges 1-5, steps */6 1-5/2, lists 1,3,5, names jan mon) or',
    Object.keys(CRON_PRESETS).join(' '),
  ].join(' '),
);

export const TimeZoneName = Text({ max: 64 }, (v) =>
  canonicalTimeZone(v) !== null ? null : 'must be an IANA time zone such as Europe/Berlin or UTC',
).describe('IANA time zone the cron expression and the retention calendar are read in');

const keepCount = (what: string) => z.int('must be a whole number ≥ 0').min(0, 'must be a whole number ≥ 0').max(100_000).optional().describe(what);

export const RetentionPolicySchema = named(
  'RetentionPolicy',
  z
    .object({
      keepLast: keepCount('the n newest backups'),
      keepHourly: keepCount('the newest backup of each of the n latest hours that have one'),
      keepDaily: keepCount('the newest backup of each of the n latest days (in the schedule time zone)'),
      keepWeekly: keepCount('the newest backup of each of the n latest ISO weeks'),
      keepMonthly: keepCount('the newest backup of each of the n latest months'),
      keepYearly: keepCount('the newest backup of each of the n latest years'),
      maxAgeDays: z
        .int('must be a whole number ≥ 1')
        .min(1, 'must be a whole number ≥ 1')
        .max(36_500)
        .optional()
        .describe('hard limit: older backups are deleted even when a keep rule would keep them; sets expiresAt'),
    })
    .strict()
    .superRefine((policy, ctx) => {
      // The fields' own checks above already name a bad value: only the policy-wide rule is added here.
      for (const p of retentionPolicyProblems(policy)) if (!p.path) ctx.addIssue({ code: 'custom', path: [], message: p.message });
    }),
  'restic-style keep rules over the schedule’s completed backups; at least one rule.',
);
export type RetentionPolicyBody = z.infer<typeof RetentionPolicySchema>;

const ScheduleVolumes = z
  .array(VolumeName)
  .min(1)
  .max(64)
  .superRefine((names, ctx) => {
    names.forEach((n, i) => {
      if (names.indexOf(n) !== i) ctx.addIssue({ code: 'custom', path: [i], message: `duplicate volume ${n}` });
    });
  });

export const CreateScheduleBody = named(
  'CreateScheduleRequest',
  z
    .object({
      cron: CronExpression,
      timezone: TimeZoneName,
      retention: RetentionPolicySchema,
      volumes: ScheduleVolumes.optional().describe('a subset of the instance volumes; all (at firing time) when absent'),
      enabled: z.boolean().optional().describe('default true'),
    })
    .strict(),
);
export type CreateScheduleBody = z.infer<typeof CreateScheduleBody>;

export const UpdateScheduleBody = named(
  'UpdateScheduleRequest',
  z
    .object({
      cron: CronExpression.optional(),
      timezone: TimeZoneName.optional(),
      retention: RetentionPolicySchema.optional().describe('replaces the whole policy'),
      volumes: ScheduleVolumes.nullable().optional().describe('null: all volumes of the instance'),
      enabled: z.boolean().optional().describe('false pauses the schedule (no firings); its backups and retention stay'),
    })
    .strict()
    .superRefine((b, ctx) => {
      if (Object.values(b).every((v) => v === undefined)) {
        ctx.addIssue({ code: 'custom', path: [], message: 'nothing to change: give cron, timezone, retention, volumes or enabled' });
      }
    }),
);
export type UpdateScheduleBody = z.infer<typeof UpdateScheduleBody>;

export const ScheduleView = named(
  'Schedule',
  z.object({
    id: z.string(),
    instanceId: z.string(),
    cron: z.string(),
    timezone: z.string(),
    volumes: z.array(z.string()).nullable().describe('null: every volume of the instance'),
    retention: z.object({
      keepLast: z.number().int().optional(),
      keepHourly: z.number().int().optional(),
      keepDaily: z.number().int().optional(),
      keepWeekly: z.number().int().optional(),
      keepMonthly: z.number().int().optional(),
      keepYearly: z.number().int().optional(),
      maxAgeDays: z.number().int().optional(),
    }),
    enabled: z.boolean(),
    lastFiredAt: NullableTimestamp,
    lastBackupId: z.string().nullable(),
    lastSkippedAt: NullableTimestamp,
    lastSkipReason: z.string().nullable(),
    nextRunAt: NullableTimestamp.describe('null while disabled'),
    createdAt: Timestamp,
    updatedAt: Timestamp,
  }),
);
export type ScheduleView = z.infer<typeof ScheduleView>;

export const ScheduleList = pageOf('ScheduleList', ScheduleView);
export type ScheduleList = z.infer<typeof ScheduleList>;

/** `GET /v1/schedules`: every schedule an admin may see (a member: its tenant's), oldest first. */
export const ListAllSchedulesQuery = z
  .object({
    instance: Id.optional().describe('only the schedules of this instance'),
    node: NodeId.optional().describe('only the schedules of instances on this node'),
    enabled: z
      .enum(['true', 'false'])
      .transform((v) => v === 'true')
      .optional()
      .describe('true: only enabled schedules; false: only paused ones'),
    cursor: Cursor.optional(),
    limit: Limit,
  })
  .strict();
export type ListAllSchedulesQuery = z.infer<typeof ListAllSchedulesQuery>;

export const DeletedSchedule = named(
  'DeletedSchedule',
  z.object({ id: z.string(), keptBackups: z.number().int().describe('backups of the schedule, which deleting it never deletes') }),
);
export type DeletedSchedule = z.infer<typeof DeletedSchedule>;

/** `POST /schedules/:id/retention/preview` (dry run): optionally a policy to try instead of the schedule's own. */
export const RetentionPreviewBody = named(
  'RetentionPreviewRequest',
  z.object({ retention: RetentionPolicySchema.optional().describe("default: the schedule's policy") }).strict(),
);
export type RetentionPreviewBody = z.infer<typeof RetentionPreviewBody>;

export const RetentionPreview = named(
  'RetentionPreview',
  z.object({
    scheduleId: z.string(),
    timezone: z.string(),
    at: Timestamp.describe('the clock the plan was computed at'),
    keep: z.array(
      z.object({
        backupId: z.string(),
        createdAt: Timestamp,
        reasons: z.array(z.object({ rule: z.string(), bucket: z.string() })).describe('every rule that keeps it'),
        expiresAt: NullableTimestamp,
      }),
    ),
    drop: z.array(z.object({ backupId: z.string(), createdAt: Timestamp, reason: z.string() })),
    untouched: z.number().int().describe('backups of the schedule that are not completed (running, failed...): retention never deletes them'),
    pinned: z.array(z.string()).describe('completed backups that are pinned, newest first: retention neither keeps nor drops them, they stay until unpinned'),
  }),
  'What a retention policy would keep and delete now, and why.',
);
export type RetentionPreview = z.infer<typeof RetentionPreview>;
