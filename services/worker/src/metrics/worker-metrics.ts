import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { S3ErrorKind } from '@cairn/core';
import type { JobEnd, JobObserver } from '../job-lifecycle.ts';

/** Bytes a succeeded job reports in its result (BackupResult, restore result); absent fields count nothing. */
interface ByteCounts {
  storedBytes?: unknown;
  logicalBytes?: unknown;
  bytesWritten?: unknown;
}

const count = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0);

/**
 * What happens inside a worker process (SPEC §12), served on its own `/metrics`
 * (WORKER_METRICS_PORT): job durations by job type and outcome, bytes backed up, stored and
 * restored, and failed S3 requests by operation and kind. Labels are bounded sets (job names,
 * outcomes, S3 operations and error kinds): no instance, backup or job ids.
 */
export class WorkerMetrics implements JobObserver {
  readonly registry = new Registry();
  private readonly durations: Histogram<'type' | 'outcome'>;
  private readonly logicalBytes: Counter;
  private readonly storedBytes: Counter;
  private readonly restoredBytes: Counter;
  private readonly s3Errors: Counter<'operation' | 'kind'>;

  /** `defaultMetrics: false` when the process already reports them elsewhere (the all-in-one's gateway). */
  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.durations = new Histogram({
      name: 'cairn_job_duration_seconds',
      help: 'Duration of job runs by job type and outcome (succeeded, failed, cancelled, retry, lost)',
      labelNames: ['type', 'outcome'],
      // Sweeps take milliseconds, large backups hours.
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 28800],
      registers,
    });
    this.logicalBytes = new Counter({
      name: 'cairn_backup_logical_bytes_total',
      help: 'Bytes of file data in the volume trees of completed backups (what they read, an incremental counting its unchanged files too)',
      registers,
    });
    this.storedBytes = new Counter({
      name: 'cairn_backup_uploaded_bytes_total',
      help: 'Bytes completed backups stored in S3 (their own archive objects, compressed)',
      registers,
    });
    this.restoredBytes = new Counter({
      name: 'cairn_restore_bytes_total',
      help: 'Bytes of file data written into volumes by completed restores',
      registers,
    });
    this.s3Errors = new Counter({
      name: 'cairn_s3_request_errors_total',
      help: 'Failed S3 request attempts by operation and kind (throttled, server, network, access-denied, not-found, aborted, client)',
      labelNames: ['operation', 'kind'],
      registers,
    });
  }

  jobEnded(run: { name: string; outcome: JobEnd; seconds: number; result?: unknown }): void {
    this.durations.observe({ type: run.name, outcome: run.outcome }, run.seconds);
    if (run.outcome !== 'succeeded' || typeof run.result !== 'object' || run.result === null) return;
    const bytes = run.result as ByteCounts;
    if (run.name === 'backup') {
      this.logicalBytes.inc(count(bytes.logicalBytes));
      this.storedBytes.inc(count(bytes.storedBytes));
    } else if (run.name === 'restore') {
      this.restoredBytes.inc(count(bytes.bytesWritten));
    }
  }

  s3RequestFailed(error: { operation: string; kind: S3ErrorKind }): void {
    this.s3Errors.inc({ operation: error.operation, kind: error.kind });
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
