import { CairnError, activeInstanceJob, newId, nodeQueueName, type Logger, type Records, failUnqueued } from '@cairn/core';
import type { JobView, RestoreBody } from '@cairn/core/api/index.ts';
import { validationError } from '../http/validation.ts';
import { toCairnError } from '../middleware/error-handler.ts';
import type { QueuePort } from '../queue/queue-client.ts';
import type { Actor } from './actor.ts';
import type { BackupFilesService } from './backup-files.service.ts';
import { busyInstanceError, type BackupService } from './backup.service.ts';
import type { InstanceService } from './instance.service.ts';
import { jobView } from './presenters.ts';

export interface RestoreServiceOptions {
  records: Records;
  queues: QueuePort;
  instances: InstanceService;
  backups: BackupService;
  files: BackupFilesService;
  logger: Logger;
}

/**
 * Restore requests (SPEC §7): everything a worker would only discover late is checked here —
 * the backup is completed, the target is visible, every restored volume exists on the target,
 * every path is in the backup — then one Job row is written and enqueued on the target's node.
 * A dry run (`dryRun: true`) is the same job with the same checks, reporting what the restore would
 * create, change and delete (restore-changes.ts on the node) without writing or holding anything.
 */
export class RestoreService {
  private readonly records: Records;
  private readonly queues: QueuePort;
  private readonly instances: InstanceService;
  private readonly backups: BackupService;
  private readonly files: BackupFilesService;
  private readonly logger: Logger;

  constructor(options: RestoreServiceOptions) {
    this.records = options.records;
    this.queues = options.queues;
    this.instances = options.instances;
    this.backups = options.backups;
    this.files = options.files;
    this.logger = options.logger;
  }

  async start(actor: Actor, backupId: string, body: RestoreBody): Promise<JobView> {
    const backup = await this.backups.findVisible(actor, backupId);
    if (backup.status !== 'completed') {
      throw new CairnError('conflict', `backup ${backup.id} is ${backup.status}: only completed backups can be restored`, {
        details: { status: backup.status },
      });
    }
    const target = await this.instances.findVisible(actor, body.targetInstanceId ?? backup.instanceId);

    const problems: { path: string; message: string }[] = [];
    const inBackup = backup.volumes;
    body.volumes?.forEach((v, i) => {
      if (!inBackup.includes(v)) problems.push({ path: `volumes.${i}`, message: `backup ${backup.id} has no volume ${v} (it has ${inBackup.join(', ')})` });
    });
    const pathVolume = (p: string) => p.split('/')[0]!;
    body.paths?.forEach((p, i) => {
      const v = pathVolume(p);
      if (body.volumes ? !body.volumes.includes(v) : !inBackup.includes(v)) {
        problems.push({
          path: `paths.${i}`,
          message: `${p} is not inside ${body.volumes ? 'a selected volume' : 'a volume of the backup'} (${(body.volumes ?? inBackup).join(', ')})`,
        });
      }
    });
    if (problems.length) throw validationError('request', problems);

    const volumes = body.volumes ?? (body.paths ? [...new Set(body.paths.map(pathVolume))] : [...inBackup]);
    const onTarget = new Set(target.volumes.map((v) => v.name));
    const missing = volumes.flatMap((v) => {
      if (onTarget.has(v)) return [];
      const at = body.volumes ? `volumes.${body.volumes.indexOf(v)}` : body.targetInstanceId ? 'targetInstanceId' : 'volumes';
      return [{ path: at, message: `target instance ${target.name} has no volume named ${v}` }];
    });
    if (missing.length) throw validationError('request', missing);
    if (body.paths) await this.files.assertPaths(backup, body.paths);
    await this.queues.ready();

    const mode = body.mode ?? 'replace';
    const jobId = newId();
    const job = await this.records.transaction(async (tx) => {
      // Lock order backup → instance everywhere, so a concurrent delete or backup cannot interleave.
      await tx.lock('backup', backup.id);
      const current = await tx.backups.get(backup.id);
      if (current?.status !== 'completed') {
        throw new CairnError('conflict', `backup ${backup.id} is ${current?.status ?? 'gone'}: only completed backups can be restored`, {
          details: { status: current?.status },
        });
      }
      // A dry run reads only: it neither waits for nor holds the target (issue 15).
      if (!body.dryRun) {
        await tx.lock('instance', target.id);
        const active = await activeInstanceJob(tx, target.id);
        if (active) throw busyInstanceError(target.name, active);
      }
      return tx.jobs.create({
        id: jobId,
        type: 'restore',
        status: 'queued',
        instanceId: backup.instanceId,
        backupId: backup.id,
        targetInstanceId: target.id,
        nodeId: target.nodeId,
        queue: nodeQueueName(target.nodeId),
        params: { volumes, ...(body.paths ? { paths: body.paths } : {}), mode, ...(body.dryRun ? { dryRun: true } : {}) },
        requestedBy: actor.tokenId,
      });
    });

    try {
      await this.queues.enqueueNode(target.nodeId, 'restore', { jobId });
    } catch (err) {
      const reason = `could not enqueue the restore: ${toCairnError(err).message}`;
      await failUnqueued(this.records, this.logger, { jobId }, reason);
      throw new CairnError('unavailable', reason, { cause: err, details: { jobId } });
    }
    this.logger.info(
      { jobId, backupId: backup.id, targetInstanceId: target.id, nodeId: target.nodeId, volumes, paths: body.paths?.length ?? 0, mode, by: actor.tokenId },
      body.dryRun ? 'restore dry run requested' : 'restore requested',
    );
    return jobView(job);
  }
}
