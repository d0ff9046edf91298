import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { JobsOptions, Queue } from 'bullmq';
import {
  CairnError,
  createLogger,
  MemoryRecords,
  newId,
  type Backup,
  type ControlJobName,
  type ControlJobPayload,
  type NodeJobName,
  type NodeJobPayload,
} from '@cairn/core';
import type { CreateInstanceBody, InstanceView } from '@cairn/core/api/index.ts';
import { encodeIndex, packArchive } from '@cairn/core/archive/index.ts';
import { MemoryObjectStore } from '@cairn/core/storage/memory.object-store.ts';
import type { CancelOutcome, QueuePort } from '@cairn/gateway/queue/queue-client.ts';
import type { Actor } from '@cairn/gateway/services/actor.ts';
import { BackupFilesService } from '@cairn/gateway/services/backup-files.service.ts';
import { BackupObjects } from '@cairn/gateway/services/backup-objects.ts';
import { BackupService } from '@cairn/gateway/services/backup.service.ts';
import { InstanceService } from '@cairn/gateway/services/instance.service.ts';
import { JobService } from '@cairn/gateway/services/job.service.ts';
import { NodeService } from '@cairn/gateway/services/node.service.ts';
import { RestoreService } from '@cairn/gateway/services/restore.service.ts';
import { TokenService } from '@cairn/gateway/services/token.service.ts';

/**
 * The gateway's services over in-memory records and object store and a fake queue: the unit tier
 * (no Postgres, Redis or S3). Everything the services wrote can be read back from `records`,
 * `store` and `queues`.
 */

/** A QueuePort that records what was asked of it; `down` and `lose*` make it fail like a lost Redis. */
export class FakeQueues implements QueuePort {
  readonly nodeJobs: { nodeId: string; name: NodeJobName; payload: NodeJobPayload; opts?: JobsOptions }[] = [];
  readonly controlJobs: { name: ControlJobName; payload: ControlJobPayload; jobId: string; opts?: JobsOptions }[] = [];
  readonly cancels: { queueName: string; jobId: string; reason: string }[] = [];
  /** What `cancel` answers: removed from the queue (waiting), signalled (running) or gone. */
  cancelOutcome: CancelOutcome = 'removed';
  /** Redis is down: `ready` and every call fail with `unavailable`. */
  down = false;
  /** Redis answers `ready` but loses enqueues. */
  loseEnqueues = false;
  queueCounts: Record<string, Record<string, number>> = {};
  /** Runs inside `ready()`: after a service's checks, before it writes (to change the world in between). */
  onReady?: () => Promise<void>;

  async enqueueNode(nodeId: string, name: NodeJobName, payload: NodeJobPayload, opts?: JobsOptions): Promise<void> {
    this.check(true);
    this.nodeJobs.push({ nodeId, name, payload, opts });
  }

  async enqueueControl(name: ControlJobName, payload: ControlJobPayload, jobId: string, opts?: JobsOptions): Promise<void> {
    this.check(true);
    this.controlJobs.push({ name, payload, jobId, opts });
  }

  async cancel(queueName: string, jobId: string, reason: string): Promise<CancelOutcome> {
    this.check(false);
    this.cancels.push({ queueName, jobId, reason });
    return this.cancelOutcome;
  }

  async counts(queueName: string): Promise<Record<string, number>> {
    this.check(false);
    return this.queueCounts[queueName] ?? {};
  }

  queue(name: string): Queue {
    throw new Error(`FakeQueues.queue(${name}): not used by the gateway's services`);
  }

  async ready(): Promise<void> {
    this.check(false);
    await this.onReady?.();
  }

  private check(enqueue: boolean): void {
    if (this.down || (enqueue && this.loseEnqueues)) throw new CairnError('unavailable', 'redis unavailable: connection lost');
  }
}

export const admin: Actor = { tokenId: 'token-admin', role: 'admin', tenantId: null };

export function member(tenantId: string, tokenId = `token-member-${tenantId}`): Actor {
  return { tokenId, role: 'member', tenantId };
}

export interface GatewayFixtureOptions {
  manualBackupLimit?: number;
}

export function gatewayFixture(options: GatewayFixtureOptions = {}) {
  const clock = { now: new Date('2026-12-01T12:00:00.000Z') };
  const now = () => new Date(clock.now);
  const records = new MemoryRecords({ clock: now });
  const store = new MemoryObjectStore({ name: 'unit' });
  const queues = new FakeQueues();
  const logger = createLogger({ level: 'silent' });
  const removedSchedulers: string[] = [];
  const schedulers = {
    async removeScheduler(scheduleId: string) {
      if (queues.down) throw new CairnError('unavailable', 'redis unavailable: connection lost');
      removedSchedulers.push(scheduleId);
    },
  };
  const config = { COMPRESSION: 'gzip', MANUAL_BACKUP_LIMIT: options.manualBackupLimit ?? 3 } as const;
  const instances = new InstanceService({ records, queues, objects: new BackupObjects(store), schedulers, logger, now });
  const backups = new BackupService({ records, queues, instances, config, logger, now });
  const files = new BackupFilesService({ store, backups, logger });
  const restores = new RestoreService({ records, queues, instances, backups, files, logger });
  const jobs = new JobService({ records, queues, logger, pollIntervalMs: 5 });
  const nodes = new NodeService({ records, now });
  const tokens = new TokenService({ records, logger, now, touchIntervalMs: 60_000 });

  const fixture = {
    clock,
    records,
    store,
    queues,
    logger,
    removedSchedulers,
    instances,
    backups,
    files,
    restores,
    jobs,
    nodes,
    tokens,
    /** A node that heartbeated just now, with these volume roots. */
    node(id: string, volumeRoots: string[], heartbeatAgoMs: number | null = 0) {
      return records.seedNode({
        id,
        volumeRoots,
        version: 'test',
        lastHeartbeatAt: heartbeatAgoMs === null ? null : new Date(clock.now.getTime() - heartbeatAgoMs),
        capacity: { roots: Object.fromEntries(volumeRoots.map((r) => [r, { freeBytes: 1e9, totalBytes: 2e9 }])) },
      });
    },
    tenant(name: string) {
      return records.seedTenant({ id: newId(), name });
    },
    /** Registers an instance as the admin (tenant by name) or as a member (own tenant). */
    instance(body: Partial<CreateInstanceBody> & { nodeId: string }, actor: Actor = admin): Promise<InstanceView> {
      return instances.register(actor, {
        name: body.name ?? `app-${newId().slice(-6).toLowerCase()}`,
        nodeId: body.nodeId,
        volumes: body.volumes ?? [{ name: 'data', hostPath: '/srv/a/data' }],
        ...(body.tenant !== undefined ? { tenant: body.tenant } : actor.role === 'admin' ? { tenant: 'acme' } : {}),
      });
    },
    /** Marks a backup and its job as a worker would on success. */
    async complete(backupId: string, jobId: string) {
      await records.backups.transition(backupId, ['pending', 'running'], 'completed', { completedAt: now(), sizeBytes: 10n, sha256: 'x' });
      await records.jobs.transition(jobId, ['queued', 'running'], 'succeeded');
    },
    /**
     * Packs `tree` (volume → relative path → content) with the archive engine and stores the
     * archive and its index under the backup's keys, as a node worker leaves them.
     */
    async storeArchive(backup: Backup, tree: Record<string, Record<string, string>>): Promise<Buffer> {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-unit-gw-'));
      try {
        for (const [volume, files] of Object.entries(tree)) {
          fs.mkdirSync(path.join(dir, volume), { recursive: true });
          for (const [rel, content] of Object.entries(files)) {
            fs.mkdirSync(path.dirname(path.join(dir, volume, rel)), { recursive: true });
            fs.writeFileSync(path.join(dir, volume, rel), content);
          }
        }
        const chunks: Buffer[] = [];
        const sink = new Writable({
          write(chunk: Buffer, _enc, cb) {
            chunks.push(chunk);
            cb();
          },
        });
        const volumes = Object.keys(tree).map((name) => ({ name, dir: path.join(dir, name) }));
        const result = await packArchive({ volumes, codec: 'gzip', blockSize: 4096, concurrency: 1, meta: { backupId: backup.id } }, sink);
        const archive = Buffer.concat(chunks);
        await store.put(backup.storageKey, archive);
        await store.put(backup.indexKey, encodeIndex(result.index));
        result.close();
        return archive;
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  return fixture;
}

export type GatewayFixture = ReturnType<typeof gatewayFixture>;

/** The CairnError a promise rejects with (fails the test when it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<CairnError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof CairnError) return err;
    throw err;
  }
  throw new Error('expected a rejection, but the promise resolved');
}
