import type { JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  CONTROL_QUEUE,
  CairnError,
  nodeQueueName,
  type ControlJobName,
  type ControlJobPayload,
  type JobQueues,
  type NodeJobName,
  type NodeJobPayload,
} from '@cairn/core';

export type CancelOutcome = 'removed' | 'signalled' | 'gone';

/** What the gateway's services need from the queues; a fake implements it in unit tests. */
export interface QueuePort {
  enqueueNode(nodeId: string, name: NodeJobName, payload: NodeJobPayload, opts?: JobsOptions): Promise<void>;
  /** `opts` passes BullMQ options through (retention requests use deduplication). */
  enqueueControl(name: ControlJobName, payload: ControlJobPayload, jobId: string, opts?: JobsOptions): Promise<void>;
  cancel(queueName: string, jobId: string, reason: string): Promise<CancelOutcome>;
  /** Waiting/active/delayed/failed... counts of one queue. */
  counts(queueName: string): Promise<Record<string, number>>;
  queue(name: string): Queue;
  /** Resolves when Redis answers; CairnError('unavailable') otherwise. */
  ready(): Promise<void>;
}

export interface QueueClientOptions {
  /** How long a queue operation may take before the request answers 503. */
  timeoutMs?: number;
  /** How long to wait for a (re)connecting Redis before giving up. */
  connectWaitMs?: number;
}

/**
 * JobQueues with the gateway's failure semantics: the shared ioredis connection queues commands
 * while Redis is down (maxRetriesPerRequest: null, needed by BullMQ), which would hang a request
 * forever, so every call first checks the connection and is bounded by a timeout; both end in
 * CairnError('unavailable') → 503.
 */
export class QueueClient implements QueuePort {
  private readonly timeoutMs: number;
  private readonly connectWaitMs: number;

  constructor(
    private readonly jobQueues: JobQueues,
    private readonly redis: Redis,
    options: QueueClientOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.connectWaitMs = options.connectWaitMs ?? 1000;
  }

  enqueueNode(nodeId: string, name: NodeJobName, payload: NodeJobPayload, opts?: JobsOptions): Promise<void> {
    return this.guard(`enqueue ${name} on ${nodeQueueName(nodeId)}`, () => this.jobQueues.enqueueNode(nodeId, name, payload, opts));
  }

  enqueueControl(name: ControlJobName, payload: ControlJobPayload, jobId: string, opts?: JobsOptions): Promise<void> {
    return this.guard(`enqueue ${name} on ${CONTROL_QUEUE}`, () => this.jobQueues.enqueueControl(name, payload, jobId, opts));
  }

  cancel(queueName: string, jobId: string, reason: string): Promise<CancelOutcome> {
    return this.guard(`cancel ${jobId}`, () => this.jobQueues.cancel(queueName, jobId, reason));
  }

  counts(queueName: string): Promise<Record<string, number>> {
    return this.guard(`count ${queueName}`, () =>
      this.jobQueues.queue(queueName).getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'failed', 'completed'),
    );
  }

  queue(name: string): Queue {
    return this.jobQueues.queue(name);
  }

  ready(): Promise<void> {
    return this.waitReady('enqueue jobs');
  }

  private async guard<T>(what: string, op: () => Promise<T>): Promise<T> {
    await this.waitReady(what);
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        op(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new CairnError('unavailable', `redis unavailable: ${what} got no answer within ${this.timeoutMs} ms`)),
            this.timeoutMs,
          );
        }),
      ]);
    } catch (err) {
      if (err instanceof CairnError) throw err;
      throw new CairnError('unavailable', `redis unavailable: ${what} failed: ${(err as Error).message}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  private async waitReady(what: string): Promise<void> {
    if (this.redis.status === 'ready') return;
    if (this.redis.status === 'end' || this.redis.status === 'close') {
      throw new CairnError('unavailable', `redis unavailable: cannot ${what} (connection ${this.redis.status})`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const onReady = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.redis.off('ready', onReady);
        resolve(false);
      }, this.connectWaitMs);
      this.redis.once('ready', onReady);
    });
    if (!ok) throw new CairnError('unavailable', `redis unavailable: cannot ${what} (connection ${this.redis.status})`);
  }
}
