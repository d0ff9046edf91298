/**
 * The optional native helper (services/core/native, built by `npm install` through
 * scripts/build-native.mjs): one call opens, reads, fstats and hashes a small file, or lists a
 * directory with its lstats; on restore it sets mtimes to the nanosecond and writes a small file
 * whole (writeFile). When it is missing (no
 * compiler on the machine) or CAIRN_NATIVE_READS=0, the pack does the same with Node's fs calls
 * (the archive is identical either way) and a restore sets mtimes to the microsecond.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

export interface NativeReads {
  /**
   * See cairn_native.c: reads `size` bytes of `path` (NUL-terminated) into dst[offset..], then zeroes `pad` bytes;
   * hashes them into `digest` unless it is empty. With `dirfd` (openDir), `path` is a name in that directory.
   */
  readSmallFile(path: Uint8Array, dst: Uint8Array, offset: number, size: number, pad: number, out: Float64Array, digest: Uint8Array, dirfd?: number): void;
  /** See cairn_native.c: a descriptor of a directory (NUL-terminated path) to read files relative to, or -errno; missing in older builds. */
  openDir?(path: Uint8Array): number;
  /** See cairn_native.c: closes an openDir descriptor. */
  closeDir?(fd: number): void;
  outSlots: number;
  /** See cairn_native.c: a directory's sorted names and their lstat, or the errno. */
  scanDir(path: Uint8Array): [Buffer, Float64Array] | number;
  metaSlots: number;
  /** See cairn_native.c: utimensat of `path` (NUL-terminated) itself, atime left alone; 0 or the errno. */
  setTime(path: Uint8Array, sec: number, nsec: number): number;
  /** 1 when the sha256 functions below can run (the CPU has the SHA extensions); missing in older builds. */
  sha256Dual?: number;
  /** See cairn_native.c: a 104-byte sha256 context (8-byte aligned) set to the start. */
  sha256Init?(ctx: Uint8Array): void;
  /** See cairn_native.c: `data` hashed into `a` and, when not null, `b` in one pass. */
  sha256Update?(data: Uint8Array, a: Uint8Array, b: Uint8Array | null): void;
  /** See cairn_native.c: the digest of `ctx` into `digest` (32 bytes). */
  sha256Final?(ctx: Uint8Array, digest: Uint8Array): void;
  /** See cairn_native.c: the sha256 of `count` (offset, length) ranges of `base`, 32 bytes each into `digests`. */
  sha256Spans?(base: Uint8Array, spans: Float64Array, count: number, digests: Uint8Array): void;
  /**
   * See cairn_native.c: restores a small file in one call (sha256 check against `expected` unless
   * it is empty, create, write, owner when uid >= 0, mode, mtime); each step's errno in `out`.
   * Missing from builds of older sources.
   */
  writeFile?(
    path: Uint8Array,
    data: Uint8Array,
    mode: number,
    chmod: number,
    uid: number,
    gid: number,
    sec: number,
    nsec: number,
    expected: Uint8Array,
    digest: Uint8Array,
    out: Int32Array,
  ): void;
  writeSlots?: number;
  /**
   * See cairn_native.c: starts writing a file's dirty pages in [offset, offset + length) to disk,
   * not waiting (sync_file_range); 0 or the errno. Missing in older builds.
   */
  startWriteback?(fd: number, offset: number, length: number): number;
  /** See cairn_native.c: memcpy of `length` bytes between two views (into a SharedArrayBuffer at full speed). Missing in older builds. */
  copyBytes?(dst: Uint8Array, dstOffset: number, src: Uint8Array, srcOffset: number, length: number): void;
  /** See cairn_native.c: gives the C heap's free memory back to the system (glibc's malloc_trim); 1 if some was. Missing in older builds. */
  releaseFreeMemory?(): number;
}

/** Slots of writeFile's `out` array (the W_* enum in cairn_native.c). */
export const enum WriteOut {
  Mismatch,
  OpenErrno,
  WriteErrno,
  ChownErrno,
  ChmodErrno,
  TimeErrno,
  Slots,
}

/** Slots of readSmallFile's `out` array (the enum in cairn_native.c). */
export const enum Out {
  Read,
  OpenErrno,
  ReadErrno,
  StatOk,
  Size,
  MtimeSec,
  MtimeNsec,
  CtimeSec,
  CtimeNsec,
  Ino,
  DigestOk,
  Slots,
}

/** Per entry of scanDir's meta array (the M_* enum in cairn_native.c). */
export const enum Meta {
  NameOff,
  NameLen,
  Errno,
  Mode,
  Uid,
  Gid,
  Size,
  MtimeSec,
  MtimeNsec,
  CtimeSec,
  CtimeNsec,
  Ino,
  Nlink,
  Dev,
  InoHi,
  InoLo,
  Slots,
}

/** Main thread: where the built addon is, unless it is missing or switched off. */
export function nativeAddonPath(): string | undefined {
  if (process.env.CAIRN_NATIVE_READS === '0') return undefined;
  const path = fileURLToPath(new URL('../../native/build/Release/cairn_native.node', import.meta.url));
  return existsSync(path) ? path : undefined;
}

/** Worker side: loads the addon by absolute path (the worker bundle has no import.meta.url). */
export function loadNativeReads(path: string | undefined): NativeReads | undefined {
  if (!path) return undefined;
  try {
    const mod = createRequire(path)(path) as NativeReads;
    // A build from older sources (setTime missing) is not used: the plain-Node paths are.
    return mod.outSlots === Out.Slots && mod.metaSlots === Meta.Slots && typeof mod.setTime === 'function' ? mod : undefined;
  } catch {
    return undefined;
  }
}

const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, n]) => [n, name]));

export function errnoName(n: number): string {
  return ERRNO_NAMES.get(n) ?? `errno ${n}`;
}
