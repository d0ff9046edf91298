/** The archive engine (SPEC §5–7): volumes -> block-compressed tar + index, and back. */
export * from './archive-types.ts';
export {
  encodeIndex,
  decodeIndex,
  readIndex,
  readIndexHead,
  eachEntry,
  selectEntries,
  planRuns,
  entryEnd,
  hasForeignBlocks,
  archiveLength,
} from './archive-index.ts';
export { packArchive } from './pack.ts';
export { unpackArchive } from './unpack.ts';
/** The size from which a restored file is written back as it is written (smaller ones are not). */
export { SPARSE_MIN as WRITEBACK_MIN_FILE_SIZE } from './extractor.ts';
export { DEFAULT_RANGE_READS, rangeReadsOf } from './parallel-range-reads.ts';
export { fileRangeReader, fileSource } from './file-range-reader.ts';
export { putFromThread } from './threaded-upload.ts';
export { exportArchive, exportPathsAsTar } from './export-tar.ts';
export { bytesToPath, pathToBytes } from './path-bytes.ts';
export { sharedWorkerHost } from './worker-host.ts';
