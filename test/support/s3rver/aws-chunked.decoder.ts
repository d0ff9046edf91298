import { Transform, type TransformCallback } from 'node:stream';
import { createChecksum, type Checksum, type ChecksumAlgorithm } from './checksums.ts';
import { S3Error } from './s3rver-internals.ts';

export interface BodyDecoderOptions {
  /** The body is `aws-chunked`: `<hex size>[;chunk-signature=…]\r\n<data>\r\n … 0\r\n<trailers>\r\n`. */
  chunked: boolean;
  /** Checksums sent as headers (`x-amz-checksum-*`, Content-MD5), base64. */
  expected: ReadonlyMap<ChecksumAlgorithm, string>;
  /** Algorithms announced in `x-amz-trailer`; their values arrive after the last chunk. */
  trailerAlgorithms: readonly ChecksumAlgorithm[];
  /** `x-amz-decoded-content-length`, when sent. */
  decodedLength?: number;
}

const MAX_LINE = 8 * 1024;
const CR = 0x0d;
const LF = 0x0a;

type State = 'size' | 'data' | 'data-cr' | 'data-lf' | 'trailer' | 'done';

/**
 * Turns a request body into the object's bytes: strips aws-chunked framing (signed or not, with
 * or without trailers) and verifies every checksum the client sent. Fails with S3's own error
 * codes so the client sees IncompleteBody/BadDigest instead of a silently wrong object.
 */
export class BodyDecoder extends Transform {
  /** Base64 digests of the decoded body, filled when it ended well (S3 echoes them back). */
  readonly computed = new Map<ChecksumAlgorithm, string>();
  private readonly hashers = new Map<ChecksumAlgorithm, Checksum>();
  private readonly trailers = new Map<ChecksumAlgorithm, string>();
  private state: State;
  private line: Buffer[] = [];
  private lineLength = 0;
  private remaining = 0;
  private decoded = 0;

  constructor(private readonly options: BodyDecoderOptions) {
    super();
    this.state = options.chunked ? 'size' : 'data';
    for (const alg of [...options.expected.keys(), ...options.trailerAlgorithms]) {
      if (!this.hashers.has(alg)) this.hashers.set(alg, createChecksum(alg));
    }
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    try {
      if (this.options.chunked) this.decodeChunked(chunk);
      else this.emitData(chunk);
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      if (this.options.chunked) {
        if (this.state === 'trailer' && this.lineLength > 0) this.trailerLine(this.takeLine());
        // The SDK ends with `0\r\n` and no final CRLF when it sends no trailer.
        if (this.state !== 'trailer' && this.state !== 'done') {
          throw new S3Error('IncompleteBody', 'The request body ended inside an aws-chunked chunk.');
        }
      }
      if (this.options.decodedLength !== undefined && this.decoded !== this.options.decodedLength) {
        throw new S3Error(
          'IncompleteBody',
          `You did not provide the number of bytes specified by the x-amz-decoded-content-length header (${this.options.decodedLength}, got ${this.decoded}).`,
        );
      }
      this.verify();
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  private verify(): void {
    for (const [alg, hasher] of this.hashers) this.computed.set(alg, hasher.digest().toString('base64'));
    for (const source of [this.options.expected, this.trailers]) {
      for (const [alg, value] of source) {
        const actual = this.computed.get(alg);
        // A trailer for an algorithm that was not announced cannot be checked.
        if (actual !== undefined && actual !== value) {
          this.computed.clear();
          throw new S3Error('BadDigest', `The ${alg.toUpperCase()} you specified did not match the calculated checksum.`, {
            Algorithm: alg,
            Expected: value,
            Calculated: actual,
          });
        }
      }
    }
  }

  private emitData(data: Buffer): void {
    if (data.length === 0) return;
    for (const hasher of this.hashers.values()) hasher.update(data);
    this.decoded += data.length;
    this.push(data);
  }

  private decodeChunked(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      switch (this.state) {
        case 'size':
        case 'trailer': {
          const nl = chunk.indexOf(LF, i);
          const end = nl === -1 ? chunk.length : nl;
          this.lineLength += end - i;
          if (this.lineLength > MAX_LINE) throw malformed('chunk header line too long');
          this.line.push(chunk.subarray(i, end));
          i = end;
          if (nl === -1) break;
          i = nl + 1;
          const line = this.takeLine();
          if (this.state === 'size') this.sizeLine(line);
          else this.trailerLine(line);
          break;
        }
        case 'data': {
          const take = Math.min(this.remaining, chunk.length - i);
          this.emitData(chunk.subarray(i, i + take));
          this.remaining -= take;
          i += take;
          if (this.remaining === 0) this.state = 'data-cr';
          break;
        }
        case 'data-cr':
          if (chunk[i] !== CR) throw malformed('chunk data not followed by CRLF');
          this.state = 'data-lf';
          i++;
          break;
        case 'data-lf':
          if (chunk[i] !== LF) throw malformed('chunk data not followed by CRLF');
          this.state = 'size';
          i++;
          break;
        case 'done':
          // Anything after the final CRLF is not part of the object.
          i = chunk.length;
          break;
      }
    }
  }

  private takeLine(): string {
    let line = Buffer.concat(this.line).toString('latin1');
    this.line = [];
    this.lineLength = 0;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    return line;
  }

  private sizeLine(line: string): void {
    const hex = line.split(';', 1)[0]!.trim();
    if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) throw malformed(`bad chunk size line "${line.slice(0, 80)}"`);
    const size = parseInt(hex, 16);
    if (size === 0) {
      this.state = 'trailer';
    } else {
      this.remaining = size;
      this.state = 'data';
    }
  }

  private trailerLine(line: string): void {
    if (line === '') {
      this.state = 'done';
      return;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw malformed(`bad trailer line "${line.slice(0, 80)}"`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const m = /^x-amz-checksum-([a-z0-9]+)$/.exec(name);
    if (m) this.trailers.set(m[1] as ChecksumAlgorithm, line.slice(colon + 1).trim());
  }
}

function malformed(detail: string): Error {
  return new S3Error('InvalidRequest', `Malformed aws-chunked request body: ${detail}.`);
}
