import type { Config, JobQueues, Logger, Records } from '@cairn/core';
import type { ObjectStore } from '@cairn/core/storage/object-store.ts';
import type { HookCommands } from './hooks/hook-commands.ts';

/** What a node job's work needs; built once in the node worker from the runtime. */
export interface NodeContext {
  nodeId: string;
  volumeRoots: string[];
  records: Records;
  store: ObjectStore;
  /** Producer side of the queues (retention after a scheduled backup). */
  queues: Pick<JobQueues, 'enqueueControl'>;
  logger: Logger;
  config: Pick<Config, 'COMPRESSION' | 'COMPRESSION_LEVEL' | 'ARCHIVE_BLOCK_SIZE'> &
    Partial<Pick<Config, 'RESTORE_PARALLEL_RANGES' | 'RESTORE_RANGE_SIZE' | 'RESTORE_BYTES_IN_FLIGHT' | 'STORE_THREAD'>>;
  /** The commands of the node's hooks file (CAIRN_NODE_HOOKS) that command hooks may name; none when absent. */
  hookCommands?: HookCommands;
}
