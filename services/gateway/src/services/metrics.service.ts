import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Middleware } from 'koa';
import { CONTROL_QUEUE, cronIntervalSeconds, nodeQueueName, type HookFailureCount, type Logger, type Records, type Schedule } from '@cairn/core';
import { VERIFY_FINDING_CODES } from '@cairn/core/domain/backup-verify.ts';
import type { QueuePort } from '../queue/queue-client.ts';
import { heartbeatAgeSeconds, isOnline } from './presenters.ts';

export interface MetricsServiceOptions {
  records: Pick<Records, 'jobs' | 'backups' | 'nodes' | 'hooks' | 'schedules'>;
  queues: QueuePort;
  logger: Logger;
  now?: () => Date;
  /** Other registries of this process rendered after the gateway's own (the all-in-one's workers). */
  extra?: Array<{ metrics(): Promise<string> }>;
}

const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'failed'] as const;

interface InstanceBackupState {
  id: string;
  /** Unix seconds of the newest completed backup's completion. */
  lastSuccess: number | null;
  /** The shortest interval among its enabled schedules (each judged by its longest gap), in seconds. */
  interval: number | null;
  /** Unix seconds when that schedule was created: the "since" of an instance never backed up. */
  scheduledSince: number | null;
}

/** Everything read from Postgres and Redis for one scrape. */
interface FleetSnapshot {
  sources: { postgres: boolean; redis: boolean };
  jobs: { type: string; status: string; count: number }[];
  backups: { status: string; count: number }[];
  storedBytes: number;
  nodes: { id: string; ageSeconds: number | null; online: boolean }[];
  queues: { queue: string; counts: Record<string, number> }[];
  hookFailures: HookFailureCount[];
  /** Per instance: its last successful backup and, when scheduled, the interval its schedules promise. */
  instances: InstanceBackupState[];
  /** Verify (issue 14): verify jobs that found a problem, and completed backups whose last verification failed. */
  verifyFindings?: number;
  verifyFailedBackups?: number;
}

/**
 * Prometheus metrics (SPEC §12). Job, backup and node figures are read from Postgres and queue
 * depths from Redis at scrape time, so every gateway replica reports the same fleet-wide truth;
 * a source that cannot be read shows as `cairn_metrics_source_up 0`, not as a failed scrape.
 */
export class MetricsService {
  readonly registry = new Registry();
  private readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  private readonly options: MetricsServiceOptions;
  private snapshot: { at: number; value: Promise<FleetSnapshot> } | null = null;

  constructor(options: MetricsServiceOptions) {
    this.options = options;
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });

    this.httpDuration = new Histogram({
      name: 'cairn_http_request_duration_seconds',
      help: 'HTTP request durations by route template and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });

    // prom-client collects every metric concurrently; each gauge awaits the one shared snapshot.
    const fleet = () => this.fleet();
    new Gauge({
      name: 'cairn_metrics_source_up',
      help: 'Whether the last scrape could read a source (postgres, redis)',
      labelNames: ['source'],
      registers,
      async collect() {
        const s = await fleet();
        this.set({ source: 'postgres' }, s.sources.postgres ? 1 : 0);
        this.set({ source: 'redis' }, s.sources.redis ? 1 : 0);
      },
    });
    new Gauge({
      name: 'cairn_jobs',
      help: 'Jobs by type and status (from Postgres)',
      labelNames: ['type', 'status'],
      registers,
      async collect() {
        const s = await fleet();
        this.reset();
        for (const j of s.jobs) this.set({ type: j.type, status: j.status }, j.count);
      },
    });
    new Gauge({
      name: 'cairn_backups',
      help: 'Backups by status (from Postgres)',
      labelNames: ['status'],
      registers,
      async collect() {
        const s = await fleet();
        this.reset();
        for (const b of s.backups) this.set({ status: b.status }, b.count);
      },
    });
    new Gauge({
      name: 'cairn_backup_stored_bytes',
      help: 'Bytes stored by completed backups',
      registers,
      async collect() {
        this.set((await fleet()).storedBytes);
      },
    });
    // The only metrics labelled by instance (bounded by the instances registered): what the
    // "backup overdue" alert needs, last success against the schedule's interval.
    new Gauge({
      name: 'cairn_instance_last_successful_backup_timestamp_seconds',
      help: 'Unix time at which the newest completed backup of each instance completed',
      labelNames: ['instance_id'],
      registers,
      async collect() {
        const s = await fleet();
        this.reset();
        for (const i of s.instances) if (i.lastSuccess !== null) this.set({ instance_id: i.id }, i.lastSuccess);
      },
    });
    new Gauge({
      name: 'cairn_instance_backup_interval_seconds',
      help: "Longest gap between two runs of each scheduled instance's most frequent enabled schedule",
      labelNames: ['instance_id'],
      registers,
      async collect() {
        const s = await fleet();
        this.reset();
        for (const i of s.instances) if (i.interval !== null) this.set({ instance_id: i.id }, i.interval);
      },
    });
    new Gauge({
      name: 'cairn_instance_scheduled_since_timestamp_seconds',
      help: 'Unix time at which the schedule behind cairn_instance_backup_interval_seconds was created',
      labelNames: ['instance_id'],
      registers,
      async collect() {
        const s = await fleet();
        this.reset();
        for (const i of s.instances) if (i.scheduledSince !== null) this.set({ instance_id: i.id }, i.scheduledSince);
      },
    });
    new Gauge({
      name: 'cairn_node_heartbeat_age_seconds',
      help: 'Seconds since each node last heartbeated',
      labelNames: ['node'],
      registers,
      async collect() {
        const s = await fleet();
        this.reset();
        for (const n of s.nodes) if (n.ageSeconds !== null) this.set({ node: n.id }, n.ageSeconds);
      },
    });
    new Gauge({
      name: 'cairn_node_online',
      help: 'Whether each node heartbeated within the last minute',
      labelNames: ['node'],
      registers,
      async collect() {
        const s = await fleet();
        this.reset();
        for (const n of s.nodes) this.set({ node: n.id }, n.online ? 1 : 0);
      },
    });
    new Counter({
      name: 'cairn_hook_failures_total',
      help: 'Hook runs that failed or timed out, by stage (backup, restore), hook (pre, post) and status (failed, timeout), from Postgres',
      labelNames: ['stage', 'hook', 'status'],
      registers,
      async collect() {
        const s = await fleet();
        this.reset();
        for (const f of s.hookFailures) this.inc({ stage: f.stage, hook: f.phase, status: f.status }, f.count);
      },
    });
    new Counter({
      name: 'cairn_backup_verify_failures_total',
      help: 'Verifications that found a backup damaged (checksum-mismatch, archive-corrupt, archive-missing), from Postgres',
      registers,
      async collect() {
        this.reset();
        this.inc((await fleet()).verifyFindings ?? 0);
      },
    });
    new Gauge({
      name: 'cairn_backups_verify_failed',
      help: 'Completed backups whose last verification failed',
      registers,
      async collect() {
        this.set((await fleet()).verifyFailedBackups ?? 0);
      },
    });
    new Gauge({
      name: 'cairn_queue_jobs',
      help: 'BullMQ jobs per queue and state',
      labelNames: ['queue', 'state'],
      registers,
      async collect() {
        const s = await fleet();
        this.reset();
        for (const q of s.queues) for (const state of QUEUE_STATES) this.set({ queue: q.queue, state }, q.counts[state] ?? 0);
      },
    });
  }

  /** Times every request, labelled by the matched route template (bounded cardinality). */
  middleware(): Middleware {
    return async (ctx, next) => {
      const end = this.httpDuration.startTimer();
      try {
        await next();
      } finally {
        const route = (ctx as { _matchedRoute?: string })._matchedRoute ?? (ctx.path.startsWith('/admin/queues') ? '/admin/queues' : 'unmatched');
        end({ method: ctx.method, route: String(route), status: String(ctx.status) });
      }
    };
  }

  async render(): Promise<{ contentType: string; body: string }> {
    const bodies = await Promise.all([this.registry, ...(this.options.extra ?? [])].map((r) => r.metrics()));
    return { contentType: this.registry.contentType, body: bodies.join('\n') };
  }

  /** One read per scrape: concurrent collectors (and scrapes within a second) share it. */
  private fleet(): Promise<FleetSnapshot> {
    if (this.snapshot && Date.now() - this.snapshot.at < 1000) return this.snapshot.value;
    this.snapshot = { at: Date.now(), value: this.readFleet() };
    return this.snapshot.value;
  }

  private async readFleet(): Promise<FleetSnapshot> {
    const { records, queues, logger } = this.options;
    const at = (this.options.now ?? (() => new Date()))();
    const s: FleetSnapshot = {
      sources: { postgres: false, redis: false },
      jobs: [],
      backups: [],
      storedBytes: 0,
      nodes: [],
      queues: [],
      hookFailures: [],
      instances: [],
    };
    try {
      const [jobs, backups, stored, nodes, hookFailures, lastSuccess, schedules] = await Promise.all([
        records.jobs.countByTypeAndStatus(),
        records.backups.countByStatus(),
        records.backups.sumSizeBytes({ status: 'completed' }),
        records.nodes.list(),
        records.hooks.countFailures(),
        records.backups.lastCompletedPerInstance(),
        records.schedules.find({ enabled: true }),
      ]);
      s.hookFailures = hookFailures;
      s.instances = instanceBackupStates(lastSuccess, schedules, at);
      [s.verifyFindings, s.verifyFailedBackups] = await Promise.all([
        records.jobs.count({ type: 'verify', status: 'failed', errorCode: [...VERIFY_FINDING_CODES] }),
        records.backups.count({ status: 'completed', verifyStatus: 'failed' }),
      ]);
      s.jobs = jobs;
      s.backups = backups;
      s.storedBytes = Number(stored);
      s.nodes = nodes.map((n) => ({ id: n.id, ageSeconds: heartbeatAgeSeconds(n, at), online: isOnline(n, at) }));
      s.sources.postgres = true;
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'metrics: postgres unavailable');
    }
    try {
      const names = [CONTROL_QUEUE, ...s.nodes.map((n) => nodeQueueName(n.id))];
      const counts = await Promise.all(names.map((q) => queues.counts(q)));
      s.queues = names.map((queue, i) => ({ queue, counts: counts[i]! }));
      s.sources.redis = true;
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'metrics: redis unavailable');
    }
    return s;
  }
}

/** Last success and schedule interval per instance (instances with neither are left out). */
function instanceBackupStates(lastSuccess: Array<{ instanceId: string; completedAt: Date }>, schedules: Schedule[], at: Date): InstanceBackupState[] {
  const byId = new Map<string, InstanceBackupState>();
  const entry = (id: string) => byId.get(id) ?? byId.set(id, { id, lastSuccess: null, interval: null, scheduledSince: null }).get(id)!;
  for (const l of lastSuccess) entry(l.instanceId).lastSuccess = l.completedAt.getTime() / 1000;
  for (const schedule of schedules) {
    const interval = cronIntervalSeconds(schedule.cron, schedule.timezone, at);
    if (interval === null) continue;
    const e = entry(schedule.instanceId);
    if (e.interval === null || interval < e.interval) {
      e.interval = interval;
      e.scheduledSince = schedule.createdAt.getTime() / 1000;
    }
  }
  return [...byId.values()];
}
