import {
  CairnError,
  DEFAULT_FULL_BACKUP_EVERY,
  DEFAULT_INCREMENTAL_REHASH_SHARE,
  abortIncompleteUploads,
  backupPrefix,
  enqueueManualRetention,
  enqueueRetention,
  manifestKey,
  manualPolicyOf,
  streamInto,
  type Backup,
  type Config,
} from '@cairn/core';
import { pipeline } from 'node:stream';
import { encryptionOf, keyringOf, openIndexObject, sealIndexStream } from '@cairn/core';
import { packArchive, putFromThread, readIndex, type PackParent, type PackResult, type StreamedIndex } from '@cairn/core/archive/index.ts';
import { decideBackupKind, type KindChoice } from '@cairn/core/domain/backup-kind.ts';
import { referenceParent, releaseArchiveObjects } from '@cairn/core/domain/object-references.ts';
import type { JobRun, JobWork, WorkOutcome } from '../job-lifecycle.ts';
import { writeWithRetry } from '../job-lifecycle.ts';
import type { Failure } from '../job-outcome.ts';
import { recordBackupManifest } from './backup-manifest.ts';
import { hookEnvOf } from './hooks/node-hooks.ts';
import { runWithHooks, type Hooked } from './hooks/run-with-hooks.ts';
import type { NodeContext } from './node-context.ts';
import { isEmptyDir, resolveVolumeDir } from './volume-dirs.ts';

const CONTENT_TYPE = { zstd: 'application/zstd', gzip: 'application/gzip', none: 'application/x-tar' } as const;

/** At most this many warnings are written to the Backup row; the index keeps all of them. */
export const ROW_WARNINGS_MAX = 1000;

export interface BackupResult {
  backupId: string;
  kind: Backup['kind'];
  parentId: string | null;
  storedBytes: number | null;
  logicalBytes: number | null;
  reusedBytes: number | null;
  fileCount: number | null;
  warnings: number;
}

type Warning = { path: string; code: string; message: string };
type Source = { name: string; dir: string; excludes: string[] };

/** The archive format versions an incremental backup can build on (change detection and frames cut at entry boundaries). */
const PARENT_INDEX_VERSIONS: readonly number[] = [2];

/**
 * The incremental settings: a node worker's context carries the whole configuration, a test's may
 * leave them out (the configuration's defaults then).
 */
type IncrementalConfig = Partial<Pick<Config, 'FULL_BACKUP_EVERY' | 'INCREMENTAL_REHASH_SHARE'>>;

/**
 * The backup pipeline of SPEC §6 for one Job, as a unit of work of the job lifecycle: resolve
 * volumes, pack them into a block-compressed archive streamed straight into a multipart upload,
 * upload the index, then conditionally mark the Backup completed. Safe to run again after a
 * crash: the Backup row is reused and a previous attempt's incomplete upload is aborted first.
 * Once the Backup is `completed` its objects are never removed by this pipeline.
 *
 * An incremental backup (SPEC §5) first makes its parent's objects its own to read: it reads the
 * parent's index (format 2, same codec), then records its references with referenceParent (under
 * the GC lock, refused when the parent is no longer completed) before the pack may point at any
 * byte of them. When the parent cannot be used the backup is written as a full one instead: the
 * row turns `full` without a parent and carries a `parent-unusable` warning. A scheduled backup
 * is `auto`: its kind is decided when its job first starts (the firing writes it `full`).
 * References are idempotent, so a retry references again; a final failure releases them.
 */
export class BackupJob implements JobWork<BackupResult> {
  private backup: Backup | undefined;
  /** This run set the Backup `running`: a failure is its to record. */
  private started = false;
  /** An index of this attempt may exist in the store. */
  private indexUploaded = false;
  /** Warnings about the backup itself (a parent it could not use), kept on the row across attempts. */
  private readonly notes: Warning[] = [];

  constructor(private readonly ctx: NodeContext) {}

  async run(run: JobRun): Promise<WorkOutcome<BackupResult>> {
    const { records } = this.ctx;
    this.notes.length = 0;
    let backup = run.job?.backupId ? await records.backups.get(run.job.backupId) : null;
    if (!backup) throw new CairnError('not-found', `job ${run.jobId} has no backup record`);
    this.backup = backup;
    // An earlier run completed the backup and stopped before recording it on the Job.
    if (backup.status === 'completed') {
      // Its run may have died before writing the catalog manifest: write it when it is missing.
      const manifest = await this.ctx.store.head(manifestKey(backup.instanceId, backup.id)).catch(() => null);
      if (!manifest) await recordBackupManifest(this.ctx, backup.id, run.log);
      return succeeded(resultOf(backup));
    }
    if (backup.status !== 'pending' && backup.status !== 'running') return { status: 'cancelled', reason: `backup is ${backup.status}` };
    // A scheduled backup not started before is `auto`: decided now, written with the start (once:
    // a retry finds startedAt set and keeps what was decided, a fallback to full included).
    const auto = backup.trigger === 'schedule' && !backup.startedAt && backup.kind === 'full' && !backup.parentId ? await this.chooseKind(backup) : undefined;
    const kindChange = auto ? { kind: auto.kind, parentId: auto.parentId } : {};
    if (
      !(await records.backups.transition(backup.id, ['pending', 'running'], 'running', {
        startedAt: backup.startedAt ?? new Date(),
        error: null,
        ...kindChange,
      }))
    ) {
      // Deleted, cancelled or completed between the two reads.
      const current = await records.backups.get(backup.id);
      return { status: 'cancelled', reason: `backup is ${current?.status ?? 'missing'}` };
    }
    this.started = true;
    if (auto) {
      backup = { ...backup, ...kindChange };
      this.backup = backup;
      run.log.info({ backupId: backup.id, kind: auto.kind, parentId: auto.parentId, why: auto.reason }, 'scheduled backup kind chosen');
    }
    // An earlier attempt fell back to a full backup: its note stays on the row.
    this.notes.push(...rowWarningsOf(backup).filter((w) => w.code === 'parent-unusable'));

    run.progress('preparing');
    const { sources, warnings } = await this.resolveSources(backup);
    for (const upload of await abortIncompleteUploads(this.ctx.store, backupPrefix(backup.instanceId, backup.id))) {
      run.log.info({ key: upload.key }, 'aborted an incomplete upload left by an earlier attempt');
    }
    const prepared = backup.kind === 'incremental' ? await this.prepareParent(backup, run) : undefined;
    if (!prepared) backup = this.backup!; // as it stands: an incremental may have fallen back to full
    const parent = prepared?.parent;
    // Encryption at rest (issue 14): a fresh data key for this attempt, wrapped on the row before a byte is stored.
    const dataKey = keyringOf(this.ctx.config as never)?.newDataKey(backup.id);
    if (!(await records.backups.transition(backup.id, ['running'], 'running', { encryption: dataKey?.encryption ?? { mode: 'none' } }))) {
      prepared?.index.entries.close();
      return this.lostRace(backup, run);
    }
    const seal = dataKey ? { key: dataKey.key, object: backup.id } : undefined;
    let packed: PackResult;
    let hookWarnings: Warning[];
    try {
      // The instance's pre hook runs before the first byte is read, its post hook once the archive is stored (issue 13).
      const hooked = await this.withHooks(backup, run, () => this.packAndUpload(backup, sources, run, parent, seal));
      packed = hooked.value;
      hookWarnings = hooked.warnings.map((w) => ({ path: '', code: w.code, message: w.message }));
    } finally {
      prepared?.index.entries.close();
    }
    // The index may point only into objects this backup holds a reference to: anything else could
    // be collected under it.
    const allowed = new Set(parent?.objects ?? []);
    const stray = packed.objects.filter((o) => !allowed.has(o));
    if (stray.length) {
      packed.close();
      throw new CairnError('internal', `the archive points into archive objects of backups it holds no reference to: ${stray.join(', ')}`);
    }

    run.progress('uploading-index');
    this.indexUploaded = true;
    // Streamed from the pack's temporary file: memory does not grow with the number of files.
    try {
      const index = packed.indexStream();
      if (seal) {
        const sealed = sealIndexStream(seal.key, seal.object);
        pipeline(index, sealed, () => undefined);
        await this.ctx.store.put(backup.indexKey, sealed, { signal: run.signal, contentType: 'application/octet-stream' });
      } else {
        await this.ctx.store.put(backup.indexKey, index, { signal: run.signal, contentType: 'application/gzip' });
      }
    } finally {
      packed.close();
    }

    const allWarnings = [...this.notes, ...warnings, ...hookWarnings, ...packed.warnings];
    // Its objects are stored: committed as soon as Postgres lets us, however long it is away (within DB_OUTAGE_TOLERANCE).
    const completedAt = new Date();
    const completed = await writeWithRetry(
      `backup ${backup.id} completed`,
      () =>
        records.backups.transition(backup.id, ['running'], 'completed', {
          completedAt,
          format: packed.head.version,
          sizeBytes: BigInt(packed.storedBytes),
          logicalBytes: BigInt(packed.logicalBytes),
          reusedBytes: BigInt(packed.reusedBytes),
          fileCount: packed.fileCount,
          sha256: packed.sha256,
          warnings: rowWarnings(allWarnings),
          error: null,
        }),
      run.log,
      { outlastOutagesMs: run.outageToleranceMs },
    );
    if (!completed) return this.lostRace(backup, run);
    this.started = false; // completed: from here on nothing of it is undone
    await recordBackupManifest(this.ctx, backup.id, run.log); // issue 14: what a catalog rebuild reads
    run.progress('done');
    if (backup.trigger === 'schedule' && backup.scheduleId) {
      // Best effort: the periodic retention run catches up if this enqueue fails.
      await enqueueRetention(this.ctx.queues, backup.scheduleId).catch((err: Error) => run.log.warn({ err: err.message }, 'could not enqueue retention'));
    } else if (backup.trigger === 'manual') {
      // The instance's manual retention policy, if it has one (issue 13), likewise after each manual backup.
      await this.ctx.records.policies
        .get(backup.instanceId)
        .then((policy) => (manualPolicyOf(policy) ? enqueueManualRetention(this.ctx.queues, backup.instanceId) : undefined))
        .catch((err: Error) => run.log.warn({ err: err.message }, 'could not enqueue manual retention'));
    }
    return succeeded({
      backupId: backup.id,
      kind: backup.kind,
      parentId: backup.parentId,
      storedBytes: packed.storedBytes,
      logicalBytes: packed.logicalBytes,
      reusedBytes: packed.reusedBytes,
      fileCount: packed.fileCount,
      warnings: allWarnings.length,
    });
  }

  /**
   * After a failure: the multipart upload was aborted by put(); an index of this attempt must not
   * outlive it. The Backup goes back to `pending` for a retry (its references kept: the retry
   * references again, idempotently), else ends `failed`/`cancelled` and releases what it referenced.
   */
  async onFailure(failure: Failure, run: JobRun): Promise<undefined> {
    const backup = this.backup;
    if (!backup || !this.started) return;
    const { records } = this.ctx;
    if (this.indexUploaded || failure.kind !== 'retry') await this.removeObjectsUnlessCompleted(backup, run);
    const message = failure.error.message;
    await writeWithRetry(
      `backup ${backup.id} after a failure`,
      () =>
        failure.kind === 'retry'
          ? records.backups.transition(backup.id, ['running'], 'pending', { error: message })
          : records.backups.transition(backup.id, ['pending', 'running'], failure.kind === 'cancelled' ? 'cancelled' : 'failed', {
              error: message,
              completedAt: new Date(),
            }),
      run.log,
      { outlastOutagesMs: run.outageToleranceMs },
    );
    if (failure.kind !== 'retry') await this.releaseReferences(backup, run);
  }

  /** The kind of a scheduled (auto) backup, as the gateway decides a manual one's. */
  private async chooseKind(backup: Backup): Promise<KindChoice> {
    const instance = await this.ctx.records.instances.get(backup.instanceId);
    const instanceVolumes = (instance?.volumes ?? []).map((v) => v.name).sort();
    return decideBackupKind(this.ctx.records.backups, backup.instanceId, {
      requested: 'auto',
      volumes: backup.volumes.length ? backup.volumes : instanceVolumes,
      instanceVolumes,
      compression: backup.compression,
      fullEvery: this.settings().FULL_BACKUP_EVERY ?? DEFAULT_FULL_BACKUP_EVERY,
    });
  }

  private settings(): IncrementalConfig {
    return this.ctx.config as NodeContext['config'] & IncrementalConfig;
  }

  /**
   * The parent of an incremental backup, ready for the pack: its index read (format 2, same
   * codec) and its objects referenced. The index is read first so that a parent that cannot be
   * used leaves no reference behind; a parent deleted meanwhile is refused by referenceParent,
   * whose references then keep every object the index points into alive. When the parent cannot
   * be used the backup falls back to a full one (undefined); transient failures (database or
   * store unavailable, cancel) are thrown for the job to retry.
   */
  private async prepareParent(backup: Backup, run: JobRun): Promise<{ parent: PackParent; index: StreamedIndex } | undefined> {
    const { records, store } = this.ctx;
    const parentId = backup.parentId;
    let index: StreamedIndex | undefined;
    try {
      if (!parentId) throw unusable('the backup names no parent (its row is gone)');
      const parent = await records.backups.get(parentId);
      if (!parent) throw unusable(`parent backup ${parentId} no longer exists`);
      if (parent.status !== 'completed') throw unusable(`parent backup ${parentId} is ${parent.status}`);
      if (parent.verifyStatus === 'failed') throw unusable(`parent backup ${parentId} failed verification`);
      if (parent.compression !== backup.compression)
        throw unusable(`parent backup ${parentId} uses codec ${parent.compression}, this one ${backup.compression}`);
      const keyring = keyringOf(this.ctx.config as never);
      if ((encryptionOf(parent.encryption) !== undefined) !== (keyring !== undefined))
        throw unusable(`parent backup ${parentId} is ${encryptionOf(parent.encryption) ? '' : 'not '}encrypted; this backup ${keyring ? 'is' : 'is not'}`);
      index = await readIndex(openIndexObject(keyring, parent, await store.get(parent.indexKey, { signal: run.signal })));
      if (!PARENT_INDEX_VERSIONS.includes(index.version)) throw unusable(`the index of parent backup ${parentId} is in archive format ${index.version}`);
      if (index.codec !== backup.compression)
        throw unusable(`the index of parent backup ${parentId} has codec ${index.codec}, this backup ${backup.compression}`);
      // Frames in the object of a backup that failed verification (issue 14) are not reused: the pack reads those files again.
      const referenced = await referenceParent(records, { backupId: backup.id, parentId });
      const damaged = new Set((await records.backups.find({ ids: referenced, verifyStatus: 'failed' })).map((b) => b.id));
      const objects = referenced.filter((id) => !damaged.has(id));
      const rehashShare = this.settings().INCREMENTAL_REHASH_SHARE ?? DEFAULT_INCREMENTAL_REHASH_SHARE;
      run.log.info({ backupId: backup.id, parentId, objects }, 'incremental backup: parent referenced');
      return { parent: { id: parentId, index, objects, rehashShare }, index };
    } catch (err) {
      index?.entries.close();
      const reason = unusableReason(err, run.signal);
      if (reason === null) throw err;
      await this.fallBackToFull(backup, reason, run);
      return undefined;
    }
  }

  /** The row turns `full` without a parent, with a warning saying why; the pack then reads every file. */
  private async fallBackToFull(backup: Backup, reason: string, run: JobRun): Promise<void> {
    const note: Warning = {
      path: '',
      code: 'parent-unusable',
      message: `written as a full backup: parent backup ${backup.parentId ?? '(none)'} cannot be used: ${reason}`,
    };
    this.notes.push(note);
    run.log.warn({ backupId: backup.id, parentId: backup.parentId, reason }, 'incremental backup falls back to a full one');
    // Not running any more (deleted or cancelled meanwhile): the completion finds out and cleans up.
    await writeWithRetry(
      `backup ${backup.id} falls back to full`,
      () => this.ctx.records.backups.updateWhere({ id: backup.id, status: 'running' }, { kind: 'full', parentId: null, warnings: this.notes }),
      run.log,
      { outlastOutagesMs: run.outageToleranceMs },
    );
    this.backup = { ...backup, kind: 'full', parentId: null };
  }

  /**
   * A backup that ended failed or cancelled gives up the archive objects it referenced (its parent's
   * and those the parent reads from): an object only it kept alive is deleted now. Best effort: a
   * later deletion of the backup releases them too.
   */
  private async releaseReferences(backup: Backup, run: JobRun): Promise<void> {
    try {
      if ((await this.ctx.records.backups.referencedOwners(backup.id)).length === 0) return;
      const report = await releaseArchiveObjects(this.ctx.records, this.ctx.store, backup.id);
      run.log.info(
        { backupId: backup.id, deleted: report.deleted.map((d) => d.key), kept: report.kept.map((d) => d.ownerId) },
        'released the archive objects a failed backup referenced',
      );
    } catch (err) {
      run.log.warn({ err: (err as Error).message, backupId: backup.id }, 'could not release the archive objects of a failed backup; its deletion will');
    }
  }

  /** The chosen volumes that have data; volume-level notes (skipped, empty) become warnings. */
  private async resolveSources(backup: Backup): Promise<{ sources: Source[]; warnings: Warning[] }> {
    const instance = await this.ctx.records.instances.get(backup.instanceId);
    if (!instance) throw new CairnError('not-found', `instance ${backup.instanceId} of backup ${backup.id} no longer exists`);
    const chosen = backup.volumes.length ? instance.volumes.filter((v) => backup.volumes.includes(v.name)) : instance.volumes;
    const resolved = await Promise.all(chosen.map((v) => resolveVolumeDir(v, this.ctx.volumeRoots)));
    const warnings: Warning[] = [];
    const sources: Source[] = [];
    for (const v of resolved) {
      if (v.status === 'skipped') warnings.push({ path: v.name, code: 'volume-skipped', message: v.reason });
      else if (await isEmptyDir(v.dir)) warnings.push({ path: v.name, code: 'volume-empty', message: `volume ${v.name} has no data` });
      else sources.push({ name: v.name, dir: v.dir, excludes: v.excludes });
    }
    if (sources.length === 0) {
      throw new CairnError('no-data', `nothing to back up: ${warnings.map((w) => w.message).join('; ') || 'the instance has no volumes'}`);
    }
    return { sources, warnings };
  }

  /** `work` between the instance's preBackup and postBackup hooks (none: just `work`). */
  private async withHooks(backup: Backup, run: JobRun, work: () => Promise<PackResult>): Promise<Hooked<PackResult>> {
    const instance = await this.ctx.records.instances.get(backup.instanceId);
    if (!instance) throw new CairnError('not-found', `instance ${backup.instanceId} of backup ${backup.id} no longer exists`);
    return runWithHooks(
      hookEnvOf(this.ctx),
      {
        instance,
        stage: 'backup',
        job: { id: run.jobId!, attempt: run.attempt, backupId: backup.id },
        signal: run.signal,
        progress: (stage) => run.progress(stage),
        discard: (packed: PackResult) => packed.close(),
        // A migrate's cutover backup: the application stays quiesced until the migrate thaws it.
        hold: (run.job?.params as { holdQuiesce?: unknown } | null)?.holdQuiesce === true,
      },
      work,
    );
  }

  /** The archive packed straight into its upload; the two run together and stop together. */
  private async packAndUpload(
    backup: Backup,
    sources: Source[],
    run: JobRun,
    parent: PackParent | undefined,
    seal: { key: Buffer; object: string } | undefined,
  ): Promise<PackResult> {
    const codec = backup.compression as keyof typeof CONTENT_TYPE;
    const { produced, consumed } = await streamInto(
      (sink, signal) =>
        packArchive(
          {
            volumes: sources,
            codec,
            level: this.ctx.config.COMPRESSION_LEVEL,
            blockSize: this.ctx.config.ARCHIVE_BLOCK_SIZE,
            signal,
            meta: { backupId: backup.id, instanceId: backup.instanceId, nodeId: this.ctx.nodeId },
            onProgress: (p) => run.progress('archiving', p),
            ...(parent ? { parent } : {}),
            ...(seal ? { seal } : {}),
          },
          sink,
        ),
      // By the store thread unless STORE_THREAD=false: the pack's frames are handed to it, not left as garbage here.
      (source, signal) =>
        this.ctx.config.STORE_THREAD === false
          ? this.ctx.store.put(backup.storageKey, source, { signal, contentType: CONTENT_TYPE[codec] })
          : putFromThread(this.ctx.store, backup.storageKey, source, { signal, contentType: CONTENT_TYPE[codec] }),
      { signal: run.signal, discard: (packed) => packed.close() },
    );
    if (consumed.size !== produced.storedBytes) {
      produced.close();
      throw new CairnError('archive-corrupt', `stored object is ${consumed.size} bytes, the archive was ${produced.storedBytes}`, { permanent: false });
    }
    return produced;
  }

  /** The Backup could not be completed: another run completed it, or it was deleted or cancelled meanwhile. */
  private async lostRace(backup: Backup, run: JobRun): Promise<WorkOutcome<BackupResult>> {
    const current = await this.ctx.records.backups.get(backup.id);
    this.started = false;
    // A stalled copy of this job completed it: the row describes its objects.
    if (current?.status === 'completed') return succeeded(resultOf(current));
    // Never flip it back; remove what was uploaded. A deleting backup's cleanup releases what it
    // referenced; a failed or cancelled one (a sweep, a cancel) has nobody else to do it.
    await this.ctx.store.deleteMany([backup.storageKey, backup.indexKey]);
    if (current?.status === 'failed' || current?.status === 'cancelled') await this.releaseReferences(backup, run);
    return { status: 'cancelled', reason: `backup became ${current?.status ?? 'missing'} while running; its objects were removed` };
  }

  /**
   * Removes this backup's objects after a failure, unless the Backup is (by now) completed: then
   * they are what its row describes. When its state cannot be read they stay for the orphan sweep.
   */
  private async removeObjectsUnlessCompleted(backup: Backup, run: JobRun): Promise<void> {
    let status: string | undefined;
    try {
      status = (await this.ctx.records.backups.get(backup.id))?.status;
    } catch (err) {
      run.log.warn({ err: (err as Error).message, backupId: backup.id }, 'backup state unreadable; its objects are left to the orphan sweep');
      return;
    }
    if (!status || status === 'completed') return;
    const { failed } = await this.ctx.store.deleteMany([backup.storageKey, backup.indexKey]);
    if (failed.length) run.log.warn({ backupId: backup.id, failed }, 'objects of a failed backup not removed; the orphan sweep will');
  }
}

function succeeded(result: BackupResult): WorkOutcome<BackupResult> {
  return { status: 'succeeded', result };
}

function resultOf(b: Backup): BackupResult {
  return {
    backupId: b.id,
    kind: b.kind,
    parentId: b.parentId,
    storedBytes: b.sizeBytes === null ? null : Number(b.sizeBytes),
    logicalBytes: b.logicalBytes === null ? null : Number(b.logicalBytes),
    reusedBytes: b.reusedBytes === null ? null : Number(b.reusedBytes),
    fileCount: b.fileCount,
    warnings: Array.isArray(b.warnings) ? b.warnings.length : 0,
  };
}

/** A parent that cannot be used: the backup is written full instead. */
class ParentUnusable extends Error {}

function unusable(reason: string): ParentUnusable {
  return new ParentUnusable(reason);
}

/**
 * Why the parent cannot be used, or null when the failure is not the parent's (cancelled, the
 * database or the store unavailable: the job retries as it is).
 */
function unusableReason(err: unknown, signal: AbortSignal): string | null {
  if (signal.aborted) return null;
  if (err instanceof ParentUnusable) return err.message;
  // readIndex reports an index that does not decode or parse as `archive-corrupt`; a missing one is `not-found`.
  if (err instanceof CairnError) return err.permanent && err.code !== 'cancelled' ? err.message : null;
  return null;
}

function rowWarningsOf(b: Backup): Warning[] {
  return Array.isArray(b.warnings)
    ? (b.warnings as unknown[]).filter((w): w is Warning => !!w && typeof w === 'object' && typeof (w as Warning).code === 'string')
    : [];
}

function rowWarnings(all: Warning[]): Warning[] {
  if (all.length <= ROW_WARNINGS_MAX) return all;
  return [
    ...all.slice(0, ROW_WARNINGS_MAX),
    { path: '', code: 'warnings-truncated', message: `${all.length - ROW_WARNINGS_MAX} more warnings are listed in the backup's index` },
  ];
}
