/**
 * The one worker-thread module: block compression/decompression requests, and the long jobs
 * (reading volumes for pack, writing files for unpack) that run synchronously off the main thread.
 */
import { createHash } from 'node:crypto';
import { getHeapStatistics } from 'node:v8';
import { parentPort } from 'node:worker_threads';
import type { Codec } from './archive-types.ts';
import { compressBlock, decompressBlock } from './block-codec.ts';
import { transferView } from './buffers.ts';
import { firstContentMismatch } from './content-checks.ts';
import { applyDirectWrites } from './direct-writes.ts';
import { runExtractJob } from './extract-job.ts';
import { runFrameReaderJob } from './frame-reader-job.ts';
import { runHashAheadJob } from './hash-ahead-job.ts';
import { loadNativeReads, type NativeReads } from './native-reads.ts';
import { runPackReader } from './pack-reader.ts';
import { runPackScanner } from './pack-scanner.ts';
import { runUploadJob } from './upload-job.ts';
import type { SlabRef } from './shared-slab.ts';
import { collectNow } from './thread-gc.ts';
import { serializeError } from './worker-errors.ts';

interface CodecRequest {
  id: number;
  kind: 'codec';
  op: 'compress' | 'decompress';
  codec: Codec;
  level: number;
  /** The input's buffer (transferred), or its shared slab (`inSlab`). */
  buf?: ArrayBuffer;
  inSlab?: SlabRef;
  offset: number;
  length: number;
  expectedLength: number;
  hashInput: boolean;
  hashOutput: boolean;
  /** Hand the input buffer back (for reuse) when the output lives elsewhere. */
  returnInput: boolean;
  /** Where to decode to, when the caller recycles buffers. */
  output?: ArrayBuffer;
  /** Or a slot of a shared slab (shared-slab.ts) to decode into: the output stays there, only its place is answered. */
  slab?: SlabRef;
  outputAt?: number;
  /** Files in the output to check against their sha256 (content-checks.ts). */
  checks?: ArrayBuffer;
  /** The native helper's path, when built: it hashes the checked files and writes them (`writes`). */
  native?: string;
  /** Checked files to write once the checks pass (direct-writes.ts); nothing is written without `native`. */
  writes?: { buf: ArrayBuffer; token: string };
}

interface JobRequest {
  id: number;
  kind: 'pack-scan' | 'pack-reader' | 'extract' | 'hash-ahead' | 'read-frames' | 'put-object' | 'heap-stats' | 'forget-slab';
  data: unknown;
}

/** The shared slabs this codec worker was given, by id, until their unpack forgets them. */
const slabs = new Map<string, SharedArrayBuffer>();

function slabOf(ref: SlabRef): SharedArrayBuffer {
  if (ref.sab) slabs.set(ref.id, ref.sab);
  const sab = slabs.get(ref.id);
  if (!sab) throw new Error(`shared slab ${ref.id} is not known here`);
  return sab;
}

/** A slab's unpack ended: its memory is released once no thread holds it (collected here at once). */
function forgetSlab(id: string): void {
  if (slabs.delete(id)) collectNow();
}

const port = parentPort!;

function reply(id: number, result: unknown, transfer: ArrayBuffer[] = []): void {
  port.postMessage({ id, ok: true, result }, transfer);
}

function fail(id: number, err: unknown): void {
  port.postMessage({ id, ok: false, error: serializeError(err) });
}

let native: { path: string; mod: NativeReads | undefined } | undefined;

function nativeAt(path: string): NativeReads | undefined {
  if (native?.path !== path) native = { path, mod: loadNativeReads(path) };
  return native.mod;
}

function runCodec(m: CodecRequest): void {
  const input = m.inSlab ? Buffer.from(slabOf(m.inSlab), m.offset, m.length) : Buffer.from(m.buf!, m.offset, m.length);
  const inputSha = m.hashInput ? createHash('sha256').update(input).digest('hex') : undefined;
  const sab = m.slab ? slabOf(m.slab) : undefined;
  const into = sab ? Buffer.from(sab, m.outputAt, m.expectedLength) : m.output;
  const out = m.op === 'compress' ? compressBlock(m.codec, m.level, input) : decompressBlock(m.codec, input, m.expectedLength, into);
  const outputSha = m.hashOutput ? createHash('sha256').update(out).digest('hex') : undefined;
  const helper = m.native ? nativeAt(m.native) : undefined;
  const mismatch = m.checks ? firstContentMismatch(out, m.checks, helper) : undefined;
  // Written only from a block whose files all passed their checks.
  const written = m.writes && m.checks && !mismatch ? applyDirectWrites(out, m.checks, m.writes.buf, m.writes.token, helper) : undefined;
  const extra: ArrayBuffer[] = written ? [written] : [];
  const results = { inputSha, outputSha, mismatch, written };
  if (m.buf && out.buffer === m.buf) {
    reply(m.id, { buf: m.buf, offset: out.byteOffset, length: out.length, ...results }, [m.buf, ...extra]);
    return;
  }
  const back = m.returnInput ? m.buf : undefined;
  const transfer = back ? [back, ...extra] : extra;
  // Decoded into a shared slot: only its place goes back.
  if (sab && out.buffer === sab) {
    reply(m.id, { shared: true, offset: out.byteOffset, length: out.length, ...results, input: back }, transfer);
    return;
  }
  const view = transferView(out);
  reply(m.id, { ...view, ...results, input: back }, [view.buf, ...transfer]);
}

port.on('message', (m: CodecRequest | JobRequest) => {
  if (m.kind === 'codec') {
    try {
      runCodec(m);
    } catch (err) {
      fail(m.id, err);
    }
    return;
  }
  const run = async (): Promise<unknown> => {
    if (m.kind === 'heap-stats') return getHeapStatistics();
    if (m.kind === 'forget-slab') return forgetSlab(m.data as string);
    if (m.kind === 'pack-scan') return runPackScanner(m.data as never);
    if (m.kind === 'hash-ahead') return runHashAheadJob(m.data as never);
    // The store thread's jobs start at once (a port closed right after would otherwise go unseen);
    // the object stores they open, and the S3 SDK, are loaded only then (store-spec.ts).
    if (m.kind === 'read-frames') return runFrameReaderJob(m.data as never);
    if (m.kind === 'put-object') return runUploadJob(m.data as never);
    return m.kind === 'pack-reader' ? runPackReader(m.data as never) : runExtractJob(m.data as never);
  };
  run().then(
    (result) => reply(m.id, result),
    (err: unknown) => fail(m.id, err),
  );
});

port.postMessage({ ready: true });
