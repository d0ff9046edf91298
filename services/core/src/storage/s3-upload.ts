import {
  AbortMultipartUploadCommand,
  ChecksumAlgorithm,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { CairnError } from '../errors.ts';
import { eachChunk } from './each-chunk.ts';

/** S3 allows at most this many parts in one multipart upload, each at most 5 GiB. */
export const MAX_PARTS = 10_000;
export const MAX_PART_SIZE = 5 * 1024 ** 3;

/**
 * Parts double in size every this many parts. An archive's size is not known while it is packed,
 * and S3 takes at most 10,000 parts: growing parts let any archive fit (from 6 MiB parts, 1,000 of
 * each size reach ~5.9 TiB, past S3's 5 TiB object limit; from 5 MiB, 4.9 TiB), while an
 * archive's first 1,000 parts (6 GB at 6 MiB) keep memory at the configured part size. Fixed parts
 * capped an archive at 10,000 × S3_PART_SIZE.
 */
export const PARTS_PER_SIZE = 1000;

/** The size of part `partNumber` (from 1) of a multipart upload whose first parts are `base` bytes. */
export function partSizeOf(base: number, partNumber: number, partsPerSize = PARTS_PER_SIZE): number {
  return Math.min(MAX_PART_SIZE, base * 2 ** Math.floor((partNumber - 1) / partsPerSize));
}

/**
 * Part buffers, shared by the uploads of one store and kept between them. An upload fills a
 * buffer, sends it as a part and, once the part is stored, gives it back for the next one. A
 * fresh buffer per part (lib-storage's way) is garbage the moment it is sent, and the collector
 * frees it late: with two large uploads running, that waiting garbage was the largest share of a
 * node worker's memory. Together the uploads hold at most max(queueSize + 1, 2 × uploads running)
 * buffers: one upload alone keeps queueSize parts in flight while it fills the next; several
 * share that many, each always able to fill one part while another is in flight (two backups at
 * once held 36 MiB of 6 MiB parts at the default before, 24 MiB now). Idle buffers are dropped
 * after a while so a quiet worker gives the memory back.
 */
export class PartBufferPool {
  private idle: Buffer[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** Buffers allocated so far (tests: parts reuse them). */
  allocated = 0;
  /** Buffers out (being filled, or in flight), and the most out at once (tests). */
  private out = 0;
  peakOut = 0;
  get inUse(): number {
    return this.out;
  }
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    readonly partSize: number,
    private readonly queueSize: number,
    private readonly idleMs = 30_000,
  ) {}

  private get limit(): number {
    return Math.max(this.queueSize + 1, 2 * this.running);
  }

  /** An upload starts: until end(), its buffers count against the shared limit, which it raises. */
  begin(): void {
    this.running++;
    this.wake();
  }

  end(): void {
    this.running--;
  }

  /**
   * A buffer of at least `size` bytes, once the limit lets one more out (in turn with the others
   * waiting); idle ones too small for it (an upload's parts grew) are dropped. Rejects if `signal` aborts first.
   */
  async take(size = this.partSize, signal?: AbortSignal): Promise<Buffer> {
    if (this.out < this.limit && !this.waiting.length) this.out++;
    else await this.turn(signal);
    this.peakOut = Math.max(this.peakOut, this.out);
    for (let reused = this.idle.pop(); reused; reused = this.idle.pop()) if (reused.length >= size) return reused;
    this.allocated++;
    return Buffer.allocUnsafeSlow(size);
  }

  /** A buffer back, for reuse. */
  give(buffer: Buffer): void {
    if (this.idle.length < this.queueSize + 1) this.idle.push(buffer);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.idle = [];
    }, this.idleMs).unref();
    this.release();
  }

  /** A buffer that must not be reused (a failed request's socket may still be reading it) no longer counts. */
  drop(): void {
    this.release();
  }

  private release(): void {
    this.out--;
    this.wake();
  }

  private wake(): void {
    while (this.waiting.length && this.out < this.limit) {
      this.out++;
      this.waiting.shift()!();
    }
  }

  /** Waits for its turn; the slot is counted for it when it resolves. */
  private turn(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const stopped = (): void => {
        const at = this.waiting.indexOf(go);
        if (at >= 0) this.waiting.splice(at, 1);
        reject(uploadStopped());
      };
      const go = (): void => {
        signal?.removeEventListener('abort', stopped);
        resolve();
      };
      if (signal?.aborted) return stopped();
      this.waiting.push(go);
      signal?.addEventListener('abort', stopped, { once: true });
    });
  }
}

function uploadStopped(): Error {
  return Object.assign(new Error('upload stopped'), { name: 'AbortError' });
}

export interface ObjectUploadTarget {
  client: S3Client;
  bucket: string;
  /** The full key, the store's prefix included. */
  key: string;
  contentType?: string;
  queueSize: number;
  pool: PartBufferPool;
  /** S3's limit unless a test lowers it. */
  maxParts?: number;
  /** PARTS_PER_SIZE unless a test lowers it. */
  partsPerSize?: number;
}

/**
 * One stream into one object. A body that fits in a part is one PutObject; a larger one is a
 * multipart upload, created when the first part is full and more bytes follow, with up to
 * `queueSize` parts in flight while the body is still being read. The first request that fails
 * stops the others; `failure` then holds its error (not the aborts it caused).
 */
export class ObjectUpload {
  /** The first request that failed on its own. */
  failure: unknown;
  /** Set when the upload was stopped from outside (cancel) before any request failed. */
  stoppedFirst = false;
  size = 0;
  private uploadId: string | undefined;
  private readonly parts: CompletedPart[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private readonly requests = new AbortController();

  constructor(private readonly target: ObjectUploadTarget) {}

  /** Stops every request in flight (cancel); `run` then fails. */
  stop(): void {
    if (this.failure === undefined) this.stoppedFirst = true;
    this.requests.abort();
  }

  /** Reads `body` to its end and stores it; returns the object's ETag. On failure nothing is left behind. */
  async run(body: Readable | Buffer): Promise<string | undefined> {
    const { pool } = this.target;
    if (Buffer.isBuffer(body) && body.length <= pool.partSize) {
      this.size = body.length;
      return await this.putWhole(body);
    }
    // The part being filled, this upload's own until it is sent (held is cleared then): its number
    // is partNumber + 1, its size partSize.
    let partNumber = 0;
    let partSize = pool.partSize;
    let held: Buffer | undefined;
    let filled = 0;
    // Copies a chunk into part buffers; a promise only when a full part must be sent first (the body waits meanwhile).
    const copyIn = (chunk: Buffer, from: number): Promise<void> | undefined => {
      for (let offset = from; offset < chunk.length; ) {
        if (filled === partSize) {
          // Full, and more bytes follow: a part of a multipart upload.
          const full = held!;
          held = undefined;
          return this.sendPart(full, ++partNumber, filled).then(async () => {
            partSize = partSizeOf(pool.partSize, partNumber + 1, this.target.partsPerSize);
            held = await pool.take(partSize, this.requests.signal);
            filled = 0;
            return copyIn(chunk, offset);
          });
        }
        const copied = chunk.copy(held!, filled, offset, Math.min(chunk.length, offset + partSize - filled));
        filled += copied;
        offset += copied;
      }
      this.throwIfFailed();
      return undefined;
    };
    pool.begin();
    try {
      held = await pool.take(partSize, this.requests.signal);
      if (Buffer.isBuffer(body)) {
        this.size = body.length;
        await copyIn(body, 0);
      } else {
        await eachChunk(body, (chunk) => {
          this.size += chunk.length;
          return copyIn(chunk, 0);
        });
      }
      const last = held!;
      held = undefined;
      if (partNumber === 0) return await this.putWholeFrom(last, filled);
      await this.sendPart(last, ++partNumber, filled);
      await this.drain();
      this.throwIfFailed();
      return await this.complete();
    } catch (err) {
      // Never sent: nothing else reads it.
      if (held) pool.give(held);
      this.requests.abort();
      await this.drain();
      if (this.uploadId) await this.abortMultipart().catch(() => undefined);
      throw err;
    } finally {
      pool.end();
    }
  }

  /** The whole body, in one part buffer: one PutObject; the buffer goes back to the pool after. */
  private async putWholeFrom(buffer: Buffer, length: number): Promise<string | undefined> {
    let etag: string | undefined;
    try {
      etag = await this.putWhole(buffer.subarray(0, length));
    } catch (err) {
      // The socket may still be reading it.
      this.target.pool.drop();
      throw err;
    }
    this.target.pool.give(buffer);
    return etag;
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.requests.signal.aborted) throw uploadStopped();
  }

  private async putWhole(data: Buffer): Promise<string | undefined> {
    const { client, bucket, key, contentType } = this.target;
    const out = await this.request(() =>
      client.send(
        new PutObjectCommand({ Bucket: bucket, Key: key, Body: data, ContentLength: data.length, ...(contentType ? { ContentType: contentType } : {}) }),
        {
          abortSignal: this.requests.signal,
        },
      ),
    );
    return out.ETag;
  }

  /** Waits for room, then starts the part; its buffer goes back to the pool once the part is stored. */
  private async sendPart(buffer: Buffer, partNumber: number, length: number): Promise<void> {
    try {
      while (this.inFlight.size >= this.target.queueSize) await Promise.race(this.inFlight);
      this.throwIfFailed();
      const maxParts = this.target.maxParts ?? MAX_PARTS;
      if (partNumber > maxParts) {
        throw new CairnError(
          'validation',
          `the object is larger than ${maxParts} parts (S3's limit for one object) growing from ` +
            `S3_PART_SIZE (${this.target.pool.partSize} bytes): raise S3_PART_SIZE`,
        );
      }
      this.uploadId ??= await this.create();
      this.throwIfFailed();
    } catch (err) {
      // Not sent: nothing else reads it.
      this.target.pool.give(buffer);
      throw err;
    }
    const { client, bucket, key } = this.target;
    const part = this.request(() =>
      client.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId: this.uploadId,
          PartNumber: partNumber,
          Body: buffer.subarray(0, length),
          ContentLength: length,
        }),
        { abortSignal: this.requests.signal },
      ),
    ).then(
      (out) => {
        if (!out.ETag) {
          this.target.pool.drop();
          return this.fail(new Error(`part ${partNumber} was stored without an ETag`));
        }
        this.parts.push({
          PartNumber: partNumber,
          ETag: out.ETag,
          ...(out.ChecksumCRC32 ? { ChecksumCRC32: out.ChecksumCRC32 } : {}),
          ...(out.ChecksumCRC32C ? { ChecksumCRC32C: out.ChecksumCRC32C } : {}),
          ...(out.ChecksumSHA1 ? { ChecksumSHA1: out.ChecksumSHA1 } : {}),
          ...(out.ChecksumSHA256 ? { ChecksumSHA256: out.ChecksumSHA256 } : {}),
        });
        this.target.pool.give(buffer);
      },
      // Already recorded by request(); a part that failed keeps its buffer out of the pool (the
      // socket may still be reading it), as does one stored without an ETag.
      () => this.target.pool.drop(),
    );
    this.inFlight.add(part);
    void part.finally(() => this.inFlight.delete(part));
  }

  /** Never cut short: its upload id must come back so the upload can be aborted. */
  private async create(): Promise<string> {
    const { client, bucket, key, contentType } = this.target;
    // Parts get CRC32 checksums when the client computes flexible checksums; S3 then wants the algorithm named here.
    const flexibleChecksums = (await client.config.requestChecksumCalculation()) === 'WHEN_SUPPORTED';
    const out = await this.request(() =>
      client.send(
        new CreateMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          ...(contentType ? { ContentType: contentType } : {}),
          ...(flexibleChecksums ? { ChecksumAlgorithm: ChecksumAlgorithm.CRC32 } : {}),
        }),
      ),
    );
    if (!out.UploadId) throw new Error('CreateMultipartUpload returned no upload id');
    return out.UploadId;
  }

  private async complete(): Promise<string | undefined> {
    const { client, bucket, key } = this.target;
    this.parts.sort((a, b) => a.PartNumber! - b.PartNumber!);
    const out = await this.request(() =>
      client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: this.uploadId, MultipartUpload: { Parts: this.parts } }), {
        abortSignal: this.requests.signal,
      }),
    );
    return out.ETag;
  }

  private async abortMultipart(): Promise<void> {
    const { client, bucket, key } = this.target;
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: this.uploadId }));
  }

  /** Runs one request; its error is this upload's failure unless the upload was already stopped. */
  private async request<T>(send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (err) {
      this.fail(err);
      throw err;
    }
  }

  /** Records the first failure of this upload's own (not an abort it caused) and stops the other requests. */
  private fail(err: unknown): void {
    if (this.failure !== undefined || this.requests.signal.aborted) return;
    this.failure = err;
    this.requests.abort();
  }

  private async drain(): Promise<void> {
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
  }
}
