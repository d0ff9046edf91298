import type { ScheduleService } from '@cairn/core';
import {
  BackupStarted,
  CreateScheduleBody,
  DeletedSchedule,
  IdParams,
  ListAllSchedulesQuery,
  PageQuery,
  RetentionPreview,
  RetentionPreviewBody,
  ScheduleList,
  ScheduleView,
  UpdateScheduleBody,
} from '@cairn/core/api/index.ts';
import type { ApiRegistry } from '../http/api-routes.ts';
import { scopeOf } from '../services/actor.ts';
import { backupView, jobView } from '../services/presenters.ts';

/**
 * Schedules (SPEC §9, §11) over core's ScheduleService, which validates cron, time zone, retention
 * and volumes and keeps the BullMQ job scheduler in sync. Members reach only their tenant's
 * schedules: another tenant's is "not found".
 */
export function scheduleRoutes(api: ApiRegistry, schedules: ScheduleService): void {
  api.add({
    method: 'post',
    path: '/v1/instances/:id/schedules',
    operationId: 'createSchedule',
    summary: 'Create a schedule of backups of an instance, with its retention policy',
    description: 'The cron expression has 5 fields or is a preset; it is read in `timezone`. The retention policy needs at least one rule.',
    tag: 'schedules',
    access: 'member',
    params: IdParams,
    body: CreateScheduleBody,
    responses: { 201: { description: 'the schedule, with its next run', schema: ScheduleView } },
    async handler(ctx, { actor, params, body }) {
      ctx.status = 201;
      ctx.body = await schedules.create(params.id, body, scopeOf(actor));
    },
  });
  api.add({
    method: 'get',
    path: '/v1/instances/:id/schedules',
    operationId: 'listSchedules',
    summary: 'List the schedules of an instance, oldest first',
    tag: 'schedules',
    access: 'member',
    params: IdParams,
    query: PageQuery,
    responses: { 200: { description: 'a page of schedules', schema: ScheduleList } },
    async handler(ctx, { actor, params, query }) {
      ctx.body = await schedules.list(params.id, query, scopeOf(actor));
    },
  });
  api.add({
    method: 'get',
    path: '/v1/schedules',
    operationId: 'listAllSchedules',
    summary: 'List every schedule (an admin: the fleet; a member: its tenant), oldest first',
    description: 'Filters: `instance`, `node` (instances on that node), `enabled`.',
    tag: 'schedules',
    access: 'member',
    query: ListAllSchedulesQuery,
    responses: { 200: { description: 'a page of schedules', schema: ScheduleList } },
    async handler(ctx, { actor, query }) {
      ctx.body = await schedules.listAll(query, scopeOf(actor));
    },
  });
  api.add({
    method: 'get',
    path: '/v1/schedules/:id',
    operationId: 'getSchedule',
    summary: 'Show a schedule',
    tag: 'schedules',
    access: 'member',
    params: IdParams,
    responses: { 200: { description: 'the schedule', schema: ScheduleView } },
    async handler(ctx, { actor, params }) {
      ctx.body = await schedules.get(params.id, scopeOf(actor));
    },
  });
  api.add({
    method: 'patch',
    path: '/v1/schedules/:id',
    operationId: 'updateSchedule',
    summary: 'Change a schedule, or pause and resume it (enabled)',
    description: 'A new retention policy is applied right away by a retention job.',
    tag: 'schedules',
    access: 'member',
    params: IdParams,
    body: UpdateScheduleBody,
    responses: { 200: { description: 'the changed schedule', schema: ScheduleView } },
    async handler(ctx, { actor, params, body }) {
      ctx.body = await schedules.update(params.id, body, scopeOf(actor));
    },
  });
  api.add({
    method: 'delete',
    path: '/v1/schedules/:id',
    operationId: 'deleteSchedule',
    summary: 'Delete a schedule; its backups are kept',
    tag: 'schedules',
    access: 'member',
    params: IdParams,
    responses: { 200: { description: 'deleted, with the number of backups kept', schema: DeletedSchedule } },
    async handler(ctx, { actor, params }) {
      ctx.body = await schedules.remove(params.id, scopeOf(actor));
    },
  });
  api.add({
    method: 'post',
    path: '/v1/schedules/:id/run',
    operationId: 'runSchedule',
    summary: 'Run a schedule now: a scheduled backup, even while the schedule is paused',
    tag: 'schedules',
    access: 'member',
    params: IdParams,
    responses: {
      202: { description: 'the backup record and its job', schema: BackupStarted },
      409: { description: 'a backup or restore of the instance is queued or running (details.jobId)' },
      422: { description: 'none of the schedule volumes exist on the instance' },
    },
    async handler(ctx, { actor, params }) {
      const { backup, job } = await schedules.runNow(params.id, actor.tokenId, scopeOf(actor));
      ctx.status = 202;
      ctx.body = { backup: backupView(backup), job: jobView(job) };
    },
  });
  api.add({
    method: 'post',
    path: '/v1/schedules/:id/retention/preview',
    operationId: 'previewRetention',
    summary: 'Dry run of retention: which backups a policy would keep and delete now, and why',
    description: "Changes nothing. Without a body the schedule's own policy is used.",
    tag: 'schedules',
    access: 'member',
    params: IdParams,
    body: RetentionPreviewBody,
    responses: { 200: { description: 'the plan', schema: RetentionPreview } },
    async handler(ctx, { actor, params, body }) {
      ctx.body = await schedules.previewRetention(params.id, body.retention, scopeOf(actor));
    },
  });
}
