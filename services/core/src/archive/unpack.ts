/**
 * unpackArchive: stored archive -> directories (SPEC §7). The whole archive from a stream, or
 * chosen paths from only the blocks that hold them through a range reader.
 *
 * Threads: this one reads and hashes the stored bytes and cuts frames; codec workers decode
 * and verify blocks in parallel; an extract worker writes files with synchronous calls. Every
 * block is verified (zstd frame checksum, gzip CRC, sha256 for stored blocks) before its bytes
 * reach the extractor; each file's sha256 is checked as it is written.
 */
import { createHash } from 'node:crypto';
import { resolve as resolvePath } from 'node:path';
import type { Readable } from 'node:stream';
import { MessageChannel } from 'node:worker_threads';
import { abortError, CairnError } from '../errors.ts';
import { addToRuns, checkEntry, checkIndexHead, eachEntry, entryEnd, entrySource, selectEntries, volumeOf, type BlockRun } from './archive-index.ts';
import type { ArchiveEntry, ArchiveIndex, ArchiveProgress, StreamedIndex, UnpackOptions, UnpackResult } from './archive-types.ts';
import { cutFrames, type Frame } from './block-source.ts';
import { CodecPool, type CodecResult } from './codec-pool.ts';
import type { ExtractAck, ExtractJobData, ExtractJobResult, ExtractMessage } from './extract-job.ts';
import type { PlanItem } from './extractor.ts';
import { nativeAddonPath } from './native-reads.ts';
import { checkChosen, checkEntryPath } from './path-safety.ts';
import { defaultConcurrency, sharedWorkerHost } from './worker-host.ts';

const MAX_UNACKED = 4;
const PROGRESS_INTERVAL_MS = 250;

interface Plan {
  roots: Record<string, string>;
  /** The entries to extract, in archive order (a fresh pass each call: they may be on disk). */
  entries: () => Iterator<ArchiveEntry>;
  /** Hard-link redirections by header offset (see PlannedEntry.outputs / covered). */
  extras: Map<number, { outputs?: string[]; covered?: boolean }>;
  runs: BlockRun[];
  /** Every entry of the restored volumes is extracted. */
  strict: boolean;
  /** All volumes of the archive (entries of the others are corruption). */
  known: string[];
  bytesTotal: number;
  filesTotal: number;
}

/**
 * What to extract. Works in passes over the entries, holding only the selection (for chosen
 * paths) or nothing per entry (for whole volumes): an index of a million files is read from
 * its temporary file a few times rather than held.
 */
export function planExtraction(o: Pick<UnpackOptions, 'target' | 'volumeDirs' | 'paths'>, index: ArchiveIndex | StreamedIndex): Plan {
  const tarEnd = checkIndexHead(index);
  const roots: Record<string, string> = {};
  if (o.volumeDirs) {
    for (const [name, dir] of Object.entries(o.volumeDirs)) {
      if (!index.volumes.some((v) => v.name === name)) throw new CairnError('validation', `volume ${name} is not in this backup`);
      roots[name] = resolvePath(dir);
    }
  } else {
    for (const v of index.volumes) roots[v.name] = resolvePath(o.target, v.name);
  }
  const volumes = new Set(Object.keys(roots));
  const known = new Set(index.volumes.map((v) => v.name));
  for (const name of known)
    if (!name || name.includes('/') || name === '.' || name === '..')
      throw new CairnError('unsafe-path', `unsafe volume name ${JSON.stringify(name)} in index`);
  const source = entrySource(index);

  // Pass 1: every entry is well-formed, in order and inside a listed volume; the symlinks.
  const symlinks = new Set<string>();
  let bytesTotal = 0;
  let filesTotal = 0;
  const count = (e: ArchiveEntry): void => {
    if (e.type === 'file') bytesTotal += e.size;
    if (e.type === 'file' || e.type === 'hardlink') filesTotal++;
  };
  let prevEnd = 0;
  for (const e of eachEntry(source)) {
    checkEntry(e, tarEnd);
    if (e.headerOffset < prevEnd) throw new CairnError('archive-corrupt', `invalid archive index: entry ${e.path} overlaps the one before it`);
    prevEnd = entryEnd(e);
    const volume = checkEntryPath(e, known);
    if (e.type === 'symlink') symlinks.add(e.path);
    if (!o.paths && volumes.has(volume)) count(e);
  }
  const extras = new Map<number, { outputs?: string[]; covered?: boolean }>();
  if (!o.paths) {
    const inVolumes = function* (): Generator<ArchiveEntry> {
      for (const e of eachEntry(source)) if (volumes.has(volumeOf(e.path))) yield e;
    };
    // Pass 2: no write goes through a symlink. (Pass 3 is the extraction itself.)
    for (const e of inVolumes()) checkChosen(e, symlinks);
    const runs: BlockRun[] = [];
    const last = index.blocks.length - 1;
    if (volumes.size === index.volumes.length) {
      if (last >= 0) runs.push({ firstBlock: 0, lastBlock: last, start: 0, limit: Number.POSITIVE_INFINITY });
    } else {
      for (const e of inVolumes()) addToRuns(runs, index.blocks, e);
    }
    return { roots, entries: inVolumes, extras, runs, strict: true, known: [...known], bytesTotal, filesTotal };
  }

  const { selected, sources } = selectEntries(index, o.paths, volumes);
  // A hard link whose file is not selected: that file's content is written under the link's path.
  const bySource = new Map<string, string[]>();
  for (const src of sources) {
    const outputs: string[] = [];
    bySource.set(src.path, outputs);
    extras.set(src.headerOffset, { outputs });
    bytesTotal += src.size;
  }
  for (const e of selected) {
    count(e);
    const outputs = e.type === 'hardlink' && e.linkTarget ? bySource.get(e.linkTarget) : undefined;
    if (outputs) {
      outputs.push(e.path);
      extras.set(e.headerOffset, { covered: true });
    }
  }
  const entries = [...selected, ...sources].sort((a, b) => a.headerOffset - b.headerOffset);
  for (const e of entries) checkChosen(e, symlinks);
  const runs: BlockRun[] = [];
  for (const e of entries) addToRuns(runs, index.blocks, e);
  return { roots, entries: () => entries[Symbol.iterator](), extras, runs, strict: false, known: [...known], bytesTotal, filesTotal };
}

function planItem(e: ArchiveEntry, extra: { outputs?: string[]; covered?: boolean } | undefined): PlanItem {
  const p: PlanItem = { headerOffset: e.headerOffset, path: e.path, type: e.type, size: e.size, mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime };
  if (e.linkTarget !== undefined) p.linkTarget = e.linkTarget;
  if (e.sha256 !== undefined) p.sha256 = e.sha256;
  if (extra?.outputs) p.outputs = extra.outputs;
  if (extra?.covered) p.covered = true;
  return p;
}

export async function unpackArchive(o: UnpackOptions): Promise<UnpackResult> {
  const index = o.index;
  const signal = o.signal;
  if (signal?.aborted) throw abortError(signal);
  let plan: Plan;
  try {
    plan = planExtraction(o, index);
  } catch (err) {
    // Refused before reading: the source (an S3 body, a file) is not left open.
    if ('stream' in o.source) o.source.stream.destroy();
    throw err;
  }
  const restoreOwnership = o.restoreOwnership ?? process.getuid?.() === 0;
  const host = sharedWorkerHost();
  const { jobs, pool } = await CodecPool.openWith(host, o.concurrency ?? defaultConcurrency());
  const extractor = jobs[0]!;

  const { port1, port2 } = new MessageChannel();
  const progress: ArchiveProgress = { bytesDone: 0, bytesTotal: plan.bytesTotal, filesDone: 0, filesTotal: plan.filesTotal };
  let lastProgress = 0;
  const report = (force: boolean): void => {
    if (!o.onProgress) return;
    const now = performance.now();
    if (!force && now - lastProgress < PROGRESS_INTERVAL_MS) return;
    lastProgress = now;
    o.onProgress({ ...progress });
  };

  let failed: unknown;
  let wake: (() => void) | undefined;
  let unacked = 0;
  let reading: Readable | undefined;
  const fail = (err: unknown): void => {
    failed ??= err;
    wake?.();
    // A stalled source must not delay a cancel: destroying it ends the read loop.
    reading?.destroy(err instanceof Error ? err : new Error(String(err)));
  };
  const onAbort = (): void => fail(abortError(signal!));
  signal?.addEventListener('abort', onAbort, { once: true });
  // An abort while the worker threads were being acquired fired no event for us.
  if (signal?.aborted) onAbort();
  // Buffers come back from the extractor (decoded blocks) and the codec workers (frames) for reuse.
  const spareOut: ArrayBuffer[] = [];
  const spareIn: ArrayBuffer[] = [];
  const frameSize = index.blocks.reduce((n, b) => Math.max(n, b.compressedLength), 0);
  const allocFrame = (len: number): Buffer => {
    const ab = spareIn.pop();
    return ab && ab.byteLength >= len ? Buffer.from(ab, 0, len) : Buffer.from(new ArrayBuffer(frameSize), 0, len);
  };
  port1.on('message', (m: ExtractAck) => {
    unacked--;
    if (index.codec === 'zstd' && spareOut.length < 8) spareOut.push(m.buf);
    progress.bytesDone = m.bytesWritten;
    progress.filesDone = m.filesWritten;
    report(false);
    wake?.();
  });
  const waitUntil = (ok: () => boolean): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (failed !== undefined) {
          wake = undefined;
          reject(failed);
        } else if (ok()) {
          wake = undefined;
          resolve();
        }
      };
      wake = check;
      check();
    });
  const post = (m: ExtractMessage, transfer: ArrayBuffer[] = []): void => port1.postMessage(m, transfer);

  const job = extractor.request<ExtractJobResult>(
    'extract',
    {
      data: {
        roots: plan.roots,
        strict: plan.strict,
        knownVolumes: plan.known,
        restoreOwnership,
        native: nativeAddonPath(),
        port: port2,
      } satisfies ExtractJobData,
    },
    [port2],
  );
  job.catch(fail);

  // Decoded blocks in archive order; each is sent to the extractor once it has room.
  const inflight: { result: Promise<CodecResult>; block: number }[] = [];
  const runStarts = new Map<number, BlockRun>();
  const needed = new Set<number>();
  for (const r of plan.runs) {
    runStarts.set(r.firstBlock, r);
    for (let b = r.firstBlock; b <= r.lastBlock; b++) needed.add(b);
  }
  const maxInflight = pool.size * 2;
  const drainOne = async (): Promise<void> => {
    const x = inflight.shift()!;
    const out = await x.result;
    if (failed !== undefined) throw failed;
    const b = index.blocks[x.block]!;
    if (b.sha256 && out.inputSha !== b.sha256) throw new CairnError('checksum-mismatch', `block ${x.block} does not match its sha256`);
    await waitUntil(() => unacked < MAX_UNACKED);
    const run = runStarts.get(x.block);
    if (run) post({ t: 'run', start: run.start, limit: run.limit });
    unacked++;
    if (out.input && spareIn.length < 8) spareIn.push(out.input);
    const ab = out.data.buffer as ArrayBuffer;
    const end = b.uncompressedOffset + b.uncompressedLength;
    const items: PlanItem[] = [];
    while (!next.done && next.value.headerOffset < end) {
      items.push(planItem(next.value, plan.extras.get(next.value.headerOffset)));
      next = planned.next();
    }
    post({ t: 'block', buf: ab, offset: out.data.byteOffset, length: out.data.length, at: b.uncompressedOffset, plan: items }, [ab]);
  };
  const planned = plan.entries();
  let next = planned.next();
  const take = async (frames: AsyncGenerator<Frame>): Promise<void> => {
    for await (const f of frames) {
      if (failed !== undefined) throw failed;
      if (!f.data) continue;
      const b = index.blocks[f.block]!;
      const out = spareOut.pop();
      const result = pool.run({
        op: 'decompress',
        codec: index.codec,
        level: 0,
        data: f.data,
        expectedLength: b.uncompressedLength,
        hashInput: b.sha256 !== undefined,
        returnInput: index.codec !== 'none',
        ...(out && out.byteLength >= b.uncompressedLength ? { output: out } : {}),
      });
      result.catch(fail);
      inflight.push({ result, block: f.block });
      if (inflight.length >= maxInflight) await drainOne();
    }
  };

  let archiveVerified = false;
  let result: ExtractJobResult;
  try {
    // Failed already (an abort while the threads started): a source that never ends must not be read.
    if (failed !== undefined) throw failed;
    const expected = o.expectedSha256 ?? index.sha256;
    const last = index.blocks.length - 1;
    if ('stream' in o.source) {
      const hash = createHash('sha256');
      reading = o.source.stream;
      await take(cutFrames(reading, index.blocks, 0, last, (b) => needed.has(b), hash, allocFrame));
      verifyWhole(hash.digest('hex'), expected);
      archiveVerified = true;
    } else {
      const reader = o.source.rangeReader;
      const whole = plan.runs.length === 1 && plan.runs[0]!.firstBlock === 0 && plan.runs[0]!.lastBlock === last;
      const hash = whole ? createHash('sha256') : undefined;
      for (const r of plan.runs) {
        const b0 = index.blocks[r.firstBlock]!;
        const b1 = index.blocks[r.lastBlock]!;
        reading = await reader(b0.compressedOffset, b1.compressedOffset + b1.compressedLength - 1);
        if (failed !== undefined) throw failed;
        await take(cutFrames(reading, index.blocks, r.firstBlock, r.lastBlock, () => true, hash, allocFrame));
      }
      if (hash) {
        verifyWhole(hash.digest('hex'), expected);
        archiveVerified = true;
      }
    }
    while (inflight.length) await drainOne();
    post({ t: 'end' });
    result = await job;
    if (failed !== undefined) throw failed;
  } catch (err) {
    fail(err);
    throw signal?.aborted ? abortError(signal) : failed;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    port1.close();
    // The extractor's heap held the plan and directory list: let it go with its thread.
    host.discard(extractor);
    if (failed !== undefined) pool.destroy();
    else pool.release();
  }
  progress.bytesDone = result.bytesWritten;
  progress.filesDone = result.filesWritten;
  report(true);
  return { filesWritten: result.filesWritten, bytesWritten: result.bytesWritten, archiveVerified, warnings: result.warnings };
}

function verifyWhole(actual: string, expected: string | undefined): void {
  if (expected && actual !== expected) {
    throw new CairnError('checksum-mismatch', `archive sha256 ${actual} does not match the expected ${expected}`);
  }
}
