import { z } from 'zod';
import { NullableTimestamp } from './common.schemas.ts';
import { named } from './registry.ts';
import { RetentionPolicySchema, RetentionPreview, ScheduleView, TimeZoneName } from './schedules.schemas.ts';

/** Per-instance overrides (issue 13): the manual backup limit and a retention policy for manual backups. */

export const ManualBackupLimit = z
  .int('must be a whole number ≥ 1')
  .min(1, 'must be a whole number ≥ 1')
  .max(100_000, 'must be at most 100000')
  .describe('manual backups (pinned ones not counted) the instance may hold; the next request gets 429');

export const InstancePolicyView = named(
  'InstancePolicy',
  z.object({
    instanceId: z.string(),
    manualBackupLimit: z.number().int().nullable().describe("the instance's own limit; null: the configured MANUAL_BACKUP_LIMIT"),
    effectiveManualBackupLimit: z.number().int().describe('the limit that applies'),
    manualRetention: ScheduleView.shape.retention
      .nullable()
      .describe('retention rules for the manual backups (as a schedule’s); null: kept until deleted, up to the limit'),
    timezone: z.string().describe('IANA time zone the calendar rules of manualRetention are read in'),
    manualBackups: z.object({
      counted: z.number().int().describe('manual backups counted against the limit (not deleting or deleted, not pinned)'),
      pinned: z.number().int().describe('pinned manual backups (not deleting or deleted), not counted'),
    }),
    updatedAt: NullableTimestamp.describe('null: never changed (every value is the default)'),
  }),
  'Per-instance overrides: the manual backup limit and a retention policy for manual backups. Pinned backups are exempt from both.',
);
export type InstancePolicyView = z.infer<typeof InstancePolicyView>;

export const UpdateInstancePolicyBody = named(
  'UpdateInstancePolicyRequest',
  z
    .object({
      manualBackupLimit: ManualBackupLimit.nullable().optional().describe('null: back to the configured MANUAL_BACKUP_LIMIT'),
      manualRetention: RetentionPolicySchema.nullable()
        .optional()
        .describe('replaces the whole policy, applied right away by a retention job; null: manual backups are kept until deleted'),
      timezone: TimeZoneName.optional().describe('default UTC'),
    })
    .strict()
    .refine((b) => Object.values(b).some((v) => v !== undefined), {
      message: 'nothing to change: give manualBackupLimit, manualRetention or timezone',
      when: (payload) => payload.issues.length === 0,
    }),
);
export type UpdateInstancePolicyBody = z.infer<typeof UpdateInstancePolicyBody>;

/** `POST /instances/:id/policy/retention/preview` (dry run): optionally a policy and time zone to try instead of the instance's own. */
export const ManualRetentionPreviewBody = named(
  'ManualRetentionPreviewRequest',
  z
    .object({
      retention: RetentionPolicySchema.optional().describe("default: the instance's manual retention policy (400 when it has none)"),
      timezone: TimeZoneName.optional().describe("default: the instance policy's time zone"),
    })
    .strict(),
);
export type ManualRetentionPreviewBody = z.infer<typeof ManualRetentionPreviewBody>;

export const ManualRetentionPreview = named(
  'ManualRetentionPreview',
  RetentionPreview.omit({ scheduleId: true }).extend({
    instanceId: z.string(),
    untouched: z.number().int().describe('manual backups that are not completed (running, failed...): retention never deletes them'),
  }),
  "What a retention policy would keep and delete now among an instance's manual backups, and why (as a schedule's preview).",
);
export type ManualRetentionPreview = z.infer<typeof ManualRetentionPreview>;
