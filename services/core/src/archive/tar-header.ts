/**
 * POSIX tar (ustar + PAX extended headers) encoding and decoding. Written by hand rather than
 * through tar-stream: headers are simple, and the packer writes them straight into its blocks.
 */
import type { EntryType } from './archive-types.ts';

export const RECORD = 512;

export interface TarHeaderInput {
  /** Archive path bytes, without a trailing slash. */
  path: Buffer;
  type: EntryType;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  /** mtime in ns since the epoch, or (the packer's way, no BigInt per entry) as whole seconds
   * (floor) plus nanoseconds 0..999999999. */
  mtimeNs?: bigint;
  mtimeSec?: number;
  mtimeNsec?: number;
  linkTarget?: Buffer | undefined;
}

const TYPEFLAG: Record<EntryType, number> = { file: 0x30, hardlink: 0x31, symlink: 0x32, dir: 0x35 };
const MAX_OCTAL_11 = 0o77777777777;
const MAX_OCTAL_7 = 0o7777777;
const NS = 1_000_000_000n;

export function padTo512(n: number): number {
  return Math.ceil(n / RECORD) * RECORD;
}

function isAscii(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i]! >= 0x80 || b[i] === 0) return false;
  return true;
}

function writeOctal(buf: Buffer, off: number, width: number, value: number): void {
  // width includes the terminating NUL; digits written right to left, zero-padded.
  let v = Math.max(0, Math.trunc(value));
  buf[off + width - 1] = 0;
  for (let i = off + width - 2; i >= off; i--) {
    buf[i] = 0x30 + (v % 8);
    v = Math.floor(v / 8);
  }
}

/** GNU base-256 for values that do not fit in octal (size > 8 GiB, big ids). */
function writeBase256(buf: Buffer, off: number, width: number, value: number): void {
  let v = BigInt(Math.trunc(value));
  for (let i = width - 1; i > 0; i--) {
    buf[off + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  buf[off] = 0x80;
}

function writeNumber(buf: Buffer, off: number, width: number, value: number, maxOctal: number): void {
  if (value >= 0 && value <= maxOctal) writeOctal(buf, off, width, value);
  else if (value > maxOctal) writeBase256(buf, off, width, value);
  else writeOctal(buf, off, width, 0);
}

/** splitNs of a decimal string (an index's mtime); without a BigInt when it is a plain count of 10+ digits. */
export function splitNsString(ns: string): { sec: number; nsec: number } {
  if (ns.length > 9 && ns.length < 25 && /^[0-9]+$/.test(ns)) return { sec: Number(ns.slice(0, -9)), nsec: Number(ns.slice(-9)) };
  return splitNs(BigInt(ns));
}

/** Nanoseconds since the epoch as whole seconds (floor) and nanoseconds 0..999999999. */
export function splitNs(ns: bigint): { sec: number; nsec: number } {
  let sec = ns / NS;
  let nsec = ns % NS;
  if (nsec < 0n) {
    sec -= 1n;
    nsec += NS;
  }
  return { sec: Number(sec), nsec: Number(nsec) };
}

/** Milliseconds exactly as Node's Stats computes mtimeMs/ctimeMs from the timespec. */
export function msFromParts(sec: number, nsec: number): number {
  return sec * 1000 + nsec / 1_000_000;
}

/** PAX time from whole seconds (floor) and nanoseconds; numbers, so no BigInt per entry. */
export function formatPaxTimeParts(sec: number, nsec: number): string {
  if (sec < 0) return formatPaxTime(BigInt(sec) * NS + BigInt(nsec));
  return nsec === 0 ? String(sec) : `${sec}.${String(nsec).padStart(9, '0').replace(/0+$/, '')}`;
}

/** The index's mtime (nanoseconds since the epoch, decimal) from seconds and nanoseconds. */
export function mtimeString(sec: number, nsec: number): string {
  if (sec < 0 || sec > 9_000_000_000) return (BigInt(sec) * NS + BigInt(nsec)).toString();
  return sec === 0 ? String(nsec) : `${sec}${String(nsec).padStart(9, '0')}`;
}

export function formatPaxTime(ns: bigint): string {
  const neg = ns < 0n;
  const abs = neg ? -ns : ns;
  const sec = abs / NS;
  const frac = abs % NS;
  let s = (neg ? '-' : '') + sec.toString();
  if (frac !== 0n) s += `.${frac.toString().padStart(9, '0').replace(/0+$/, '')}`;
  return s;
}

export function parsePaxTime(value: string): bigint | undefined {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(value.trim());
  if (!m) return undefined;
  const frac = (m[3] ?? '').slice(0, 9).padEnd(9, '0');
  const abs = BigInt(m[2]!) * NS + BigInt(frac);
  return m[1] === '-' ? -abs : abs;
}

/** Splits a path into ustar prefix (≤155) and name (≤100) at a slash, if possible. */
function splitUstar(path: Buffer): { prefix: Buffer; name: Buffer } | undefined {
  if (path.length <= 100) return { prefix: EMPTY, name: path };
  if (path.length > 256) return undefined;
  for (let i = Math.min(155, path.length - 2); i > 0; i--) {
    if (path[i] === 0x2f && path.length - i - 1 <= 100) return { prefix: path.subarray(0, i), name: path.subarray(i + 1) };
  }
  return undefined;
}

function sumBytes(buf: Buffer, from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += buf[i]!;
  return sum;
}

const MAGIC = Buffer.from('ustar\x0000', 'latin1');
const MAGIC_SUM = sumBytes(MAGIC, 0, MAGIC.length);

function writeUstar(
  out: Buffer,
  off: number,
  h: { name: Buffer; prefix: Buffer; mode: number; uid: number; gid: number; size: number; mtimeSec: number; typeflag: number; linkname: Buffer },
): void {
  out.fill(0, off, off + RECORD);
  const nameLen = h.name.copy(out, off, 0, Math.min(100, h.name.length));
  writeOctal(out, off + 100, 8, h.mode & 0o7777);
  writeNumber(out, off + 108, 8, h.uid, MAX_OCTAL_7);
  writeNumber(out, off + 116, 8, h.gid, MAX_OCTAL_7);
  writeNumber(out, off + 124, 12, h.size, MAX_OCTAL_11);
  writeNumber(out, off + 136, 12, h.mtimeSec, MAX_OCTAL_11);
  out.fill(0x20, off + 148, off + 156);
  out[off + 156] = h.typeflag;
  const linkLen = h.linkname.copy(out, off + 157, 0, Math.min(100, h.linkname.length));
  MAGIC.copy(out, off + 257);
  const prefixLen = h.prefix.copy(out, off + 345, 0, Math.min(155, h.prefix.length));
  // Only these ranges can be non-zero: the checksum need not walk all 512 bytes.
  const sum =
    sumBytes(out, off, off + nameLen) +
    sumBytes(out, off + 100, off + 157) +
    sumBytes(out, off + 157, off + 157 + linkLen) +
    MAGIC_SUM +
    sumBytes(out, off + 345, off + 345 + prefixLen);
  writeOctal(out, off + 148, 7, sum);
  out[off + 155] = 0x20;
}

let scratch = Buffer.alloc(8192);
const EMPTY = Buffer.alloc(0);
const PAX_PREFIX = Buffer.from('PaxHeaders/');

function ensureScratch(n: number): void {
  if (scratch.length >= n) return;
  const next = Buffer.alloc(Math.ceil(n / 8192) * 8192);
  scratch.copy(next);
  scratch = next;
}

/** Appends "<len> <key>=<value>\n" at `off`; returns the new offset. */
function putRecord(off: number, key: string, value: Buffer | string): number {
  const vlen = typeof value === 'string' ? value.length : value.length;
  const base = key.length + vlen + 3;
  let len = base + String(base).length;
  if (String(len).length + base !== len) len = base + String(len).length;
  ensureScratch(off + len + RECORD * 2);
  let o = off + scratch.write(`${len} ${key}=`, off, 'latin1');
  o += typeof value === 'string' ? scratch.write(value, o, 'latin1') : value.copy(scratch, o);
  scratch[o++] = 0x0a;
  return o;
}

/**
 * Encodes the headers of one entry (a PAX 'x' header when needed, then the ustar header).
 * Returns a view of a shared scratch buffer: copy it before the next call.
 */
export function encodeTarHeaders(h: TarHeaderInput): Buffer {
  const isDir = h.type === 'dir';
  const path = isDir ? Buffer.concat([h.path, Buffer.from('/')]) : h.path;
  const link = h.linkTarget ?? EMPTY;
  const size = h.type === 'file' ? h.size : 0;
  const { sec: mtimeSec, nsec: mtimeNsec } = h.mtimeNs !== undefined ? splitNs(h.mtimeNs) : { sec: h.mtimeSec ?? 0, nsec: h.mtimeNsec ?? 0 };

  // PAX records are written after room for their own header, which needs their length.
  let off = RECORD;
  let split = isAscii(path) ? splitUstar(path) : undefined;
  if (!split) {
    off = putRecord(off, 'path', path);
    split = { prefix: EMPTY, name: path.subarray(0, 100) };
  }
  if (link.length > 100 || !isAscii(link)) off = putRecord(off, 'linkpath', link);
  if (size > MAX_OCTAL_11) off = putRecord(off, 'size', String(size));
  if (h.uid > MAX_OCTAL_7) off = putRecord(off, 'uid', String(h.uid));
  if (h.gid > MAX_OCTAL_7) off = putRecord(off, 'gid', String(h.gid));
  if (mtimeNsec !== 0 || mtimeSec < 0 || mtimeSec > MAX_OCTAL_11) off = putRecord(off, 'mtime', formatPaxTimeParts(mtimeSec, mtimeNsec));

  let start = RECORD;
  if (off > RECORD) {
    const paxLen = off - RECORD;
    const end = RECORD + padTo512(paxLen);
    ensureScratch(end + RECORD);
    scratch.fill(0, off, end);
    // The 'x' header's own name is informative only; keep it printable ASCII.
    const name = Buffer.concat([PAX_PREFIX, split.name.subarray(0, 80)]);
    for (let i = PAX_PREFIX.length; i < name.length; i++) if (name[i]! < 0x20 || name[i]! > 0x7e) name[i] = 0x5f;
    writeUstar(scratch, 0, {
      name,
      prefix: EMPTY,
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: paxLen,
      mtimeSec: Math.max(0, Math.min(mtimeSec, MAX_OCTAL_11)),
      typeflag: 0x78,
      linkname: EMPTY,
    });
    start = 0;
    off = end;
  }
  writeUstar(scratch, off, {
    name: split.name,
    prefix: split.prefix,
    mode: h.mode,
    uid: h.uid,
    gid: h.gid,
    size,
    mtimeSec,
    typeflag: TYPEFLAG[h.type],
    linkname: link.subarray(0, 100),
  });
  return scratch.subarray(start, off + RECORD);
}

/** The ustar header fields, before PAX overrides. */
export interface RawTarHeader {
  name: Buffer;
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeSec: number;
  linkname: Buffer;
}

function cstr(buf: Buffer, off: number, len: number): Buffer {
  const end = buf.indexOf(0, off);
  return buf.subarray(off, end < 0 || end > off + len ? off + len : end);
}

function parseNumber(buf: Buffer, off: number, len: number): number {
  if (buf[off]! & 0x80) {
    // Base-256 (GNU); a set 0x40 bit means negative.
    let v = BigInt(buf[off]! & 0x7f);
    for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(buf[off + i]!);
    if (buf[off]! & 0x40) v -= 1n << BigInt(8 * len - 1);
    return Number(v);
  }
  // Octal digits, possibly led by spaces and ended by NUL or space.
  let i = off;
  const end = off + len;
  while (i < end && buf[i] === 0x20) i++;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = buf[i]!;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) return Number.NaN;
    v = v * 8 + (c - 0x30);
    digits++;
  }
  return digits ? v : 0;
}

export function isZeroRecord(buf: Buffer, off: number): boolean {
  for (let i = off; i < off + RECORD; i++) if (buf[i] !== 0) return false;
  return true;
}

/** Parses one 512-byte header; returns undefined when its checksum does not match. */
export function parseUstar(buf: Buffer, off: number): RawTarHeader | undefined {
  let unsigned = 8 * 0x20;
  for (let i = off; i < off + 148; i++) unsigned += buf[i]!;
  for (let i = off + 156; i < off + RECORD; i++) unsigned += buf[i]!;
  const stored = parseNumber(buf, off + 148, 8);
  if (stored !== unsigned) {
    // Some old writers summed signed bytes.
    let signed = 8 * 0x20;
    for (let i = 0; i < RECORD; i++) {
      if (i >= 148 && i < 156) continue;
      const b = buf[off + i]!;
      signed += b >= 0x80 ? b - 256 : b;
    }
    if (stored !== signed) return undefined;
  }
  let name = cstr(buf, off, 100);
  const magic = buf.toString('latin1', off + 257, off + 263);
  if (magic === 'ustar\0') {
    const prefix = cstr(buf, off + 345, 155);
    if (prefix.length) name = Buffer.concat([prefix, Buffer.from('/'), name]);
  }
  const typeflag = buf[off + 156] === 0 ? '0' : String.fromCharCode(buf[off + 156]!);
  return {
    name: Buffer.from(name),
    typeflag,
    mode: parseNumber(buf, off + 100, 8),
    uid: parseNumber(buf, off + 108, 8),
    gid: parseNumber(buf, off + 116, 8),
    size: parseNumber(buf, off + 124, 12),
    mtimeSec: parseNumber(buf, off + 136, 12),
    linkname: Buffer.from(cstr(buf, off + 157, 100)),
  };
}

/**
 * Whether `buf[at, end)`, an entry's headers, plainly say "regular file `path` of `size` bytes": a
 * valid ustar header of type '0' whose name (with its prefix) is `path`, after at most one PAX
 * header whose records are only times and owners (none overrides the path, size or type). It is
 * a quick check of the common case for an entry known from elsewhere; false sends the headers to
 * the full parse (TarParser), which accepts everything else a tar may hold. The headers' checksums
 * are not summed here (half the cost): the caller's bytes were decoded from a frame its codec
 * verified, and the fields that say which entry this is are compared.
 */
export function plainFileHeaders(buf: Buffer, at: number, end: number, path: Buffer, size: number): boolean {
  const u = end - RECORD;
  if (u !== at) {
    // A PAX header: its records fill the records between it and the ustar header.
    if (u - at < 2 * RECORD || buf[at + 156] !== 0x78) return false;
    const paxLen = parseNumber(buf, at + 124, 12);
    if (!(paxLen > 0) || RECORD + padTo512(paxLen) !== u - at || !onlyPlainPaxRecords(buf, at + RECORD, at + RECORD + paxLen, u)) return false;
  }
  if (buf[u + 156] !== 0x30 || !isUstar(buf, u)) return false;
  if (parseNumber(buf, u + 124, 12) !== size) return false;
  // The name field holds the path, or its part after the prefix field's (then a slash between).
  const prefixLen = buf[u + 345] === 0 ? 0 : fieldLength(buf, u + 345, 155);
  const nameAt = prefixLen ? prefixLen + 1 : 0;
  if (fieldLength(buf, u, 100) !== path.length - nameAt) return false;
  if (prefixLen && (path[prefixLen] !== 0x2f || !sameBytes(buf, u + 345, path, 0, prefixLen))) return false;
  return sameBytes(buf, u, path, nameAt, path.length - nameAt);
}

/** The length of the NUL-terminated (or full) field of `max` bytes at `off`. */
function fieldLength(buf: Buffer, off: number, max: number): number {
  let n = 0;
  while (n < max && buf[off + n] !== 0) n++;
  return n;
}

function sameBytes(a: Buffer, aAt: number, b: Buffer, bAt: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[aAt + i] !== b[bAt + i]) return false;
  return true;
}

function isUstar(buf: Buffer, off: number): boolean {
  // "ustar" and its NUL
  return (
    buf[off + 257] === 0x75 && buf[off + 258] === 0x73 && buf[off + 259] === 0x74 && buf[off + 260] === 0x61 && buf[off + 261] === 0x72 && buf[off + 262] === 0
  );
}

/** mtime, atime, ctime, uid or gid: the PAX keys that leave an entry's path, size and type alone. */
function plainPaxKey(buf: Buffer, from: number, to: number): boolean {
  const c = buf[from];
  if (to - from === 5)
    return (c === 0x6d || c === 0x61 || c === 0x63) && buf[from + 1] === 0x74 && buf[from + 2] === 0x69 && buf[from + 3] === 0x6d && buf[from + 4] === 0x65;
  return to - from === 3 && (c === 0x75 || c === 0x67) && buf[from + 1] === 0x69 && buf[from + 2] === 0x64;
}

/** PAX records filling `buf[from, to)` (NUL padding after them up to `padEnd`) with keys that leave an entry's path, size and type alone. */
function onlyPlainPaxRecords(buf: Buffer, from: number, to: number, padEnd: number): boolean {
  let pos = from;
  while (pos < to) {
    let len = 0;
    let i = pos;
    for (; i < to && buf[i]! >= 0x30 && buf[i]! <= 0x39; i++) len = len * 10 + buf[i]! - 0x30;
    if (i === pos || buf[i] !== 0x20 || len < 5 || pos + len > to || buf[pos + len - 1] !== 0x0a) return false;
    let eq = i + 1;
    while (eq < pos + len && buf[eq] !== 0x3d) eq++;
    if (eq >= pos + len || !plainPaxKey(buf, i + 1, eq)) return false;
    pos += len;
  }
  if (pos !== to) return false;
  for (; pos < padEnd; pos++) if (buf[pos] !== 0) return false;
  return true;
}

/** Parses PAX records ("<len> <key>=<value>\n"); values stay bytes (names need not be UTF-8). */
export function parsePaxRecords(data: Buffer): Map<string, Buffer> | undefined {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break;
    const sp = data.indexOf(0x20, pos);
    if (sp < 0) return undefined;
    const len = Number(data.toString('latin1', pos, sp));
    if (!Number.isInteger(len) || len <= 0 || pos + len > data.length || data[pos + len - 1] !== 0x0a) return undefined;
    const eq = data.indexOf(0x3d, sp);
    if (eq < 0 || eq >= pos + len) return undefined;
    out.set(data.toString('utf8', sp + 1, eq), Buffer.from(data.subarray(eq + 1, pos + len - 1)));
    pos += len;
  }
  return out;
}
