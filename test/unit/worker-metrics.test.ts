import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { CairnError, MemoryRecords } from '@cairn/core';
import { JobLifecycle, type JobWork } from '@cairn/worker/job-lifecycle.ts';
import { WorkerMetrics } from '@cairn/worker/metrics/worker-metrics.ts';

const silent = pino({ level: 'silent' });

async function run(metrics: WorkerMetrics, name: string, attempt: number, attempts: number, work: JobWork) {
  const records = new MemoryRecords();
  await records.jobs.create({ id: 'job-1', type: 'backup', status: 'queued', requestedBy: 'test', queue: 'node.n1' });
  const lifecycle = new JobLifecycle({ jobs: records.jobs, logger: silent, nodeId: 'n1', settleDelayMs: 1, observer: metrics });
  const invocation = { name, record: { kind: 'existing' as const, jobId: 'job-1' }, attempt, attempts, signal: new AbortController().signal };
  return lifecycle.execute(invocation, work).catch((err: Error) => err);
}

const sample = (text: string, line: string): number | undefined => {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
};

describe('worker metrics', () => {
  it('times each job run by type and outcome and counts the bytes of succeeded backups and restores', async () => {
    const metrics = new WorkerMetrics({ defaultMetrics: false });
    await run(metrics, 'backup', 1, 3, { run: async () => ({ status: 'succeeded', result: { storedBytes: 700, logicalBytes: 2000 } }) });
    await run(metrics, 'backup', 1, 3, { run: async () => ({ status: 'succeeded', result: { storedBytes: 300, logicalBytes: null } }) });
    await run(metrics, 'restore', 1, 1, { run: async () => ({ status: 'succeeded', result: { bytesWritten: 4096 } }) });
    // A transient error with attempts left is a retry; on the last attempt a failure.
    const transient = () => {
      throw new CairnError('unavailable', 's3 down', { permanent: false });
    };
    await run(metrics, 'backup', 1, 3, { run: async () => transient() });
    await run(metrics, 'backup', 3, 3, { run: async () => transient() });
    await run(metrics, 'cleanup', 1, 1, { run: async () => ({ status: 'cancelled', reason: 'backup gone' }) });

    const text = await metrics.render();
    expect(sample(text, 'cairn_job_duration_seconds_count{type="backup",outcome="succeeded"}')).toBe(2);
    expect(sample(text, 'cairn_job_duration_seconds_count{type="backup",outcome="retry"}')).toBe(1);
    expect(sample(text, 'cairn_job_duration_seconds_count{type="backup",outcome="failed"}')).toBe(1);
    expect(sample(text, 'cairn_job_duration_seconds_count{type="restore",outcome="succeeded"}')).toBe(1);
    expect(sample(text, 'cairn_job_duration_seconds_count{type="cleanup",outcome="cancelled"}')).toBe(1);
    expect(sample(text, 'cairn_job_duration_seconds_bucket{le="+Inf",type="backup",outcome="succeeded"}')).toBe(2);
    expect(sample(text, 'cairn_backup_uploaded_bytes_total')).toBe(1000);
    expect(sample(text, 'cairn_backup_logical_bytes_total')).toBe(2000);
    expect(sample(text, 'cairn_restore_bytes_total')).toBe(4096);
    // Only the all-in-one leaves the process metrics to the gateway.
    expect(text).not.toContain('process_cpu_user_seconds_total');
    expect(await new WorkerMetrics().render()).toContain('process_cpu_user_seconds_total');
  });

  it('counts failed S3 requests by operation and kind', async () => {
    const metrics = new WorkerMetrics({ defaultMetrics: false });
    metrics.s3RequestFailed({ operation: 'UploadPart', kind: 'throttled' });
    metrics.s3RequestFailed({ operation: 'UploadPart', kind: 'throttled' });
    metrics.s3RequestFailed({ operation: 'GetObject', kind: 'not-found' });
    const text = await metrics.render();
    expect(sample(text, 'cairn_s3_request_errors_total{operation="UploadPart",kind="throttled"}')).toBe(2);
    expect(sample(text, 'cairn_s3_request_errors_total{operation="GetObject",kind="not-found"}')).toBe(1);
  });
});
