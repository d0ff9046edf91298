import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  CONTROL_QUEUE,
  DEFAULT_JOB_OPTIONS,
  cancelChannel,
  nodeQueueName,
  type ControlJobName,
  type ControlJobPayload,
  type NodeJobName,
  type NodeJobPayload,
} from './contracts.ts';

export interface CancelMessage {
  jobId: string;
  reason: string;
}

/**
 * The producer side of Cairn's queues: the gateway and the control worker enqueue through this,
 * never through `new Queue` elsewhere. BullMQ job id = Cairn job id, so enqueueing is idempotent.
 */
export class JobQueues {
  private readonly queues = new Map<string, Queue>();

  constructor(
    private readonly connection: Redis,
    readonly prefix: string,
  ) {}

  queue(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.connection, prefix: this.prefix });
      q.on('error', () => {}); // surfaced through readiness; an unhandled 'error' would crash
      this.queues.set(name, q);
    }
    return q;
  }

  nodeQueue(nodeId: string): Queue {
    return this.queue(nodeQueueName(nodeId));
  }

  async enqueueNode(nodeId: string, name: NodeJobName, payload: NodeJobPayload, opts: JobsOptions = {}): Promise<void> {
    await this.nodeQueue(nodeId).add(name, payload, { ...DEFAULT_JOB_OPTIONS, jobId: payload.jobId, ...opts });
  }

  async enqueueControl(name: ControlJobName, payload: ControlJobPayload, jobId: string, opts: JobsOptions = {}): Promise<void> {
    await this.queue(CONTROL_QUEUE).add(name, payload, { ...DEFAULT_JOB_OPTIONS, jobId, ...opts });
  }

  /**
   * Cancels a job wherever it is: a waiting/delayed one is removed from its queue (returns
   * 'removed'); an active one is signalled over pub/sub to the worker that holds it ('signalled').
   */
  async cancel(queueName: string, jobId: string, reason: string): Promise<'removed' | 'signalled' | 'gone'> {
    const job = await this.queue(queueName).getJob(jobId);
    if (!job) return 'gone';
    const state = await job.getState();
    if (state === 'waiting' || state === 'delayed' || state === 'prioritized' || state === 'waiting-children') {
      try {
        await job.remove();
        return 'removed';
      } catch {
        // It became active between the two calls: fall through to signalling.
      }
    }
    if (state === 'completed' || state === 'failed') return 'gone';
    const message: CancelMessage = { jobId, reason };
    await this.connection.publish(cancelChannel(this.prefix), JSON.stringify(message));
    return 'signalled';
  }

  /**
   * True while a worker holds the job: its lock, renewed by the worker every half lock duration,
   * exists. A worker that died lets it expire (30 s), so this tells a live node from a dead one
   * even when the node's heartbeats cannot reach Postgres.
   */
  async isHeld(queueName: string, jobId: string): Promise<boolean> {
    return (await this.connection.exists(`${this.queue(queueName).toKey(jobId)}:lock`)) === 1;
  }

  async ping(): Promise<void> {
    await this.connection.ping();
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
  }
}
