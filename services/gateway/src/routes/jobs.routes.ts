import { IdParams, JobList, JobView, ListJobsQuery } from '@cairn/core/api/index.ts';
import type { ApiRegistry } from '../http/api-routes.ts';
import { sendEventStream } from '../http/sse.ts';
import type { JobService } from '../services/job.service.ts';

export function jobRoutes(api: ApiRegistry, jobs: JobService): void {
  api.add({
    method: 'get',
    path: '/v1/jobs',
    operationId: 'listJobs',
    summary: 'Job history, newest first',
    tag: 'jobs',
    access: 'member',
    query: ListJobsQuery,
    responses: { 200: { description: 'a page of jobs', schema: JobList } },
    async handler(ctx, { actor, query }) {
      ctx.body = await jobs.list(actor, query);
    },
  });
  api.add({
    method: 'get',
    path: '/v1/jobs/:id',
    operationId: 'getJob',
    summary: 'Show a job with its progress',
    tag: 'jobs',
    access: 'member',
    params: IdParams,
    responses: { 200: { description: 'the job', schema: JobView } },
    async handler(ctx, { actor, params }) {
      ctx.body = await jobs.get(actor, params.id);
    },
  });
  api.add({
    method: 'get',
    path: '/v1/jobs/:id/events',
    operationId: 'streamJobEvents',
    summary: 'Progress stream (Server-Sent Events)',
    description: [
      'Sends the current job at once (`event: state`), then `state` (status changed) and `progress` events,',
      'each with the whole job as data, and `end` when the job has ended; a `: keep-alive` comment every 15 s.',
      'A token may hold JOB_STREAMS_PER_TOKEN streams open at once (default 20); one more is a 429.',
    ].join(' '),
    tag: 'jobs',
    access: 'member',
    params: IdParams,
    responses: {
      200: { description: 'an event stream', contentType: 'text/event-stream' },
      429: { description: 'this token already holds JOB_STREAMS_PER_TOKEN open streams' },
    },
    async handler(ctx, { actor, params }) {
      const abort = new AbortController();
      const events = jobs.watch(actor, params.id, abort.signal);
      await sendEventStream(
        ctx,
        {
          next: async () => {
            const r = await events.next();
            return r.done ? { done: true, value: undefined } : { done: false, value: { event: r.value.event, data: r.value.job, json: r.value.json } };
          },
          return: async () => {
            await events.return(undefined);
            return { done: true, value: undefined };
          },
        },
        abort,
      );
    },
  });
  api.add({
    method: 'post',
    path: '/v1/jobs/:id/cancel',
    operationId: 'cancelJob',
    summary: 'Cancel a job',
    description: [
      'A queued job is removed and answered `cancelled` (200); a running one is signalled (202)',
      'and ends `cancelled` when its worker stops; an ended job is a 409.',
    ].join(' '),
    tag: 'jobs',
    access: 'member',
    params: IdParams,
    responses: {
      200: { description: 'cancelled', schema: JobView },
      202: { description: 'signalled; the job ends cancelled shortly', schema: JobView },
      409: { description: 'the job already ended' },
    },
    async handler(ctx, { actor, params }) {
      const { outcome, job } = await jobs.cancel(actor, params.id);
      ctx.status = outcome === 'done' ? 200 : 202;
      ctx.body = job;
    },
  });
}
