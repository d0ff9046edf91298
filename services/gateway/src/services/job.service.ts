import { CairnError, cancelJob, type Job, type JobFilter, type Logger, type Records } from '@cairn/core';
import { TERMINAL_JOB_STATES, type JobList, type JobView, type ListJobsQuery } from '@cairn/core/api/index.ts';
import type { JobChangeFeed } from '../queue/job-change-feed.ts';
import type { QueuePort } from '../queue/queue-client.ts';
import { tenantScope, type Actor } from './actor.ts';
import { JobProgressHub, type JobEvent } from './job-progress-hub.ts';
import { presentJob } from './job-tree.ts';
import { jobView } from './presenters.ts';
import { StreamSlots } from './stream-slots.ts';

export type { JobEvent };

/** Defaults of the progress stream settings (JOB_STREAMS_PER_TOKEN, JOB_STREAM_POLL_MS). */
export const DEFAULT_STREAMS_PER_TOKEN = 20;
export const DEFAULT_STREAM_POLL_MS = 5000;

export interface JobServiceOptions {
  records: Records;
  queues: QueuePort;
  logger: Logger;
  /** Change notices from the workers (Redis); without it, streams see changes at the periodic re-read only. */
  changes?: JobChangeFeed;
  /** How often watched jobs are re-read without a notice (one read for all of them). */
  pollIntervalMs?: number;
  /** Open progress streams allowed per token. */
  streamsPerToken?: number;
}

const isTerminal = (status: string) => (TERMINAL_JOB_STATES as readonly string[]).includes(status);

/** Job history, progress streams and cancellation (SPEC §4, §11). */
export class JobService {
  private readonly records: Records;
  private readonly queues: QueuePort;
  private readonly logger: Logger;
  private readonly changes?: JobChangeFeed;
  private readonly hub: JobProgressHub;
  private readonly slots: StreamSlots;

  constructor(options: JobServiceOptions) {
    this.records = options.records;
    this.queues = options.queues;
    this.logger = options.logger;
    this.changes = options.changes;
    this.slots = new StreamSlots(options.streamsPerToken ?? DEFAULT_STREAMS_PER_TOKEN);
    this.hub = new JobProgressHub({
      load: (ids) => this.currentViews(ids),
      pollIntervalMs: options.pollIntervalMs ?? DEFAULT_STREAM_POLL_MS,
      logger: options.logger,
    });
    this.changes?.subscribe((notice) => {
      this.hub.notify(notice.jobId);
      if (notice.parentJobId) this.hub.notify(notice.parentJobId);
    });
  }

  /**
   * A member sees the jobs that act on its tenant's instances (as source or restore target);
   * jobs of no instance (sweeps) are admin-only.
   */
  private visibility(actor: Actor): JobFilter {
    return jobVisibility(actor);
  }

  async findVisible(actor: Actor, id: string): Promise<Job> {
    const row = await this.records.jobs.findFirst({ ...this.visibility(actor), id });
    if (!row) throw new CairnError('not-found', `job ${id} not found`);
    return row;
  }

  async list(actor: Actor, query: ListJobsQuery): Promise<JobList> {
    const filter: JobFilter = {
      ...this.visibility(actor),
      touchesInstance: query.instance,
      type: query.type,
      status: query.status,
      nodeId: query.node,
    };
    const rows = await this.records.jobs.find(filter, { order: 'desc', before: query.cursor, take: query.limit + 1 });
    const page = rows.slice(0, query.limit);
    return { items: page.map(jobView), nextCursor: rows.length > query.limit ? page[page.length - 1]!.id : null };
  }

  /** One job; a migrate job with its children. */
  async get(actor: Actor, id: string): Promise<JobView> {
    return presentJob(this.records, await this.findVisible(actor, id));
  }

  /**
   * Cancels a job: a queued one is removed from BullMQ and ends `cancelled` at once ('done'); a
   * running one is signalled and ends `cancelled` when its worker stops ('signalled'). A job
   * that already ended is a 409.
   */
  async cancel(actor: Actor, id: string): Promise<{ outcome: 'done' | 'signalled'; job: JobView }> {
    const job = await this.findVisible(actor, id);
    if (isTerminal(job.status)) throw new CairnError('conflict', `job ${id} already ended (${job.status})`, { details: { status: job.status } });
    const result = await cancelJob(this.records, this.queues, job, `cancelled by token ${actor.tokenId}`);
    const now = (await this.records.jobs.get(id)) ?? job;
    this.changed(job);
    this.logger.info({ jobId: id, result, by: actor.tokenId }, 'job cancel requested');
    if (result === 'unchanged' && isTerminal(now.status) && now.status !== 'cancelled') {
      throw new CairnError('conflict', `job ${id} ended (${now.status}) before it could be cancelled`, { details: { status: now.status } });
    }
    return { outcome: isTerminal(now.status) ? 'done' : 'signalled', job: await presentJob(this.records, now) };
  }

  /**
   * The job's current state at once, then every change (state or progress) until it ends (SPEC
   * §4, issue 17). Each stream holds one of its token's slots until it ends; the streams of one
   * job share one source of changes (JobProgressHub), fed by the workers' notices.
   */
  async *watch(actor: Actor, id: string, signal: AbortSignal): AsyncGenerator<JobEvent> {
    const job = await this.findVisible(actor, id);
    const release = this.slots.acquire(actor.tokenId);
    try {
      yield* this.hub.watch(await presentJob(this.records, job), signal);
    } finally {
      release();
    }
  }

  /** A change made here (a cancel): this gateway's streams and, through Redis, every other's. */
  private changed(job: Job): void {
    this.hub.notify(job.id);
    if (job.parentJobId) this.hub.notify(job.parentJobId);
    void this.changes?.publish({ jobId: job.id, parentJobId: job.parentJobId });
  }

  private async currentViews(ids: string[]): Promise<Map<string, JobView>> {
    const rows = await this.records.jobs.find({ ids });
    const views = await Promise.all(rows.map((row) => presentJob(this.records, row)));
    return new Map(views.map((v) => [v.id, v]));
  }
}

/** The jobs an actor may see: all for an admin; for a member, those acting on its tenant's instances (as source or restore target). */
export function jobVisibility(actor: Actor): JobFilter {
  const tenantId = tenantScope(actor);
  return tenantId ? { touchesTenant: tenantId } : {};
}
