import {
  assertTimeZone,
  enqueueManualRetention,
  manualPolicyOf,
  manualRetentionScope,
  previewManualRetention,
  retentionPolicyProblems,
  type Config,
  type InstancePolicy,
  type InstancePolicyChanges,
  type Logger,
  type RecordSet,
  type Records,
  type RetentionPolicy,
} from '@cairn/core';
import type { InstancePolicyView, ManualRetentionPreview, ManualRetentionPreviewBody, UpdateInstancePolicyBody } from '@cairn/core/api/index.ts';
import { validationError } from '../http/validation.ts';
import type { QueuePort } from '../queue/queue-client.ts';
import type { Actor } from './actor.ts';
import type { InstanceService } from './instance.service.ts';

export interface InstancePolicyServiceOptions {
  records: Records;
  queues: QueuePort;
  instances: InstanceService;
  config: Pick<Config, 'MANUAL_BACKUP_LIMIT'>;
  logger: Logger;
  now?: () => Date;
}

/** The backups that count against the manual limit: manual, not deleting or deleted, not pinned. */
export const countedManualBackups = (instanceId: string) =>
  ({ ...manualRetentionScope(instanceId), statusNot: ['deleting', 'deleted'], pinned: false }) as const;

/** The manual backup limit of an instance: its own override, or the configured MANUAL_BACKUP_LIMIT. */
export async function manualBackupLimitOf(
  records: RecordSet,
  instanceId: string,
  configured: number,
): Promise<{ limit: number; source: 'instance policy' | 'MANUAL_BACKUP_LIMIT' }> {
  const own = (await records.policies.get(instanceId))?.manualBackupLimit ?? null;
  return own === null ? { limit: configured, source: 'MANUAL_BACKUP_LIMIT' } : { limit: own, source: 'instance policy' };
}

const iso = (d: Date | null | undefined): string | null => (d ? d.toISOString() : null);

/**
 * Per-instance overrides (issue 13): the manual backup limit and a retention policy for the
 * instance's manual backups, with the same dry run as a schedule's retention. Visible to whoever
 * sees the instance (members: their tenant's). Writes take the instance's lock, the lock under
 * which a manual backup counts against the limit and manual retention writes expiresAt.
 */
export class InstancePolicyService {
  private readonly records: Records;
  private readonly queues: QueuePort;
  private readonly instances: InstanceService;
  private readonly config: InstancePolicyServiceOptions['config'];
  private readonly logger: Logger;
  private readonly now: () => Date;

  constructor(options: InstancePolicyServiceOptions) {
    this.records = options.records;
    this.queues = options.queues;
    this.instances = options.instances;
    this.config = options.config;
    this.logger = options.logger;
    this.now = options.now ?? (() => new Date());
  }

  async get(actor: Actor, instanceId: string): Promise<InstancePolicyView> {
    const instance = await this.instances.findVisible(actor, instanceId);
    return this.view(this.records, instance.id, await this.records.policies.get(instance.id));
  }

  /**
   * Changes the overrides. Clearing the manual retention policy clears the expiresAt it gave (as
   * deleting a schedule does); a new policy is applied right away by a retention job.
   */
  async update(actor: Actor, instanceId: string, body: UpdateInstancePolicyBody): Promise<InstancePolicyView> {
    const instance = await this.instances.findVisible(actor, instanceId);
    const changes: InstancePolicyChanges = {};
    if (body.manualBackupLimit !== undefined) changes.manualBackupLimit = body.manualBackupLimit;
    if (body.manualRetention !== undefined) changes.manualRetention = body.manualRetention === null ? null : this.checkPolicy(body.manualRetention);
    if (body.timezone !== undefined) changes.timezone = this.checkTimeZone(body.timezone);
    const retentionChanged = body.manualRetention !== undefined || body.timezone !== undefined;
    if (retentionChanged && body.manualRetention !== null) await this.queues.ready();

    const { row, view } = await this.records.transaction(async (tx) => {
      await tx.lock('instance', instance.id);
      const row = await tx.policies.upsert(instance.id, changes);
      // Nothing applies a manual policy any more: the expiresAt it set would be a false promise.
      if (body.manualRetention === null) await tx.backups.updateWhere({ ...manualRetentionScope(instance.id), expires: true }, { expiresAt: null });
      return { row, view: await this.view(tx, instance.id, row) };
    });
    if (retentionChanged && manualPolicyOf(row)) {
      try {
        await enqueueManualRetention(this.queues, instance.id);
      } catch (err) {
        // The policy is stored; the periodic retention run applies it anyway.
        this.logger.warn({ instanceId: instance.id, err: (err as Error).message }, 'could not enqueue manual retention; the periodic run will apply it');
      }
    }
    this.logger.info({ instanceId: instance.id, changed: Object.keys(body), by: actor.tokenId }, 'instance policy updated');
    return view;
  }

  /** Dry run of manual retention: what `body.retention` (default: the instance's own) would keep and drop now. */
  async previewRetention(actor: Actor, instanceId: string, body: ManualRetentionPreviewBody): Promise<ManualRetentionPreview> {
    const instance = await this.instances.findVisible(actor, instanceId);
    const stored = await this.records.policies.get(instance.id);
    const policy = body.retention ? this.checkPolicy(body.retention) : manualPolicyOf(stored);
    if (!policy) {
      throw validationError('request body', [
        { path: 'retention', message: `instance ${instance.name} has no manual retention policy: give one to preview (retention: {...})` },
      ]);
    }
    const timezone = body.timezone !== undefined ? this.checkTimeZone(body.timezone) : (stored?.timezone ?? 'UTC');
    const r = await previewManualRetention(this.records, instance.id, policy, timezone, this.now);
    return {
      instanceId: r.instanceId,
      timezone: r.timezone,
      at: r.at.toISOString(),
      keep: r.plan.keep.map((k) => ({ backupId: k.id, createdAt: k.createdAt.toISOString(), reasons: k.reasons, expiresAt: iso(k.expiresAt) })),
      drop: r.plan.drop.map((d) => ({ backupId: d.id, createdAt: d.createdAt.toISOString(), reason: d.reason })),
      untouched: r.untouched,
      pinned: r.pinned,
    };
  }

  private async view(records: RecordSet, instanceId: string, row: InstancePolicy | null): Promise<InstancePolicyView> {
    const [counted, pinned] = await Promise.all([
      records.backups.count(countedManualBackups(instanceId)),
      records.backups.count({ ...manualRetentionScope(instanceId), statusNot: ['deleting', 'deleted'], pinned: true }),
    ]);
    return {
      instanceId,
      manualBackupLimit: row?.manualBackupLimit ?? null,
      effectiveManualBackupLimit: row?.manualBackupLimit ?? this.config.MANUAL_BACKUP_LIMIT,
      manualRetention: manualPolicyOf(row),
      timezone: row?.timezone ?? 'UTC',
      manualBackups: { counted, pinned },
      updatedAt: iso(row?.updatedAt),
    };
  }

  /** The schema checked the fields; this is the rule shared with schedules (at least one rule). */
  private checkPolicy(policy: RetentionPolicy): RetentionPolicy {
    const problems = retentionPolicyProblems(policy);
    if (problems.length) {
      throw validationError(
        'request body',
        problems.map((p) => ({ path: p.path ? `manualRetention.${p.path}` : 'manualRetention', message: p.message })),
      );
    }
    return Object.fromEntries(Object.entries(policy).filter(([, v]) => v !== undefined)) as RetentionPolicy;
  }

  /** The canonical spelling (the schema already refused unknown zones; a 400 naming `timezone` otherwise). */
  private checkTimeZone(timezone: string): string {
    return assertTimeZone(timezone);
  }
}
