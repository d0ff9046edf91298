import { createHash } from 'node:crypto';
import zlib from 'node:zlib';

/** Algorithms S3 accepts in `x-amz-checksum-*` headers and trailers, plus Content-MD5. */
export type ChecksumAlgorithm = 'crc32' | 'crc32c' | 'crc64nvme' | 'sha1' | 'sha256' | 'md5';

export interface Checksum {
  update(data: Uint8Array): void;
  /** Big-endian digest bytes; S3 sends them base64-encoded. */
  digest(): Buffer;
}

const S3_ALGORITHMS: readonly ChecksumAlgorithm[] = ['crc32', 'crc32c', 'crc64nvme', 'sha1', 'sha256'];

/** `crc32` from `x-amz-checksum-crc32`; null for names that are not checksum headers. */
export function algorithmOfHeader(name: string): ChecksumAlgorithm | null {
  const m = /^x-amz-checksum-([a-z0-9]+)$/i.exec(name.trim());
  const alg = m?.[1]?.toLowerCase();
  return alg && (S3_ALGORITHMS as readonly string[]).includes(alg) ? (alg as ChecksumAlgorithm) : null;
}

export function createChecksum(algorithm: ChecksumAlgorithm): Checksum {
  switch (algorithm) {
    case 'sha1':
    case 'sha256':
    case 'md5': {
      const hash = createHash(algorithm);
      return { update: (d) => hash.update(d), digest: () => hash.digest() };
    }
    case 'crc32':
      return crc32Checksum();
    case 'crc32c':
      return tableCrc32(CRC32C_TABLE);
    case 'crc64nvme':
      return crc64Nvme();
  }
}

function uint32Be(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value >>> 0);
  return out;
}

function crc32Checksum(): Checksum {
  // zlib.crc32 exists from Node 20.15; the table version keeps older 20.x working.
  const native = (zlib as unknown as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
  if (!native) return tableCrc32(CRC32_TABLE);
  let crc = 0;
  return { update: (d) => void (crc = native(d, crc)), digest: () => uint32Be(crc) };
}

function makeCrc32Table(reversedPoly: number): Uint32Array {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ reversedPoly : c >>> 1;
    table[i] = c >>> 0;
  }
  return table;
}

const CRC32_TABLE = makeCrc32Table(0xedb88320);
const CRC32C_TABLE = makeCrc32Table(0x82f63b78);

function tableCrc32(table: Uint32Array): Checksum {
  let crc = 0xffffffff;
  return {
    update(d) {
      let c = crc;
      for (let i = 0; i < d.length; i++) c = table[(c ^ d[i]!) & 0xff]! ^ (c >>> 8);
      crc = c;
    },
    digest: () => uint32Be(crc ^ 0xffffffff),
  };
}

// CRC-64/NVME (reflected, poly 0xad93d23594c93659), kept as two 32-bit halves because BigInt
// per byte is far too slow for part-sized bodies.
const CRC64_LO = new Uint32Array(256);
const CRC64_HI = new Uint32Array(256);
{
  const poly = 0x9a6c9329ac4bc9b5n; // bit-reversed polynomial
  for (let i = 0; i < 256; i++) {
    let c = BigInt(i);
    for (let k = 0; k < 8; k++) c = c & 1n ? (c >> 1n) ^ poly : c >> 1n;
    CRC64_LO[i] = Number(c & 0xffffffffn);
    CRC64_HI[i] = Number(c >> 32n);
  }
}

function crc64Nvme(): Checksum {
  let lo = 0xffffffff;
  let hi = 0xffffffff;
  return {
    update(d) {
      let l = lo;
      let h = hi;
      for (let i = 0; i < d.length; i++) {
        const idx = (l ^ d[i]!) & 0xff;
        l = ((l >>> 8) | (h << 24)) ^ CRC64_LO[idx]!;
        h = (h >>> 8) ^ CRC64_HI[idx]!;
      }
      lo = l >>> 0;
      hi = h >>> 0;
    },
    digest() {
      const out = Buffer.alloc(8);
      out.writeUInt32BE((hi ^ 0xffffffff) >>> 0, 0);
      out.writeUInt32BE((lo ^ 0xffffffff) >>> 0, 4);
      return out;
    },
  };
}
