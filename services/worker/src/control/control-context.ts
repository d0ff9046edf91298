import type { Job } from 'bullmq';
import type { Compression, ControlJobPayload, JobQueues, SchedulerSync } from '@cairn/core';
import type { CleanupContext } from './cleanup.handler.ts';
import type { SweepOptions } from './orphan-sweep.service.ts';

/** What control job handlers need; built once in startControlWorker. */
export interface ControlContext extends CleanupContext {
  queues: JobQueues;
  schedulers: SchedulerSync;
  compression: Compression;
  sweep: Partial<SweepOptions>;
  /** Injectable clock for retention and sweeps (tests). */
  clock?: () => Date;
}

/** A control job handler: parses nothing itself (the payload is validated), calls one domain function. */
export type ControlHandler = (ctx: ControlContext, payload: ControlJobPayload, job: Job) => Promise<unknown>;
