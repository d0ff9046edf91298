import type { Config, JobQueues, Logger, PrismaClient } from '@cairn/core';
import type { ObjectStore } from '@cairn/core/storage/object-store.ts';
import type { Progress } from '@cairn/core';

/** What a node job handler needs; built once in the worker's composition root. */
export interface NodeContext {
  nodeId: string;
  volumeRoots: string[];
  prisma: PrismaClient;
  store: ObjectStore;
  /** Producer side of the queues (retention after a scheduled backup). */
  queues: Pick<JobQueues, 'enqueueControl'>;
  logger: Logger;
  config: Pick<Config, 'COMPRESSION' | 'COMPRESSION_LEVEL' | 'ARCHIVE_BLOCK_SIZE'>;
}

/** What a handler gets for one run of one job. */
export interface JobRun {
  jobId: string;
  signal: AbortSignal;
  /** 1 on the first attempt. */
  attempt: number;
  /** True when a transient failure now would not be retried by BullMQ. */
  lastAttempt: boolean;
  progress(stage: string, counters?: { bytesDone: number; bytesTotal: number; filesDone: number; filesTotal: number }): void;
  log: Logger;
}

export type { JobQueues, Progress };
