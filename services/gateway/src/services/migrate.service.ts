import {
  ACTIVE_JOB_STATUSES,
  CONTROL_QUEUE,
  CairnError,
  activeInstanceJob,
  containingRoot,
  failUnqueued,
  isInside,
  newId,
  type Backup,
  type Job,
  type Logger,
  type MigrateParams,
  type RecordSet,
  type Records,
} from '@cairn/core';
import type { ErrorDetail, JobView } from '@cairn/core/api/index.ts';
import type { MigrateBody } from '@cairn/core/api/migrate.schemas.ts';
import { fieldError, validationError } from '../http/validation.ts';
import { toCairnError } from '../middleware/error-handler.ts';
import type { QueuePort } from '../queue/queue-client.ts';
import { isAdmin, tenantScope, type Actor } from './actor.ts';
import type { BackupFilesService } from './backup-files.service.ts';
import { busyInstanceError, type BackupService } from './backup.service.ts';
import type { InstanceService } from './instance.service.ts';
import { presentJob } from './job-tree.ts';
import { heartbeatAgeSeconds, isOnline, type InstanceRow } from './presenters.ts';

export interface MigrateServiceOptions {
  records: Records;
  queues: QueuePort;
  instances: InstanceService;
  backups: BackupService;
  files: BackupFilesService;
  logger: Logger;
  now?: () => Date;
}

/** What a request turns into once checked: the Job's parameters and the instances it holds. */
interface MigratePlan {
  params: MigrateParams;
  source: InstanceRow;
  /** copy: the target instance; move: the source itself (the Job's targetInstanceId). */
  target: InstanceRow;
}

/**
 * Migrate requests (SPEC §8, issue 12): everything the control worker's migrate handler would
 * only discover late is checked here, each problem a 4xx naming it — the target exists and is
 * the tenant's, the volumes exist on it (copy); the node is known, online and another one, every
 * host path is inside its volume roots and clear of other instances' volumes (move); neither
 * instance has a migrate, backup or restore in flight. Then one parent Job (`migrate`, queue
 * `control`) is written under the instances' locks and enqueued; the handler makes the child jobs.
 */
export class MigrateService {
  private readonly records: Records;
  private readonly queues: QueuePort;
  private readonly instances: InstanceService;
  private readonly backups: BackupService;
  private readonly files: BackupFilesService;
  private readonly logger: Logger;
  private readonly now: () => Date;

  constructor(options: MigrateServiceOptions) {
    this.records = options.records;
    this.queues = options.queues;
    this.instances = options.instances;
    this.backups = options.backups;
    this.files = options.files;
    this.logger = options.logger;
    this.now = options.now ?? (() => new Date());
  }

  /** `POST /v1/instances/:id/migrate`: from a fresh backup of the instance. */
  async fromInstance(actor: Actor, instanceId: string, body: MigrateBody): Promise<JobView> {
    const source = await this.instances.findVisible(actor, instanceId);
    return this.start(actor, source.id, null, body);
  }

  /** `POST /v1/backups/:id/migrate`: from a completed backup; the source is the backup's instance. */
  async fromBackup(actor: Actor, backupId: string, body: MigrateBody): Promise<JobView> {
    const backup = await this.backups.findVisible(actor, backupId);
    requireCompleted(backup);
    return this.start(actor, backup.instanceId, backup, body);
  }

  private async start(actor: Actor, sourceId: string, backup: Backup | null, body: MigrateBody): Promise<JobView> {
    // Checked once before taking any lock (the S3 read of paths must not run under them), then
    // again under the locks, against the rows as they are when the Job is written.
    await this.plan(actor, this.records, sourceId, backup, body);
    if (backup && body.paths) await this.files.assertPaths(backup, body.paths);
    await this.queues.ready();

    const jobId = newId();
    const { job, plan } = await this.records.transaction(async (tx) => {
      // Lock order backup → instance → node, as restores and instance changes take them.
      if (backup) {
        await tx.lock('backup', backup.id);
        requireCompleted((await tx.backups.get(backup.id)) ?? { ...backup, status: 'deleted' });
      }
      const ids = [...new Set([sourceId, body.targetInstanceId ?? sourceId])].sort();
      for (const id of ids) await tx.lock('instance', id);
      const plan = await this.plan(actor, tx, sourceId, backup, body, (nodeId) => tx.lock('node', nodeId));
      for (const instance of plan.source.id === plan.target.id ? [plan.source] : [plan.source, plan.target]) {
        const active = await activeJobOf(tx, instance.id);
        if (active) throw busyInstanceError(instance.name, active);
      }
      const job = await tx.jobs.create({
        id: jobId,
        type: 'migrate',
        status: 'queued',
        instanceId: plan.source.id,
        backupId: backup?.id ?? null,
        targetInstanceId: plan.target.id,
        nodeId: null,
        queue: CONTROL_QUEUE,
        params: plan.params,
        requestedBy: actor.tokenId,
      });
      return { job, plan };
    });

    try {
      await this.queues.enqueueControl('migrate', { jobId }, jobId);
    } catch (err) {
      const reason = `could not enqueue the migrate: ${toCairnError(err).message}`;
      await failUnqueued(this.records, this.logger, { jobId }, reason);
      throw new CairnError('unavailable', reason, { cause: err, details: { jobId } });
    }
    const p = plan.params;
    this.logger.info(
      {
        jobId,
        mode: p.mode,
        sourceInstanceId: p.sourceInstanceId,
        ...(p.mode === 'copy' ? { targetInstanceId: p.targetInstanceId, volumes: p.volumes, paths: p.paths?.length ?? 0 } : {}),
        ...(p.mode === 'move' ? { fromNodeId: plan.source.nodeId, targetNodeId: p.targetNodeId, hostPaths: p.hostPaths } : {}),
        fromBackupId: p.fromBackupId,
        by: actor.tokenId,
      },
      'migrate requested',
    );
    return presentJob(this.records, job);
  }

  /** Every check that needs the records; `lockNode` (under a transaction) locks a move's target node before its volumes are read. */
  private async plan(
    actor: Actor,
    db: RecordSet,
    sourceId: string,
    backup: Backup | null,
    body: MigrateBody,
    lockNode?: (nodeId: string) => Promise<void>,
  ): Promise<MigratePlan> {
    const source = await this.instances.findVisible(actor, sourceId, db);
    return body.targetInstanceId !== undefined
      ? this.planCopy(actor, db, source, backup, body, body.targetInstanceId)
      : this.planMove(actor, db, source, backup, body, lockNode);
  }

  private async planCopy(actor: Actor, db: RecordSet, source: InstanceRow, backup: Backup | null, body: MigrateBody, targetId: string): Promise<MigratePlan> {
    const target = await db.instances.findFirst({ id: targetId, tenantId: tenantScope(actor) });
    if (!target) throw new CairnError('not-found', `target instance ${targetId} not found`);
    if (target.id === source.id) {
      throw fieldError(
        'targetInstanceId',
        `is the source instance ${source.name} itself: copy into another instance, move it with targetNodeId, ` +
          'or restore a backup with POST /v1/backups/:id/restore',
      );
    }
    if (target.tenantId !== source.tenantId) {
      throw fieldError(
        'targetInstanceId',
        `instance ${target.name} is in tenant ${target.tenant.name} and ${source.name} in ${source.tenant.name}: a copy stays within one tenant`,
      );
    }
    const from = backup ? `backup ${backup.id}` : `instance ${source.name}`;
    const available = backup ? [...backup.volumes].sort() : source.volumes.map((v) => v.name).sort();
    if (available.length === 0) throw new CairnError('no-data', `nothing to migrate: ${from} has no volumes`);

    const problems: ErrorDetail[] = [];
    body.volumes?.forEach((v, i) => {
      if (!available.includes(v)) problems.push({ path: `volumes.${i}`, message: `${from} has no volume ${v} (it has ${available.join(', ')})` });
    });
    const pathVolume = (p: string) => p.split('/')[0]!;
    const selectable = body.volumes ?? available;
    body.paths?.forEach((p, i) => {
      if (!selectable.includes(pathVolume(p))) {
        problems.push({
          path: `paths.${i}`,
          message: `${p} is not inside ${body.volumes ? 'a selected volume' : `a volume of ${from}`} (${selectable.join(', ')})`,
        });
      }
    });
    if (problems.length) throw validationError('request', problems);

    const volumes = body.volumes ?? (body.paths ? [...new Set(body.paths.map(pathVolume))].sort() : available);
    const onTarget = target.volumes.map((v) => v.name).sort();
    const missing = volumes.flatMap((v) =>
      onTarget.includes(v)
        ? []
        : [
            {
              path: body.volumes ? `volumes.${body.volumes.indexOf(v)}` : 'targetInstanceId',
              message: `target instance ${target.name} has no volume named ${v} (it has ${onTarget.join(', ') || 'none'})`,
            },
          ],
    );
    if (missing.length) throw validationError('request', missing);

    return {
      source,
      target,
      params: {
        mode: 'copy',
        sourceInstanceId: source.id,
        targetInstanceId: target.id,
        volumes,
        ...(body.paths ? { paths: body.paths } : {}),
        ...(backup ? { fromBackupId: backup.id } : {}),
      },
    };
  }

  private async planMove(
    actor: Actor,
    db: RecordSet,
    source: InstanceRow,
    backup: Backup | null,
    body: MigrateBody,
    lockNode: ((nodeId: string) => Promise<void>) | undefined,
  ): Promise<MigratePlan> {
    const nodeId = body.targetNodeId!;
    const node = await db.nodes.get(nodeId);
    if (!node) throw new CairnError('not-found', `node ${nodeId} not found: a node registers itself when its worker first starts`);
    if (node.id === source.nodeId) throw fieldError('targetNodeId', `instance ${source.name} is already on node ${node.id}`);
    const now = this.now();
    if (!isOnline(node, now)) {
      const age = heartbeatAgeSeconds(node, now);
      throw new CairnError(
        'conflict',
        age === null
          ? `node ${node.id} is offline: its worker has never sent a heartbeat`
          : `node ${node.id} is offline: its last heartbeat was ${Math.round(age)} s ago`,
        { details: { nodeId: node.id, lastHeartbeatAt: node.lastHeartbeatAt?.toISOString() ?? null } },
      );
    }
    const names = source.volumes.map((v) => v.name).sort();
    if (names.length === 0) throw new CairnError('no-data', `nothing to migrate: instance ${source.name} has no volumes`);

    const requested = body.hostPaths ?? {};
    const unknown = Object.keys(requested).flatMap((name) =>
      names.includes(name) ? [] : [{ path: `hostPaths.${name}`, message: `instance ${source.name} has no volume ${name} (it has ${names.join(', ')})` }],
    );
    if (unknown.length) throw validationError('request', unknown);

    const hostPaths: Record<string, string> = {};
    for (const v of [...source.volumes].sort((a, b) => a.name.localeCompare(b.name))) hostPaths[v.name] = requested[v.name] ?? v.hostPath;
    const outside = Object.entries(hostPaths).flatMap(([name, p]) => {
      if (containingRoot(p, node.volumeRoots)) return [];
      const what = name in requested ? p : `its current path ${p} (the default)`;
      const where = node.volumeRoots.length ? `a volume root of node ${node.id} (${node.volumeRoots.join(', ')})` : `a volume root: node ${node.id} has none`;
      return [{ path: `hostPaths.${name}`, message: `volume ${name}: ${what} is not inside ${where}` }];
    });
    if (outside.length) throw validationError('request', outside);
    const entries = Object.entries(hostPaths);
    const nested = entries.flatMap(([name, p], i) => {
      const clash = entries.slice(0, i).find(([, o]) => isInside(p, o) || isInside(o, p));
      return clash ? [{ path: `hostPaths.${name}`, message: `volume ${name}: ${p} overlaps volume ${clash[0]} (${clash[1]})` }] : [];
    });
    if (nested.length) throw validationError('request', nested);

    // Under the node's lock (as registrations take it), so no instance can claim the paths meanwhile.
    await lockNode?.(node.id);
    const others = await db.instances.volumes({ nodeId: node.id, notId: source.id });
    const taken: ErrorDetail[] = [];
    for (const [name, p] of entries) {
      const clash = others.find((o) => isInside(p, o.hostPath) || isInside(o.hostPath, p));
      if (!clash) continue;
      const owner = this.mayName(actor, source, clash.instance.tenantId)
        ? `volume ${clash.name} of instance ${clash.instance.name} (${clash.instance.id}) at ${clash.hostPath}`
        : 'a volume of another instance on that node';
      taken.push({ path: `hostPaths.${name}`, message: `volume ${name}: ${p} ${p === clash.hostPath ? 'is' : 'overlaps'} ${owner}` });
    }
    // Another instance's move to this node, not registered there yet, may be about to fill the same paths.
    const moves = await db.jobs.find({ type: 'migrate', status: ACTIVE_JOB_STATUSES }, { order: 'asc' });
    for (const move of moves) {
      const other = move.params as Partial<MigrateParams> | null;
      if (other?.mode !== 'move' || other.targetNodeId !== node.id || move.instanceId === source.id || !other.hostPaths) continue;
      for (const [name, p] of entries) {
        const clash = Object.entries(other.hostPaths).find(([, o]) => isInside(p, o) || isInside(o, p));
        if (!clash) continue;
        const mover = move.instanceId ? await db.instances.get(move.instanceId) : null;
        const owner =
          mover && this.mayName(actor, source, mover.tenantId)
            ? `the path ${clash[1]} that instance ${mover.name} (${mover.id}) is moving its volume ${clash[0]} to (migrate job ${move.id})`
            : `a path another instance is moving to (migrate job ${move.id})`;
        taken.push({ path: `hostPaths.${name}`, message: `volume ${name}: ${p} overlaps ${owner}` });
      }
    }
    if (taken.length) {
      throw new CairnError('conflict', `host paths on node ${node.id} are taken: ${taken.map((d) => d.message).join('; ')}`, { details: taken });
    }

    return {
      source,
      target: source,
      params: { mode: 'move', sourceInstanceId: source.id, targetNodeId: node.id, hostPaths, ...(backup ? { fromBackupId: backup.id } : {}) },
    };
  }

  /** Another instance is named to admins and within the tenant; to a member it is someone else's otherwise. */
  private mayName(actor: Actor, source: InstanceRow, tenantId: string): boolean {
    return isAdmin(actor) || tenantId === source.tenantId;
  }
}

function requireCompleted(backup: Pick<Backup, 'id' | 'status'>): void {
  if (backup.status !== 'completed') {
    throw new CairnError('conflict', `backup ${backup.id} is ${backup.status}: only a completed backup can be migrated`, {
      details: { status: backup.status },
    });
  }
}

/** The migrate (preferred: it is what holds the instance) or backup/restore in flight on an instance; one per instance at a time. */
async function activeJobOf(tx: RecordSet, instanceId: string): Promise<Job | null> {
  const migrate = await tx.jobs.findFirst({ type: 'migrate', touchesInstance: instanceId, status: ACTIVE_JOB_STATUSES }, { order: 'asc' });
  return migrate ?? activeInstanceJob(tx, instanceId);
}
