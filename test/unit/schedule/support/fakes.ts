import type { Queue } from 'bullmq';
import { pino } from 'pino';
import {
  CairnError,
  CONTROL_QUEUE,
  type ControlJobName,
  type ControlJobPayload,
  type Logger,
  type MemoryRecords,
  type NewBackup,
  type NodeJobName,
  type NodeJobPayload,
  newId,
  nextRunAt,
} from '@cairn/core';

/**
 * Fakes for unit tests of schedules, retention and deletion: queues held in memory (the parts of
 * JobQueues these services call, BullMQ job schedulers included), a logger that keeps what was
 * logged, and seeding helpers over MemoryRecords. No Postgres, Redis or S3.
 */

export interface QueuedJob {
  queue: string;
  name: string;
  jobId: string;
  payload: unknown;
  opts?: unknown;
}

export interface FakeScheduler {
  key: string;
  pattern: string;
  tz: string;
  name: string;
  data: unknown;
  next: number | null;
}

type CancelOutcome = 'removed' | 'signalled' | 'gone';

/**
 * The queues as JobQueues shows them to the services: enqueue (idempotent by job id, like BullMQ),
 * cancel (a waiting job is removed, an `active` one signalled) and a control queue with job
 * schedulers. `fail.*` makes the next calls of that kind throw.
 */
export class FakeQueues {
  /** Every job ever enqueued and still in its queue, by queue then job id. */
  readonly jobs = new Map<string, Map<string, QueuedJob>>();
  /** Job ids (per queue) a worker has taken: cancelling them signals instead of removing. */
  readonly active = new Set<string>();
  readonly signalled: { queue: string; jobId: string; reason: string }[] = [];
  readonly schedulers = new Map<string, FakeScheduler>();
  /** How many enqueue calls were made (duplicates included). */
  enqueueCalls = 0;
  readonly fail: { enqueueNode: number; enqueueControl: number; scheduler: number; cancel: number } = {
    enqueueNode: 0,
    enqueueControl: 0,
    scheduler: 0,
    cancel: 0,
  };
  /** Set to make `ready()` throw (Redis down). */
  down = false;

  constructor(private readonly clock: () => Date = () => new Date()) {}

  private failing(kind: keyof FakeQueues['fail'], what: string): void {
    if (this.fail[kind] > 0) {
      this.fail[kind]--;
      throw new Error(`fake redis: ${what} failed`);
    }
  }

  private add(queue: string, job: QueuedJob): void {
    this.enqueueCalls++;
    const q = this.jobs.get(queue) ?? new Map<string, QueuedJob>();
    if (!q.has(job.jobId)) q.set(job.jobId, job);
    this.jobs.set(queue, q);
  }

  /** The jobs waiting in one queue, in enqueue order. */
  waiting(queue: string): QueuedJob[] {
    return [...(this.jobs.get(queue)?.values() ?? [])];
  }

  async enqueueNode(nodeId: string, name: NodeJobName, payload: NodeJobPayload): Promise<void> {
    this.failing('enqueueNode', `enqueue ${name} on node ${nodeId}`);
    this.add(`node.${nodeId}`, { queue: `node.${nodeId}`, name, jobId: payload.jobId, payload });
  }

  async enqueueControl(name: ControlJobName, payload: ControlJobPayload, jobId: string, opts?: unknown): Promise<void> {
    this.failing('enqueueControl', `enqueue ${name}`);
    this.add(CONTROL_QUEUE, { queue: CONTROL_QUEUE, name, jobId, payload, opts });
  }

  async cancel(queueName: string, jobId: string, reason: string): Promise<CancelOutcome> {
    this.failing('cancel', `cancel ${jobId}`);
    const q = this.jobs.get(queueName);
    if (!q?.has(jobId)) return 'gone';
    if (this.active.has(jobId)) {
      this.signalled.push({ queue: queueName, jobId, reason });
      return 'signalled';
    }
    q.delete(jobId);
    return 'removed';
  }

  async ready(): Promise<void> {
    if (this.down) throw new CairnError('unavailable', 'redis unavailable');
  }

  /** A BullMQ Queue with the job scheduler calls SchedulerSync makes (control queue only). */
  queue(name: string): Queue {
    if (name !== CONTROL_QUEUE) throw new Error(`fake queues: only ${CONTROL_QUEUE} has schedulers`);
    const fake = {
      upsertJobScheduler: async (key: string, repeat: { pattern: string; tz: string }, template: { name: string; data: unknown }) => {
        this.failing('scheduler', `upsert scheduler ${key}`);
        const next = nextRunAt(repeat.pattern, repeat.tz, this.clock());
        this.schedulers.set(key, { key, pattern: repeat.pattern, tz: repeat.tz, name: template.name, data: template.data, next: next?.getTime() ?? null });
      },
      getJobScheduler: async (key: string) => {
        this.failing('scheduler', `read scheduler ${key}`);
        return this.schedulers.get(key);
      },
      removeJobScheduler: async (key: string) => {
        this.failing('scheduler', `remove scheduler ${key}`);
        return this.schedulers.delete(key);
      },
      getJobSchedulers: async () => {
        this.failing('scheduler', 'list schedulers');
        return [...this.schedulers.values()];
      },
    };
    return fake as unknown as Queue;
  }
}

/** A logger that keeps every line (parsed) for assertions. */
export function captureLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

/** A clock tests move by hand; MemoryRecords stamps createdAt with it. */
export function manualClock(start = new Date('2026-06-01T12:00:00Z')): { now: () => Date; set(d: Date): void; advance(ms: number): void } {
  let t = start.getTime();
  return {
    now: () => new Date(t),
    set: (d) => {
      t = d.getTime();
    },
    advance: (ms) => {
      t += ms;
    },
  };
}

/** A tenant, a node and an instance with the given volumes. */
export async function seedInstance(
  records: MemoryRecords,
  options: { volumes?: string[]; nodeId?: string; tenantId?: string } = {},
): Promise<{ instanceId: string; nodeId: string; tenantId: string }> {
  const tenantId = options.tenantId ?? newId();
  if (!(await records.tenants.get(tenantId))) records.seedTenant({ id: tenantId, name: `t-${tenantId}` });
  const nodeId = options.nodeId ?? `node-${newId().toLowerCase()}`;
  if (!(await records.nodes.get(nodeId))) records.seedNode({ id: nodeId, volumeRoots: ['/srv'] });
  const instanceId = newId();
  await records.instances.create({
    id: instanceId,
    tenantId,
    name: `app-${instanceId.toLowerCase()}`,
    nodeId,
    volumes: (options.volumes ?? ['data']).map((name) => ({ id: newId(), name, hostPath: `/srv/${instanceId}/${name}`, excludes: [] })),
  });
  return { instanceId, nodeId, tenantId };
}

/** A backup row in the given state (`completed` by default, with completedAt). */
export async function seedBackup(
  records: MemoryRecords,
  instanceId: string,
  options: Partial<Pick<NewBackup, 'status' | 'trigger' | 'scheduleId'>> & { id?: string } = {},
): Promise<string> {
  const id = options.id ?? newId();
  const status = options.status ?? 'completed';
  await records.backups.create({
    id,
    instanceId,
    status,
    trigger: options.trigger ?? 'schedule',
    scheduleId: options.scheduleId ?? null,
    volumes: ['data'],
    storageKey: `backups/${instanceId}/${id}.tar.gz`,
    indexKey: `backups/${instanceId}/${id}.index.json.gz`,
    compression: 'gzip',
    requestedBy: 'system',
  });
  if (status === 'completed') {
    const b = (await records.backups.get(id))!;
    await records.backups.updateWhere({ id }, { completedAt: b.createdAt });
  }
  return id;
}
