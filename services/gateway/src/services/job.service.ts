import { CairnError, cancelJob, type Job, type JobFilter, type Logger, type Records } from '@cairn/core';
import { TERMINAL_JOB_STATES, type JobList, type JobView, type ListJobsQuery } from '@cairn/core/api/index.ts';
import type { QueuePort } from '../queue/queue-client.ts';
import { tenantScope, type Actor } from './actor.ts';
import { presentJob } from './job-tree.ts';
import { jobView } from './presenters.ts';

export interface JobServiceOptions {
  records: Records;
  queues: QueuePort;
  logger: Logger;
  /** How often an event stream re-reads the job row. */
  pollIntervalMs?: number;
}

export type JobEvent = { event: 'state' | 'progress'; job: JobView };

const isTerminal = (status: string) => (TERMINAL_JOB_STATES as readonly string[]).includes(status);

/** Job history, progress streams and cancellation (SPEC §4, §11). */
export class JobService {
  private readonly records: Records;
  private readonly queues: QueuePort;
  private readonly logger: Logger;
  private readonly pollIntervalMs: number;

  constructor(options: JobServiceOptions) {
    this.records = options.records;
    this.queues = options.queues;
    this.logger = options.logger;
    this.pollIntervalMs = options.pollIntervalMs ?? 500;
  }

  /**
   * A member sees the jobs that act on its tenant's instances (as source or restore target);
   * jobs of no instance (sweeps) are admin-only.
   */
  private visibility(actor: Actor): Promise<JobFilter> {
    return jobVisibility(this.records, actor);
  }

  async findVisible(actor: Actor, id: string): Promise<Job> {
    const row = await this.records.jobs.findFirst({ ...(await this.visibility(actor)), id });
    if (!row) throw new CairnError('not-found', `job ${id} not found`);
    return row;
  }

  async list(actor: Actor, query: ListJobsQuery): Promise<JobList> {
    const filter: JobFilter = {
      ...(await this.visibility(actor)),
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
    this.logger.info({ jobId: id, result, by: actor.tokenId }, 'job cancel requested');
    if (result === 'unchanged' && isTerminal(now.status) && now.status !== 'cancelled') {
      throw new CairnError('conflict', `job ${id} ended (${now.status}) before it could be cancelled`, { details: { status: now.status } });
    }
    return { outcome: isTerminal(now.status) ? 'done' : 'signalled', job: await presentJob(this.records, now) };
  }

  /**
   * The job's current state at once, then every change (state or progress) until it ends. The
   * row is polled: it is where workers persist progress, and polling needs no extra connection.
   */
  async *watch(actor: Actor, id: string, signal: AbortSignal): AsyncGenerator<JobEvent> {
    let last = await presentJob(this.records, await this.findVisible(actor, id));
    yield { event: 'state', job: last };
    while (!isTerminal(last.status) && !signal.aborted) {
      await sleep(this.pollIntervalMs, signal);
      if (signal.aborted) return;
      const row = await this.records.jobs.get(id);
      if (!row) return;
      const next = await presentJob(this.records, row);
      if (JSON.stringify(next) === JSON.stringify(last)) continue;
      const event = next.status !== last.status || next.error !== last.error ? 'state' : 'progress';
      last = next;
      yield { event, job: next };
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** The jobs an actor may see: all for an admin; for a member, those acting on its tenant's instances. */
export async function jobVisibility(records: Pick<Records, 'instances'>, actor: Actor): Promise<JobFilter> {
  const tenantId = tenantScope(actor);
  if (!tenantId) return {};
  return { touchesInstances: await records.instances.ids({ tenantId }) };
}
