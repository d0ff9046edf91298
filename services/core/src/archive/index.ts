/** The archive engine (SPEC §5–7): volumes -> block-compressed tar + index, and back. */
export * from './archive-types.ts';
export {
  encodeIndex,
  encodeIndexStream,
  decodeIndex,
  readIndex,
  eachEntry,
  entrySource,
  checkIndex,
  selectEntries,
  planRuns,
  entryEnd,
  type BlockRun,
} from './archive-index.ts';
export { packArchive, DEFAULT_BLOCK_SIZE } from './pack.ts';
export { unpackArchive } from './unpack.ts';
export { exportPathsAsTar, exportEntries, type ExportOptions } from './export-tar.ts';
export { bytesToPath, pathToBytes } from './path-bytes.ts';
export { sharedWorkerHost } from './worker-host.ts';
