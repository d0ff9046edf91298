import type { Job } from 'bullmq';
import type { Compression, ControlJobPayload, JobQueues, Keyring, Logger, Records, SchedulerSync } from '@cairn/core';
import type { ObjectStore } from '@cairn/core/storage/object-store.ts';
import type { RangeReadSettings } from '@cairn/core/archive/archive-types.ts';
import type { JobRecordMode, JobWork } from '../job-lifecycle.ts';
import type { SweepOptions } from './orphan-sweep.service.ts';

/** What control job handlers need; built once in startControlWorker from the runtime. */
export interface ControlContext {
  records: Records;
  store: ObjectStore;
  logger: Logger;
  queues: JobQueues;
  schedulers: SchedulerSync;
  compression: Compression;
  /** FULL_BACKUP_EVERY: a migrate's backups choose their kind as any `auto` backup. */
  fullBackupEvery?: number;
  sweep: Partial<SweepOptions>;
  /** Injectable clock for retention and sweeps (tests). */
  clock?: () => Date;
  /** Encryption at rest: the keyring (CAIRN_MASTER_KEYS) a verify opens encrypted backups with. */
  keyring?: () => Keyring | undefined;
  /** How a full verify reads an archive, as a restore does (STORE_THREAD, RESTORE_*); the defaults when absent. */
  reads?: { storeThread: boolean; rangeReads: RangeReadSettings };
  /** The fleet-wide verify run (VERIFY_LEVEL, VERIFY_BYTES_BUDGET); the built-in defaults when absent. */
  verify?: { level: 'quick' | 'sample' | 'full'; bytesBudget: number };
}

/**
 * A control job handler: from the (validated) payload, the Job row the run is recorded on and the
 * unit of work the lifecycle runs. It parses nothing and settles nothing itself.
 */
export type ControlHandler = (ctx: ControlContext, payload: ControlJobPayload, job: Job) => { record: JobRecordMode; work: JobWork };
