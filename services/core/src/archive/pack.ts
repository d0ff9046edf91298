/**
 * packArchive: volumes -> block-compressed tar stream + index (SPEC §5, §6 steps 3–4).
 *
 * Threads: a scanner worker walks the volumes and feeds what it finds to a reader worker, which
 * reads the files and fills tar blocks (the two overlap: reading starts with the first
 * directory, not after the whole walk; the scanner's thread goes as soon as the walk is done);
 * a pool of codec workers compresses blocks in parallel;
 * this thread keeps block order, hashes the stored bytes and writes them to the sink. Memory is
 * bounded by the block credits handed to the reader (a few blocks in flight, block-credits.ts),
 * whatever the volume size.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { MessageChannel } from 'node:worker_threads';
import { abortError, CairnError } from '../errors.ts';
import {
  ARCHIVE_FORMAT,
  ARCHIVE_FORMAT_VERSION,
  type ArchiveBlock,
  type ArchiveEntry,
  type ArchiveIndex,
  type ArchiveIndexHead,
  type ArchiveWarning,
  type Codec,
  type PackOptions,
  type PackParent,
  type PackResult,
  type PackSink,
  type ArchiveProgress,
} from './archive-types.ts';
import { AsyncQueue } from './async-queue.ts';
import { BlockCredits } from './block-credits.ts';
import { DEFAULT_LEVEL } from './block-codec.ts';
import { EntrySpill, type SharedSpill } from './entry-spill.ts';
import { encodeIndexStreamFromArrays, entrySource } from './archive-index.ts';
import type { PackParentData } from './pack-reuse.ts';
import type { ReusedFrame } from './tar-block-writer.ts';
import { CodecPool, type CodecResult } from './codec-pool.ts';
import { nativeAddonPath } from './native-reads.ts';
import { inlineBelow, type PackReaderBlock, type PackReaderData, type PackReaderEnd, type PackReaderResult } from './pack-reader.ts';
import { CTRL_ABORT, CTRL_CHUNKS, CTRL_CONSUMED, CTRL_CREDITS, CTRL_SLOTS, type PackScannerData, type PackScanTotals } from './pack-scanner.ts';
import { sealFrame } from '../crypto/sealing.ts';
import { ProgressLimiter } from './progress-limiter.ts';
import { SinkWriter } from './sink-writer.ts';
import { defaultConcurrency, sharedWorkerHost, type PooledWorker } from './worker-host.ts';

const DEFAULT_BLOCK_SIZE = 1024 * 1024;
const MIN_BLOCK_SIZE = 4096;
const MAX_BLOCK_SIZE = 64 * 1024 * 1024;
const PROGRESS_INTERVAL_MS = 250;

/** A block being compressed, one the reader compressed (`ready`), or frames of other objects reused in its place (`frames`). */
interface Slot {
  /** A block in a codec thread. */
  result?: Promise<CodecResult>;
  /** A block the reader compressed itself (inlineBelow): its credit comes back once written, no buffer does. */
  ready?: Buffer;
  frames?: ReusedFrame[];
  length: number;
}

function checkOptions(o: PackOptions): { codec: Codec; level: number; blockSize: number } {
  const codec = o.codec ?? 'zstd';
  if (codec !== 'zstd' && codec !== 'gzip' && codec !== 'none') throw new CairnError('validation', `unknown codec ${String(codec)}`);
  if (!o.volumes.length) throw new CairnError('validation', 'nothing to pack: no volumes');
  const names = new Set<string>();
  for (const v of o.volumes) {
    if (!v.name || v.name === '.' || v.name === '..' || v.name.includes('/') || v.name.includes('\0')) {
      throw new CairnError('validation', `bad volume name ${JSON.stringify(v.name)}`);
    }
    if (names.has(v.name)) throw new CairnError('validation', `volume ${v.name} given twice`);
    names.add(v.name);
  }
  const level = o.level ?? DEFAULT_LEVEL[codec];
  if (codec === 'gzip' && (level < 0 || level > 9)) throw new CairnError('validation', `gzip level ${level} is outside 0..9`);
  if (codec === 'zstd' && (level < -7 || level > 22)) throw new CairnError('validation', `zstd level ${level} is outside -7..22`);
  const bs = o.blockSize ?? DEFAULT_BLOCK_SIZE;
  if (!Number.isInteger(bs) || bs < MIN_BLOCK_SIZE || bs > MAX_BLOCK_SIZE) {
    throw new CairnError('validation', `block size ${bs} is outside ${MIN_BLOCK_SIZE}..${MAX_BLOCK_SIZE}`);
  }
  return { codec, level: codec === 'none' ? 0 : level, blockSize: Math.ceil(bs / 512) * 512 };
}

export async function packArchive(options: PackOptions, sink: PackSink): Promise<PackResult> {
  const { codec, level, blockSize } = checkOptions(options);
  const signal = options.signal;
  if (signal?.aborted) throw abortError(signal);
  const parent = options.parent && parentData(options.parent, codec, options.seal !== undefined, options.volumes, options.tempDir);
  const host = sharedWorkerHost();
  const concurrency = options.concurrency ?? defaultConcurrency();
  const { jobs, pool } = await CodecPool.openWith(host, concurrency, 2);
  const reader = jobs[0]!;
  const scanner = jobs[1]!;

  const ctrl = new Int32Array(new SharedArrayBuffer(4 * CTRL_SLOTS));
  // Created first: when the totals and a block are both waiting, Node delivers the older port's
  // message first, so progress never reports bytes before the totals they count towards.
  const totals = new MessageChannel();
  const { port1, port2 } = new MessageChannel();
  const recycle = new MessageChannel();
  const feed = new MessageChannel();
  const queue = new AsyncQueue<Slot>();
  const writer = new SinkWriter(sink);
  const outHash = createHash('sha256');
  const blocks: ArchiveBlock[] = [];
  const spill = new EntrySpill(options.tempDir);
  const warnings: ArchiveWarning[] = [];
  const hashBlocks = codec === 'none';
  const progress: ArchiveProgress = { bytesDone: 0, bytesTotal: 0, filesDone: 0, filesTotal: 0 };
  let failed: unknown;
  let totalsKnown = false;
  const limiter = new ProgressLimiter(() => options.onProgress?.({ ...progress }), PROGRESS_INTERVAL_MS);
  const report = (force: boolean): void => {
    // Nothing before the walk's totals: bytes done against a total of 0 would mean nothing.
    if (!options.onProgress || (!force && !totalsKnown)) return;
    limiter.update(force);
  };

  const fail = (err: unknown): void => {
    if (failed !== undefined) return;
    failed = err;
    Atomics.store(ctrl, CTRL_ABORT, 1);
    Atomics.notify(ctrl, CTRL_CREDITS);
    Atomics.notify(ctrl, CTRL_CHUNKS);
    Atomics.notify(ctrl, CTRL_CONSUMED);
    queue.fail(err);
  };
  const onAbort = (): void => fail(abortError(signal!));
  signal?.addEventListener('abort', onAbort, { once: true });
  // An abort while the worker threads were being acquired fired no event for us.
  if (signal?.aborted) onAbort();

  totals.port1.on('message', (m: PackScanTotals) => {
    progress.bytesTotal = m.bytesTotal;
    progress.filesTotal = m.filesTotal;
    totalsKnown = true;
    report(true);
  });

  let readerResult: PackReaderResult | undefined;
  port1.on('message', (m: PackReaderBlock | PackReaderEnd) => {
    if (failed !== undefined) return;
    if (m.t === 'end') {
      readerResult = m.result;
      queue.end();
      return;
    }
    if (m.entries) {
      try {
        spill.append(new Uint8Array(m.entries), m.entriesLength, m.entriesCount);
      } catch (err) {
        fail(err);
        return;
      }
    }
    for (const w of m.warnings) warnings.push(w);
    progress.bytesDone = m.bytesDone;
    progress.filesDone = m.filesDone;
    if (m.frames) return void queue.push({ frames: m.frames, length: m.length });
    if (m.frame) return void queue.push({ ready: Buffer.from(m.buf, m.frame.offset, m.frame.length), length: m.length });
    if (m.length === 0) return;
    const result = pool.run({ op: 'compress', codec, level, data: Buffer.from(m.buf, 0, m.length), hashOutput: hashBlocks, returnInput: true });
    result.catch(fail);
    queue.push({ result, length: m.length });
  });

  const volumes = options.volumes.map((v) => ({ name: v.name, dir: v.dir, excludes: v.excludes ?? [] }));
  const control = ctrl.buffer as SharedArrayBuffer;
  const native = nativeAddonPath();
  const credits = new BlockCredits(ctrl, CTRL_CREDITS, concurrency);
  const scanJob = scanner.request<PackScanTotals>(
    'pack-scan',
    { data: { volumes, control, reader: feed.port1, main: totals.port2, native, window: options.scanWindow } satisfies PackScannerData },
    [feed.port1, totals.port2],
  );
  // The scan ends long before the pack: its thread (and memory) goes as soon as it is done.
  scanJob.then(() => host.discard(scanner), fail);
  const job = reader.request<PackReaderResult>(
    'pack-reader',
    {
      data: {
        volumes,
        blockSize,
        control,
        port: port2,
        recycle: recycle.port2,
        scan: feed.port2,
        native,
        parent: parent?.data,
        // codec none: the block's sha256 comes from a codec thread (hashOutput), so every block goes there.
        inline: codec === 'none' ? undefined : { codec, level, below: inlineBelow(blockSize, level) },
      } satisfies PackReaderData,
    },
    [port2, recycle.port2, feed.port2],
  );
  job.catch(fail);

  let storedBytes = 0;
  let reusedBytes = 0;
  // Encryption at rest: each own frame sealed (AES-256-GCM) at its offset in the object.
  const seal = options.seal;
  let held: { block: ArchiveBlock; data: Buffer } | undefined;
  const writeSealed = async (frame: { block: ArchiveBlock; data: Buffer }, last: boolean): Promise<void> => {
    const sealed = sealFrame(seal!.key, seal!.object, storedBytes, frame.data, last);
    frame.block.compressedOffset = storedBytes;
    frame.block.compressedLength = sealed.length;
    if (last) frame.block.last = true;
    outHash.update(sealed);
    storedBytes += sealed.length;
    await writer.write(sealed, signal);
  };
  const objects = new Set<string>();
  let tarOffset = 0;
  try {
    for (;;) {
      const next = await queue.next();
      if (next.done) break;
      const { frames, ready, result } = next.value;
      if (frames) {
        for (const f of frames) {
          const block: ArchiveBlock = {
            object: f.object,
            compressedOffset: f.compressedOffset,
            compressedLength: f.compressedLength,
            uncompressedOffset: tarOffset,
            uncompressedLength: f.uncompressedLength,
          };
          if (f.sha256) block.sha256 = f.sha256;
          if (f.last) block.last = true;
          blocks.push(block);
          objects.add(f.object);
          reusedBytes += f.compressedLength;
          tarOffset += f.uncompressedLength;
        }
      } else {
        const out = ready ? { data: ready, input: undefined, outputSha: undefined } : await result!;
        const block: ArchiveBlock = {
          compressedOffset: storedBytes,
          compressedLength: out.data.length,
          uncompressedOffset: tarOffset,
          uncompressedLength: next.value.length,
        };
        blocks.push(block);
        tarOffset += next.value.length;
        if (seal) {
          // Sealed one frame late: whether a frame is the object's last is known only at the end.
          if (held) await writeSealed(held, false);
          held = { block, data: out.data };
        } else {
          if (out.outputSha) block.sha256 = out.outputSha;
          outHash.update(out.data);
          storedBytes += out.data.length;
          await writer.write(out.data, signal);
        }
        // The raw block goes back to the reader once its frame is written: a few blocks circulate.
        if (out.input) recycle.port1.postMessage(out.input, [out.input]);
      }
      // Every slot took a block credit in the reader: a block, a frame it compressed, or a run of reused frames.
      credits.giveBack();
      report(false);
    }
    if (failed !== undefined) throw failed;
    if (held) await writeSealed(held, true);
    // The reader's reply arrives on another port; its end message is the last on ours.
    await job;
    await scanJob;
    await writer.end(signal);
    if (failed !== undefined) throw failed;
  } catch (err) {
    fail(err);
    spill.close();
    throw signal?.aborted ? abortError(signal) : err;
  } finally {
    credits.close();
    limiter.stop();
    parent?.close();
    signal?.removeEventListener('abort', onAbort);
    port1.close();
    recycle.port1.close();
    totals.port1.close();
    host.discard(scanner);
    finishWorkers(failed !== undefined, reader, pool);
  }

  const r = readerResult!;
  if (r.tarBytes !== tarOffset) {
    spill.close();
    throw new CairnError('internal', `tar length mismatch: reader wrote ${r.tarBytes}, blocks hold ${tarOffset}`);
  }
  report(true);
  const sha256 = outHash.digest('hex');
  const count = (t: ArchiveEntry['type']): number =>
    r.volumes.reduce((n, v) => n + (t === 'file' ? v.files : t === 'dir' ? v.dirs : t === 'symlink' ? v.symlinks : v.hardlinks), 0);
  const logicalBytes = r.volumes.reduce((n, v) => n + v.logicalBytes, 0);
  const head: ArchiveIndexHead = {
    format: ARCHIVE_FORMAT,
    version: ARCHIVE_FORMAT_VERSION,
    createdAt: new Date().toISOString(),
    meta: { ...(options.meta ?? {}) },
    codec,
    level,
    blockSize,
    chunkSize: blockSize,
    objects: [...objects],
    ...(seal ? { encryption: 'aes-256-gcm' as const } : {}),
    sha256,
    volumes: r.volumes,
    totals: {
      entries: r.volumes.reduce((n, v) => n + v.entries, 0),
      files: count('file'),
      dirs: count('dir'),
      symlinks: count('symlink'),
      hardlinks: count('hardlink'),
      logicalBytes,
      tarBytes: tarOffset,
      storedBytes,
      blocks: blocks.length,
      warnings: warnings.length,
      reusedBytes,
    },
    blocks,
    warnings,
  };
  return new PackedArchive(head, spill);
}

/**
 * The parent of an incremental pack as the reader thread reads it: its entries in a spill file
 * (the one readIndex made, or a copy of an in-memory index's), its block table and objects.
 */
function parentData(
  p: PackParent,
  codec: Codec,
  sealed: boolean,
  volumes: readonly { name: string }[],
  tempDir?: string,
): { data: PackParentData; close(): void } {
  const ix = p.index;
  if (ix.version < 2) throw new CairnError('validation', `parent backup ${p.id} is in archive format ${ix.version}: an incremental needs format 2`);
  if (ix.codec !== codec) throw new CairnError('validation', `parent backup ${p.id} is compressed with ${ix.codec}, not ${codec}`);
  if ((ix.encryption !== undefined) !== sealed)
    throw new CairnError('validation', `parent backup ${p.id} is ${ix.encryption ? 'encrypted' : 'not encrypted'}; this backup ${sealed ? 'is' : 'is not'}`);
  const rehashShare = p.rehashShare ?? 0.01;
  if (!(rehashShare >= 0 && rehashShare <= 1)) throw new CairnError('validation', `rehash share ${rehashShare} is outside 0..1`);
  let spill: EntrySpill | undefined;
  let shared: SharedSpill;
  if (ix.entries instanceof EntrySpill) {
    shared = ix.entries.share();
  } else {
    spill = new EntrySpill(tempDir);
    for (const batch of entrySource(ix).batches())
      for (let i = 0; i < batch.length; i += 1000) spill.appendJson(Buffer.from(JSON.stringify(batch.slice(i, i + 1000))));
    shared = spill.share();
  }
  return {
    data: {
      id: p.id,
      chunkSize: ix.chunkSize,
      blocks: ix.blocks,
      objects: [...p.objects],
      entries: shared,
      rehashShare,
      volumes: volumes.map((v) => v.name),
    },
    close: () => spill?.close(),
  };
}

/** PackResult: the index head in memory, the entries in the spill file until close(). */
class PackedArchive implements PackResult {
  private whole: ArchiveIndex | undefined;
  readonly sha256: string;
  readonly storedBytes: number;
  readonly logicalBytes: number;
  readonly reusedBytes: number;
  readonly objects: string[];
  readonly fileCount: number;
  readonly warnings: ArchiveWarning[];

  constructor(
    readonly head: ArchiveIndexHead,
    private readonly spill: EntrySpill,
  ) {
    this.sha256 = head.sha256;
    this.storedBytes = head.totals.storedBytes;
    this.logicalBytes = head.totals.logicalBytes;
    this.reusedBytes = head.totals.reusedBytes ?? 0;
    this.objects = head.objects ?? [];
    this.fileCount = head.totals.files;
    this.warnings = head.warnings;
  }

  get index(): ArchiveIndex {
    if (!this.whole) {
      const entries: ArchiveEntry[] = [];
      for (const batch of this.entries()) for (const e of batch) entries.push(e);
      this.whole = { ...this.head, entries };
    }
    return this.whole;
  }

  entries(): Generator<ArchiveEntry[]> {
    return this.spill.batches();
  }

  indexStream(): Readable {
    // The reader thread's batches are JSON.stringify output: turned into lines without re-parsing.
    return encodeIndexStreamFromArrays(this.head, this.head.totals.entries, this.spill.arrays());
  }

  close(): void {
    this.spill.close();
  }
}

function finishWorkers(failed: boolean, reader: PooledWorker, pool: CodecPool): void {
  // The reader's heap grew with the scan list: a fresh thread (~30 ms) is cheaper than keeping it.
  sharedWorkerHost().discard(reader);
  if (failed) pool.destroy();
  else pool.release();
}
