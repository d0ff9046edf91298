import {
  archiveKey,
  cancelJob,
  CairnError,
  DEFAULT_FULL_BACKUP_EVERY,
  indexKey,
  migrateParams,
  nodeQueueName,
  type InstanceWithVolumes,
  type Job,
  type MigrateParams,
  type NodeJobName,
} from '@cairn/core';
import { decideBackupKind } from '@cairn/core/domain/backup-kind.ts';
import type { JobRun, JobWork, WorkOutcome } from '../job-lifecycle.ts';
import { writeWithRetry } from '../job-lifecycle.ts';
import type { Failure } from '../job-outcome.ts';
import type { ControlContext, ControlHandler } from './control-context.ts';

/**
 * Migrate (SPEC §8, issue 12), run by the control worker as a sequence of child Jobs linked by
 * `parentJobId`, each on the node queue that must run it:
 *
 * - copy: a backup on the source node (unless the migrate starts from a backup), then a restore
 *   on the target instance's node (`replace`, or `merge` of the chosen paths);
 * - move: a bulk backup on the source node while the instance keeps running, a restore of it into
 *   the target host paths on the target node (which must be missing or empty); then the cutover:
 *   a final incremental backup (the bulk one its parent), of which only the changes are applied
 *   over the bulk copy and the whole tree checked (node job apply, apply.job.ts), and in one
 *   transaction the instance's node and volume host paths switch to the target. The source's
 *   data is never touched.
 *
 * Resumable: a child's id is `<parent id>-<step>` and its Backup's likewise, so a run of the
 * migrate after a control worker died finds the children already made and waits for them
 * instead of starting them again. A failure or cancel before the switch leaves the instance on
 * the source, and a `discard` job on the target node removes what the move staged there.
 */
export const runMigrate: ControlHandler = (ctx, payload) => ({
  record: payload.jobId ? { kind: 'existing', jobId: payload.jobId } : { kind: 'none' },
  work: new MigrateJob(ctx),
});

type Counters = { bytesDone: number; bytesTotal: number; filesDone: number; filesTotal: number };

export interface MigrateResult {
  mode: MigrateParams['mode'];
  /** The child jobs, by step. */
  steps: Record<string, { jobId: string; backupId?: string | null }>;
  /** Move: the instance's node before and after, and how long the cutover took (ms). */
  fromNodeId?: string;
  toNodeId?: string;
  cutoverMs?: number;
  /** Move: the source's quiesced window (pre hook end to post hook start), when it has hooks. */
  quiescedMs?: number | null;
  notes?: string[];
}

const POLL_MS = 250;
/** How long a cancelled migrate waits for a running child to stop before it gives up waiting. */
const CANCEL_WAIT_MS = 60_000;
/** How long a failed move waits for its target node to remove what it staged (the node may be down). */
const DISCARD_WAIT_MS = 120_000;
/** How long a migrate waits for the source node to run the cutover's post hook. */
const THAW_WAIT_MS = 120_000;

class MigrateJob implements JobWork<MigrateResult> {
  private parent!: Job;
  private params!: MigrateParams;
  private readonly steps: MigrateResult['steps'] = {};
  /** Bytes of the children finished so far: the parent's progress sums its children. */
  private readonly finished = { bytes: 0, files: 0 };
  /** A move that may have written into the target host paths (and not switched yet). */
  private staged: { nodeId: string; hostPaths: Record<string, string> } | undefined;
  /** The cutover backup that holds the source's hook window open (move), and its node. */
  private held: { nodeId: string; jobId: string } | undefined;

  constructor(private readonly ctx: ControlContext) {}

  async run(run: JobRun): Promise<WorkOutcome<MigrateResult>> {
    if (!run.job) throw new CairnError('validation', 'a migrate job needs its Job row (payload jobId)');
    this.parent = run.job;
    const parsed = migrateParams.safeParse(run.job.params ?? {});
    if (!parsed.success) throw new CairnError('validation', `invalid migrate parameters: ${parsed.error.message}`);
    this.params = parsed.data;
    run.progress('preflight');
    const source = await this.ctx.records.instances.get(this.params.sourceInstanceId);
    if (!source) throw new CairnError('not-found', `instance ${this.params.sourceInstanceId} no longer exists`);
    return this.params.mode === 'copy' ? this.copy(run, source) : this.move(run, source);
  }

  async onFailure(failure: Failure, run: JobRun): Promise<undefined> {
    // A retry runs the same steps again (the children are found, not remade): keep what is staged.
    if (failure.kind === 'retry') return;
    // The application first: end the quiesced window if the cutover had begun.
    await this.thaw(run, { status: failure.kind === 'cancelled' ? 'cancelled' : 'failed', error: failure.error.message });
    // A baseline made for a cutover that did not happen describes nothing.
    if (this.parent)
      await this.ctx.records.backups
        .transition(`${this.parent.id}-baseline`, ['pending'], 'failed', { error: `the migrate ended: ${failure.error.message}`, completedAt: new Date() })
        .catch(() => undefined);
    if (!this.staged) return;
    const { nodeId, hostPaths } = this.staged;
    try {
      // Not under this run's signal: a cancelled migrate still cleans up.
      const instanceId = this.params.sourceInstanceId;
      await this.runChild(
        run,
        'discard',
        'discard',
        { type: 'cleanup', nodeId, instanceId, params: { hostPaths, jobPrefix: this.parent.id } },
        { cancellable: false, timeoutMs: DISCARD_WAIT_MS },
      );
    } catch (err) {
      run.log.warn({ err: (err as Error).message, nodeId, hostPaths }, 'could not remove what the migrate staged on the target node');
    }
  }

  private async copy(run: JobRun, source: InstanceWithVolumes): Promise<WorkOutcome<MigrateResult>> {
    const p = this.params;
    if (!p.targetInstanceId) throw new CairnError('validation', 'a copy needs targetInstanceId');
    const target = await this.ctx.records.instances.get(p.targetInstanceId);
    if (!target) throw new CairnError('not-found', `target instance ${p.targetInstanceId} no longer exists`);
    const volumes = p.volumes?.length ? p.volumes : source.volumes.map((v) => v.name).sort();
    const backupId = p.fromBackupId ?? (await this.backup(run, 'backup', source, volumes, 'auto'));
    await this.restore(run, 'restore', backupId, target, {
      volumes,
      mode: p.paths?.length ? 'merge' : 'replace',
      ...(p.paths?.length ? { paths: p.paths } : {}),
    });
    run.progress('done');
    return { status: 'succeeded', result: { mode: 'copy', steps: this.steps } };
  }

  private async move(run: JobRun, source: InstanceWithVolumes): Promise<WorkOutcome<MigrateResult>> {
    const p = this.params;
    const toNode = p.targetNodeId;
    if (!toNode || !p.hostPaths) throw new CairnError('validation', 'a move needs targetNodeId and hostPaths');
    const fromNode = source.nodeId;
    // Switched already (a run after the switch committed and the job was not recorded).
    if (fromNode === toNode && source.volumes.every((v) => p.hostPaths![v.name] === v.hostPath)) {
      return { status: 'succeeded', result: { mode: 'move', steps: this.steps, toNodeId: toNode } };
    }
    const volumes = source.volumes.map((v) => v.name).sort();
    const missing = volumes.filter((v) => !p.hostPaths![v]);
    if (missing.length) throw new CairnError('validation', `no target host path for volume(s) ${missing.join(', ')}`);

    const bulk = p.fromBackupId ?? (await this.backup(run, 'bulk-backup', source, volumes, 'auto'));
    this.staged = { nodeId: toNode, hostPaths: p.hostPaths };
    await this.restore(run, 'bulk-restore', bulk, source, { volumes, mode: 'replace', hostPaths: p.hostPaths, requireEmpty: true }, toNode);

    // Cutover: the instance's pre backup hook quiesces it and its window stays open (holdQuiesce)
    // through the final incremental backup, its apply on the target and the switch; the post
    // hook runs after the switch, or after a failure (node job thaw on the source node).
    const cutoverStart = Date.now();
    this.held = { nodeId: fromNode, jobId: `${this.parent.id}-cutover-backup` };
    const final = await this.backup(run, 'cutover-backup', source, volumes, { parentId: bulk }, { holdQuiesce: true });
    const baseline = await this.baselineBackup(source, volumes, final);
    // Only what changed since the bulk copy is applied (node job apply), and the tree checked.
    await this.runChild(run, 'cutover-apply', 'apply', {
      type: 'restore',
      nodeId: toNode,
      backupId: final,
      instanceId: source.id,
      targetInstanceId: source.id,
      params: { hostPaths: p.hostPaths, baseBackupId: bulk, baseline },
    });

    if (run.signal.aborted) throw new CairnError('cancelled', 'cancelled before the switch');
    // A source thawed meanwhile (its node worker restarted and ran the post hook) may have been
    // written to after the final backup: switching would lose those writes.
    const thawedEarly = (await this.ctx.records.hooks.windows({ jobId: this.held.jobId })).find((w) => w.status !== 'open');
    if (thawedEarly)
      throw new CairnError('conflict', `the source left its quiesced window before the switch (window ${thawedEarly.id} ${thawedEarly.status}); not switched`);
    run.progress('switch');
    await this.switchInstance(source, toNode, p.hostPaths);
    this.staged = undefined; // the target paths are the instance's now
    const cutoverMs = Date.now() - cutoverStart;
    const notes = await this.thaw(run, { status: 'succeeded', error: null });
    const quiescedMs = (await this.ctx.records.hooks.windows({ jobId: this.held.jobId })).reduce<number | null>((n, w) => w.quiescedMs ?? n, null);
    this.held = undefined;
    run.progress('done');
    run.log.info({ instanceId: source.id, fromNode, toNode, cutoverMs, quiescedMs }, 'instance moved');
    return {
      status: 'succeeded',
      result: { mode: 'move', steps: this.steps, fromNodeId: fromNode, toNodeId: toNode, cutoverMs, quiescedMs, ...(notes.length ? { notes } : {}) },
    };
  }

  /** Ends the cutover's quiesced window: the post hook on the source node, told how the migrate ended. */
  private async thaw(run: JobRun, outcome: { status: 'succeeded' | 'failed' | 'cancelled'; error: string | null }): Promise<string[]> {
    const held = this.held;
    if (!held) return [];
    if (!(await this.ctx.records.hooks.windows({ jobId: held.jobId, status: 'open' })).length) return [];
    try {
      await this.runChild(
        run,
        'thaw',
        'thaw',
        { type: 'cleanup', nodeId: held.nodeId, instanceId: this.params.sourceInstanceId, params: { heldBy: held.jobId, outcome } },
        { cancellable: false, timeoutMs: THAW_WAIT_MS },
      );
      return [];
    } catch (err) {
      const why = (err as Error).message;
      const note = `the post backup hook of the cutover could not be run on node ${held.nodeId}: ${why}; that node worker runs it at its next start`;
      run.log.warn({ err: (err as Error).message }, 'could not thaw the cutover window');
      return [note];
    }
  }

  /**
   * One transaction, under the instance lock: the instance's node and every volume's host path
   * switch to the target, only if the instance is still where the migrate found it.
   */
  private async switchInstance(source: InstanceWithVolumes, toNode: string, hostPaths: Record<string, string>): Promise<void> {
    const outcome = await this.ctx.records.transaction(async (tx) => {
      await tx.lock('instance', source.id);
      const now = await tx.instances.get(source.id);
      if (!now) return `instance ${source.id} no longer exists`;
      const same = now.nodeId === source.nodeId && now.volumes.length === source.volumes.length;
      if (!same || now.volumes.some((v) => source.volumes.find((s) => s.id === v.id)?.hostPath !== v.hostPath))
        return `instance ${now.name} changed during the migrate (node or volumes); it stays where it is`;
      await tx.instances.update(source.id, {
        nodeId: toNode,
        volumes: now.volumes.map((v) => ({ id: v.id, name: v.name, hostPath: hostPaths[v.name]!, excludes: v.excludes })),
      });
      return undefined;
    });
    if (outcome) throw new CairnError('conflict', outcome);
  }

  /**
   * The pending Backup the cutover's restore completes as the target's stat baseline (baseline.ts):
   * the moved instance's next backup is then incremental on the target. Made once.
   */
  private async baselineBackup(source: InstanceWithVolumes, volumes: string[], parentId: string): Promise<string> {
    const id = `${this.parent.id}-baseline`;
    if (await this.ctx.records.backups.get(id)) return id;
    await this.ctx.records.backups.create(this.backupRow(id, source, volumes, { kind: 'incremental', parentId }));
    return id;
  }

  /** The pending row of a Backup this migrate makes of `source` (trigger `migrate`). */
  private backupRow(id: string, source: InstanceWithVolumes, volumes: string[], kind: { kind: 'full' | 'incremental'; parentId: string | null }) {
    const compression = this.ctx.compression;
    return {
      id,
      instanceId: source.id,
      status: 'pending' as const,
      trigger: 'migrate' as const,
      kind: kind.kind,
      parentId: kind.parentId,
      volumes,
      storageKey: archiveKey(source.id, id, compression),
      indexKey: indexKey(source.id, id),
      compression,
      requestedBy: this.parent.requestedBy,
    };
  }

  /** A backup of `source` on its node as child `step`; returns the Backup id once it completed. */
  private async backup(
    run: JobRun,
    step: string,
    source: InstanceWithVolumes,
    volumes: string[],
    kind: 'auto' | { parentId: string },
    extra: Record<string, unknown> = {},
  ): Promise<string> {
    const backupId = `${this.parent.id}-${step}`;
    const compression = this.ctx.compression;
    const child = await this.runChild(
      run,
      step,
      'backup',
      { type: 'backup', nodeId: source.nodeId, backupId, instanceId: source.id, params: { volumes, ...extra } },
      {
        before: async (tx) => {
          if (await tx.backups.get(backupId)) return;
          const choice =
            kind === 'auto'
              ? await decideBackupKind(tx.backups, source.id, {
                  requested: 'auto',
                  volumes,
                  instanceVolumes: source.volumes.map((v) => v.name).sort(),
                  compression,
                  fullEvery: this.ctx.fullBackupEvery ?? DEFAULT_FULL_BACKUP_EVERY,
                })
              : { kind: 'incremental' as const, parentId: kind.parentId };
          await tx.backups.create(this.backupRow(backupId, source, volumes, choice));
        },
      },
    );
    const backup = await this.ctx.records.backups.get(child.backupId ?? backupId);
    if (backup?.status !== 'completed') throw new CairnError('conflict', `${step}: backup ${backupId} is ${backup?.status ?? 'missing'}, not completed`);
    return backup.id;
  }

  /** A restore of `backupId` on `nodeId` (default the target instance's node) as child `step`. */
  private async restore(
    run: JobRun,
    step: string,
    backupId: string,
    target: InstanceWithVolumes,
    params: Record<string, unknown>,
    nodeId = target.nodeId,
  ): Promise<void> {
    const backup = await this.ctx.records.backups.get(backupId);
    if (!backup) throw new CairnError('not-found', `backup ${backupId} no longer exists`);
    await this.runChild(run, step, 'restore', {
      type: 'restore',
      nodeId,
      backupId,
      instanceId: backup.instanceId,
      targetInstanceId: target.id,
      params,
    });
  }

  /**
   * Child `step`: its Job row made once (id `<parent>-<step>`, with whatever `before` writes in the
   * same transaction), enqueued while queued, and awaited; the parent's progress follows it.
   * Throws when it does not succeed. A cancel of the migrate cancels the child and waits for it.
   */
  private async runChild(
    run: JobRun,
    step: string,
    name: NodeJobName,
    spec: { type: Job['type']; nodeId: string; backupId?: string; instanceId: string; targetInstanceId?: string; params: Record<string, unknown> },
    opts: {
      before?: (tx: Parameters<Parameters<ControlContext['records']['transaction']>[0]>[0]) => Promise<void>;
      cancellable?: boolean;
      timeoutMs?: number;
    } = {},
  ): Promise<Job> {
    const { records, queues } = this.ctx;
    const id = `${this.parent.id}-${step}`;
    this.steps[step] = { jobId: id, backupId: spec.backupId ?? null };
    let child = await records.jobs.get(id);
    if (!child) {
      child = await records.transaction(async (tx) => {
        const made = await tx.jobs.get(id);
        if (made) return made;
        await opts.before?.(tx);
        return tx.jobs.create({
          id,
          type: spec.type,
          status: 'queued',
          instanceId: spec.instanceId,
          backupId: spec.backupId ?? null,
          targetInstanceId: spec.targetInstanceId ?? null,
          nodeId: spec.nodeId,
          queue: nodeQueueName(spec.nodeId),
          params: spec.params,
          requestedBy: this.parent.requestedBy,
          parentJobId: this.parent.id,
        });
      });
    }
    // BullMQ job id = Cairn job id: enqueueing again is a no-op while BullMQ holds it.
    if (child.status === 'queued') await queues.enqueueNode(spec.nodeId, name, { jobId: id });
    const done = await this.wait(run, child, step, opts.cancellable ?? true, opts.timeoutMs);
    if (done.status === 'succeeded') {
      const p = done.progress as Partial<Counters> | null;
      this.finished.bytes += p?.bytesTotal ?? 0;
      this.finished.files += p?.filesTotal ?? 0;
      return done;
    }
    if (done.status === 'cancelled' || run.signal.aborted)
      throw new CairnError('cancelled', `${step} (job ${id}) was cancelled${done.error ? `: ${done.error}` : ''}`);
    throw new CairnError(errorCodeOf(done), `${step} failed (job ${id}, ${done.status}): ${done.error ?? 'no error recorded'}`, {
      details: { step, jobId: id },
    });
  }

  /** Polls the child's row until it ends; on the migrate's cancel, cancels it and waits a while more. */
  private async wait(run: JobRun, child: Job, step: string, cancellable: boolean, timeoutMs?: number): Promise<Job> {
    const { records, queues } = this.ctx;
    const deadline = timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + timeoutMs;
    let current = child;
    let cancelledAt: number | undefined;
    for (;;) {
      if (TERMINAL.has(current.status)) return current;
      if (Date.now() > deadline) throw new CairnError('unavailable', `${step} (job ${current.id}) did not end within ${timeoutMs} ms`);
      if (cancellable && run.signal.aborted && cancelledAt === undefined) {
        cancelledAt = Date.now();
        await cancelJob(records, queues, current, 'the migrate was cancelled').catch((err: Error) =>
          run.log.warn({ err: err.message, jobId: current.id }, 'could not cancel a child job'),
        );
      }
      if (cancelledAt !== undefined && Date.now() - cancelledAt > CANCEL_WAIT_MS)
        throw new CairnError('cancelled', `cancelled; ${step} (job ${current.id}) had not stopped after ${CANCEL_WAIT_MS / 1000} s`);
      const p = current.progress as Partial<Counters> | null;
      run.progress(step, {
        bytesDone: this.finished.bytes + (p?.bytesDone ?? 0),
        bytesTotal: this.finished.bytes + (p?.bytesTotal ?? 0),
        filesDone: this.finished.files + (p?.filesDone ?? 0),
        filesTotal: this.finished.files + (p?.filesTotal ?? 0),
      });
      await new Promise((r) => setTimeout(r, POLL_MS));
      current = (await writeWithRetry(`child job ${current.id}`, () => records.jobs.get(current.id), run.log)) ?? current;
    }
  }
}

const TERMINAL = new Set<Job['status']>(['succeeded', 'failed', 'cancelled', 'interrupted']);

function errorCodeOf(job: Job): CairnError['code'] {
  const known: CairnError['code'][] = [
    'validation',
    'not-found',
    'conflict',
    'unsafe-path',
    'volume-missing',
    'insufficient-space',
    'no-data',
    'checksum-mismatch',
    'archive-corrupt',
    'archive-missing',
  ];
  return known.find((c) => c === job.errorCode) ?? 'conflict';
}
