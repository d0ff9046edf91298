/**
 * Encryption at rest (SPEC §5, issue 14): every stored frame of an archive, and its index, sealed
 * with AES-256-GCM under the backup's own data key (random per upload attempt, wrapped by a
 * key-encryption key: keyring.ts).
 *
 * - A frame's nonce is its offset in its object (8 bytes) after four zero bytes: frames of one
 *   object never overlap, so a nonce never repeats under one key. Its additional data binds the
 *   object (the backup that wrote it), the offset, the sealed length and whether it is the
 *   object's last frame: a frame moved, swapped, truncated, spliced from another backup or
 *   presented as the last one fails authentication. Each frame opens on its own, so a single
 *   path is still read from only its frames.
 * - The index is sealed in chunks of up to 1 MiB, each `u32 length ‖ sealed bytes`, nonces with
 *   four 0xFF bytes before the chunk number (apart from every frame nonce), the last chunk flagged:
 *   a truncated index fails.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { CairnError } from '../errors.ts';

export const TAG_BYTES = 16;
const INDEX_CHUNK = 1024 * 1024;

function frameNonce(offset: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64BE(BigInt(offset), 4);
  return n;
}

function frameAad(object: string, offset: number, sealedLength: number, last: boolean): Buffer {
  return Buffer.from(`cairn-frame-v2\0${object}\0${offset}\0${sealedLength}\0${last ? 1 : 0}`);
}

/** Seals one stored frame of `object` at `offset`; the result is TAG_BYTES longer. */
export function sealFrame(key: Buffer, object: string, offset: number, plain: Uint8Array, last: boolean): Buffer {
  const c = createCipheriv('aes-256-gcm', key, frameNonce(offset));
  c.setAAD(frameAad(object, offset, plain.length + TAG_BYTES, last));
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

/** Opens a frame sealed by sealFrame; anything altered or misplaced is `checksum-mismatch` naming it. */
export function openFrame(key: Buffer, object: string, offset: number, sealed: Uint8Array, last: boolean): Buffer {
  if (sealed.length < TAG_BYTES) throw new CairnError('checksum-mismatch', `frame at offset ${offset} of backup ${object}'s archive is too short to be sealed`);
  const body = sealed.subarray(0, sealed.length - TAG_BYTES);
  try {
    const d = createDecipheriv('aes-256-gcm', key, frameNonce(offset));
    d.setAAD(frameAad(object, offset, sealed.length, last));
    d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    return Buffer.concat([d.update(body), d.final()]);
  } catch (err) {
    throw new CairnError(
      'checksum-mismatch',
      `frame at offset ${offset} of backup ${object}'s archive fails authentication (altered, moved or not this backup's)`,
      {
        cause: err,
      },
    );
  }
}

function indexNonce(chunk: number): Buffer {
  const n = Buffer.alloc(12, 0xff);
  n.writeBigUInt64BE(BigInt(chunk), 4);
  return n;
}

function indexAad(object: string, chunk: number, last: boolean): Buffer {
  return Buffer.from(`cairn-index-v2\0${object}\0${chunk}\0${last ? 1 : 0}`);
}

/** A stream sealing an index's bytes (for backup `object`) in chunks. */
export function sealIndexStream(key: Buffer, object: string): Transform {
  let buf: Buffer = Buffer.alloc(0);
  let chunk = 0;
  const emit = (t: Transform, plain: Buffer, last: boolean): void => {
    const c = createCipheriv('aes-256-gcm', key, indexNonce(chunk));
    c.setAAD(indexAad(object, chunk, last));
    const sealed = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(sealed.length);
    t.push(len);
    t.push(sealed);
    chunk++;
  };
  return new Transform({
    transform(data: Buffer, _enc, cb: TransformCallback) {
      buf = buf.length ? Buffer.concat([buf, data]) : data;
      // Keep at least one byte back: the last chunk is only known at the end.
      while (buf.length > INDEX_CHUNK) {
        emit(this, buf.subarray(0, INDEX_CHUNK), false);
        buf = buf.subarray(INDEX_CHUNK);
      }
      cb();
    },
    flush(cb: TransformCallback) {
      emit(this, buf, true);
      cb();
    },
  });
}

/** The inverse of sealIndexStream; fails on any altered, reordered or missing chunk. */
export function openIndexStream(key: Buffer, object: string): Transform {
  let buf: Buffer = Buffer.alloc(0);
  let chunk = 0;
  let ended = false;
  const fail = (why: string): CairnError => new CairnError('checksum-mismatch', `the index of backup ${object} ${why}`);
  return new Transform({
    transform(data: Buffer, _enc, cb: TransformCallback) {
      buf = buf.length ? Buffer.concat([buf, data]) : data;
      try {
        while (buf.length >= 4) {
          const len = buf.readUInt32BE(0);
          if (len < TAG_BYTES || len > INDEX_CHUNK + TAG_BYTES) throw fail('is not a sealed index');
          if (buf.length < 4 + len) break;
          if (ended) throw fail('goes on after its last chunk');
          const sealed = buf.subarray(4, 4 + len);
          buf = buf.subarray(4 + len);
          // The last chunk is the one that authenticates as last.
          let plain: Buffer | undefined;
          for (const last of [false, true]) {
            try {
              const d = createDecipheriv('aes-256-gcm', key, indexNonce(chunk));
              d.setAAD(indexAad(object, chunk, last));
              d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
              plain = Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG_BYTES)), d.final()]);
              ended = last;
              break;
            } catch {
              // try the other flag
            }
          }
          if (!plain) throw fail(`fails authentication at chunk ${chunk}`);
          chunk++;
          this.push(plain);
        }
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
    flush(cb: TransformCallback) {
      cb(buf.length || !ended ? fail('is truncated') : undefined);
    },
  });
}
