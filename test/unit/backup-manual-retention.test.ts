import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryObjectStore, MemoryRecords, archiveKey, createLogger, indexKey, newId, type ControlJobPayload } from '@cairn/core';
import { JobLifecycle } from '@cairn/worker/job-lifecycle.ts';
import { BackupJob } from '@cairn/worker/node/backup.pipeline.ts';
import type { NodeContext } from '@cairn/worker/node/node-context.ts';

/** A completed manual backup asks for its instance's manual retention (issue 13), when the instance has such a policy. */

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

async function backupOnce(policy: Parameters<MemoryRecords['policies']['upsert']>[1] | null, trigger: 'manual' | 'migrate' = 'manual') {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-unit-')));
  roots.push(root);
  const volume = path.join(root, 'app/data');
  fs.mkdirSync(volume, { recursive: true });
  fs.writeFileSync(path.join(volume, 'a.txt'), 'alpha');
  const records = new MemoryRecords();
  records.seedNode({ id: 'n1', volumeRoots: [root] });
  records.seedTenant({ id: 't1', name: 'acme' });
  const instanceId = newId();
  await records.instances.create({
    id: instanceId,
    tenantId: 't1',
    name: 'app',
    nodeId: 'n1',
    volumes: [{ id: newId(), name: 'data', hostPath: volume, excludes: [] }],
  });
  if (policy) await records.policies.upsert(instanceId, policy);
  const enqueued: { name: string; payload: ControlJobPayload }[] = [];
  const ctx: NodeContext = {
    nodeId: 'n1',
    volumeRoots: [root],
    records,
    store: new MemoryObjectStore(),
    logger: createLogger({ level: 'silent', name: 'test' }),
    config: { COMPRESSION: 'zstd', COMPRESSION_LEVEL: 3, ARCHIVE_BLOCK_SIZE: 1 << 20 },
    queues: { enqueueControl: async (name, payload) => void enqueued.push({ name, payload }) },
  };
  const backupId = newId();
  const jobId = newId();
  await records.backups.create({
    id: backupId,
    instanceId,
    trigger,
    volumes: ['data'],
    storageKey: archiveKey(instanceId, backupId, 'zstd'),
    indexKey: indexKey(instanceId, backupId),
    compression: 'zstd',
    requestedBy: 'test',
  });
  await records.jobs.create({ id: jobId, type: 'backup', instanceId, backupId, nodeId: 'n1', queue: 'node.n1', requestedBy: 'test' });
  const lifecycle = new JobLifecycle({ jobs: records.jobs, logger: ctx.logger, nodeId: 'n1', settleDelayMs: 1 });
  const outcome = await lifecycle.execute(
    { name: 'job', record: { kind: 'existing', jobId }, attempt: 1, attempts: 3, signal: new AbortController().signal },
    new BackupJob(ctx),
  );
  return { outcome, enqueued, instanceId };
}

describe('manual retention after a manual backup', () => {
  it('is asked for when the instance has a manual retention policy', async () => {
    const { outcome, enqueued, instanceId } = await backupOnce({ manualRetention: { keepLast: 3 } });
    expect(outcome.status).toBe('succeeded');
    expect(enqueued).toEqual([{ name: 'retention', payload: { instanceId } }]);
  });

  it('is not asked for without a policy, with only a limit, or for a backup of another trigger', async () => {
    expect((await backupOnce(null)).enqueued).toEqual([]);
    expect((await backupOnce({ manualBackupLimit: 5 })).enqueued).toEqual([]);
    expect((await backupOnce({ manualRetention: { keepLast: 3 } }, 'migrate')).enqueued).toEqual([]);
  });
});
