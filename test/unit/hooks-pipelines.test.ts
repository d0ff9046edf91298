/**
 * Hooks inside the node pipelines (issue 13), over in-memory records and store, a real volume
 * directory and real hook commands: the backup's pre hook runs before the volume is read, the
 * restore's around the swap, and a failed swap is undone before the post hook runs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryObjectStore, MemoryRecords, archiveKey, createLogger, indexKey, newId } from '@cairn/core';
import { JobLifecycle, type JobWork } from '@cairn/worker/job-lifecycle.ts';
import { BackupJob } from '@cairn/worker/node/backup.pipeline.ts';
import { HookCommands, type HookCommandDef } from '@cairn/worker/node/hooks/index.ts';
import type { NodeContext } from '@cairn/worker/node/node-context.ts';
import { RestoreJob } from '@cairn/worker/node/restore.pipeline.ts';
import { OLD_PREFIX } from '@cairn/worker/node/staging.ts';

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

async function setUp(hooks: Record<string, unknown>, commands: (volume: string, root: string) => Record<string, HookCommandDef>) {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-unit-hooks-')));
  roots.push(root);
  const volume = path.join(root, 'db/data');
  fs.mkdirSync(volume, { recursive: true });
  fs.writeFileSync(path.join(volume, 'state.txt'), 'running');
  const records = new MemoryRecords();
  records.seedNode({ id: 'n1', volumeRoots: [root] });
  records.seedTenant({ id: 't1', name: 'acme' });
  const instanceId = newId();
  await records.instances.create({
    id: instanceId,
    tenantId: 't1',
    name: 'db',
    nodeId: 'n1',
    volumes: [{ id: newId(), name: 'data', hostPath: volume, excludes: [] }],
  });
  await records.hooks.setConfig(instanceId, { hooks, secret: 's' });
  const logger = createLogger({ level: 'silent', name: 'test' });
  const ctx: NodeContext = {
    nodeId: 'n1',
    volumeRoots: [root],
    records,
    store: new MemoryObjectStore(),
    logger,
    config: { COMPRESSION: 'zstd', COMPRESSION_LEVEL: 3, ARCHIVE_BLOCK_SIZE: 1 << 20 },
    queues: { enqueueControl: async () => {} },
    hookCommands: HookCommands.of(commands(volume, root)),
  };
  const lifecycle = new JobLifecycle({ jobs: records.jobs, logger, nodeId: 'n1', settleDelayMs: 1 });
  const run = (jobId: string, work: JobWork, attempts = 1) =>
    lifecycle.execute({ name: 'job', record: { kind: 'existing', jobId }, attempt: 1, attempts, signal: new AbortController().signal }, work);
  const backup = async () => {
    const backupId = newId();
    const jobId = newId();
    await records.backups.create({
      id: backupId,
      instanceId,
      trigger: 'manual',
      volumes: ['data'],
      storageKey: archiveKey(instanceId, backupId, 'zstd'),
      indexKey: indexKey(instanceId, backupId),
      compression: 'zstd',
      requestedBy: 'test',
    });
    await records.jobs.create({ id: jobId, type: 'backup', instanceId, backupId, nodeId: 'n1', queue: 'node.n1', requestedBy: 'test' });
    return { backupId, jobId };
  };
  return { root, volume, records, ctx, run, backup, instanceId };
}

const command = (name: string, onError = 'fail') => ({ type: 'command', name, timeoutSeconds: 10, onError });

describe('hooks in the pipelines', () => {
  it('backup: the pre hook runs before the volume is read, the post hook after; both recorded on the job', async () => {
    const s = await setUp({ preBackup: command('quiesce'), postBackup: command('resume') }, (volume, root) => ({
      quiesce: { argv: ['/bin/sh', '-c', `echo quiesced > ${volume}/state.txt`] },
      resume: { argv: ['/bin/sh', '-c', `cp ${volume}/state.txt ${root}/seen-by-post; echo resumed > ${volume}/state.txt`] },
    }));
    const { backupId, jobId } = await s.backup();
    expect(await s.run(jobId, new BackupJob(s.ctx))).toMatchObject({ status: 'succeeded' });
    expect(fs.readFileSync(path.join(s.volume, 'state.txt'), 'utf8')).toBe('resumed\n');
    // Restore the backup: it holds what the pre hook wrote, not what the post hook wrote.
    const restoreId = newId();
    await s.records.jobs.create({ id: restoreId, type: 'restore', instanceId: s.instanceId, backupId, requestedBy: 'test' });
    const stages: string[] = [];
    const setProgress = s.records.jobs.setProgress.bind(s.records.jobs);
    s.records.jobs.setProgress = async (id, p) => {
      const stage = (p as { stage: string }).stage;
      if (id === restoreId && stages.at(-1) !== stage) stages.push(stage);
      return setProgress(id, p);
    };
    expect(await s.run(restoreId, new RestoreJob(s.ctx))).toMatchObject({ status: 'succeeded' });
    // The flush before the swap is a stage of its own, once the data is written (stages written in
    // quick succession may be coalesced: only their order is certain).
    const flushing = stages.indexOf('flushing');
    expect(flushing).toBeGreaterThan(0);
    expect(stages.slice(flushing + 1)).toContain('done');
    expect(stages.slice(flushing)).not.toContain('restoring');
    expect(fs.readFileSync(path.join(s.volume, 'state.txt'), 'utf8')).toBe('quiesced\n');
    const hooks = (await s.records.jobs.get(jobId))!.hooks as { windows: { pre: { status: string }; post: { status: string }; quiescedMs: number }[] };
    expect(hooks.windows).toHaveLength(1);
    expect(hooks.windows[0]).toMatchObject({ pre: { status: 'succeeded' }, post: { status: 'succeeded' } });
    expect(hooks.windows[0]!.quiescedMs).toBeGreaterThanOrEqual(0);
  });

  it('backup: a continue pre hook that fails leaves a warning on the completed backup', async () => {
    const s = await setUp({ preBackup: command('fail', 'continue') }, () => ({ fail: { argv: ['/bin/sh', '-c', 'echo nope >&2; exit 3'] } }));
    const { backupId, jobId } = await s.backup();
    expect(await s.run(jobId, new BackupJob(s.ctx))).toMatchObject({ status: 'succeeded', result: { warnings: 1 } });
    const row = await s.records.backups.get(backupId);
    expect(row?.status).toBe('completed');
    expect(row?.warnings).toEqual([{ path: '', code: 'hook-failed', message: 'preBackup hook (command fail) failed: exit code 3; output: "nope"' }]);
  });

  it('restore: a swap that fails is undone before the post hook runs; the post hook sees the previous data', async () => {
    const s = await setUp({ preRestore: command('stop'), postRestore: command('start') }, (volume, root) => ({
      // The pre hook leaves a directory where the swap must move the live data: the swap fails.
      stop: { argv: ['/bin/sh', '-c', `mkdir -p "${path.dirname(volume)}/${OLD_PREFIX}$CAIRN_JOB_ID.data/in-the-way"`] },
      start: { argv: ['/bin/sh', '-c', `cat ${volume}/state.txt > ${root}/seen-by-post`] },
    }));
    const { backupId, jobId } = await s.backup();
    await s.run(jobId, new BackupJob(s.ctx));
    fs.writeFileSync(path.join(s.volume, 'state.txt'), 'live data');
    const restoreId = newId();
    await s.records.jobs.create({ id: restoreId, type: 'restore', instanceId: s.instanceId, backupId, requestedBy: 'test' });
    await expect(s.run(restoreId, new RestoreJob(s.ctx))).rejects.toThrow();
    expect(fs.readFileSync(path.join(s.root, 'seen-by-post'), 'utf8')).toBe('live data');
    expect(fs.readFileSync(path.join(s.volume, 'state.txt'), 'utf8')).toBe('live data');
    const job = await s.records.jobs.get(restoreId);
    expect(job?.status).toBe('failed');
    expect((job!.hooks as { windows: { outcome: string; post: { status: string } }[] }).windows[0]).toMatchObject({
      outcome: 'failed',
      post: { status: 'succeeded' },
    });
  });
});
