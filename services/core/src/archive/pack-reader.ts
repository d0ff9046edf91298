/**
 * The pack reader job, run in a worker thread: takes the scanned items from the scanner thread
 * (pack-scanner.ts) as they come, reads every file with synchronous calls and writes the tar
 * stream straight into block buffers, which are transferred to the main thread for compression.
 *
 * Synchronous I/O is deliberate: an async fs call costs ~50 µs of thread-pool round trip here,
 * a synchronous one a few µs, and this thread does nothing else (TOOLCHAIN.md).
 */
import { createHash, hash as hashOnce } from 'node:crypto';
import { closeSync, constants as fsc, fstatSync, openSync, readlinkSync, readSync, type Stats } from 'node:fs';
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { ArchiveEntry, ArchiveWarning, EntryType, VolumeSummary, WarningCode } from './archive-types.ts';
import { compressBlock } from './block-codec.ts';
import { bytesToPath } from './path-bytes.ts';
import { encodeTarHeaders, msFromParts, mtimeString, RECORD } from './tar-header.ts';
import { errnoName, loadNativeReads, Out } from './native-reads.ts';
import { CTRL_CHUNKS, CTRL_CONSUMED, CTRL_CREDITS, throwIfAborted, type ScanFeed } from './pack-scanner.ts';
import { errCode, Kind, LINK_TARGET, ScanList, type ScanItem } from './tree-scan.ts';

export interface PackReaderData {
  volumes: { name: string; dir: string; excludes: string[] }[];
  blockSize: number;
  /** Int32Array view, slots CTRL_* (pack-scanner.ts). */
  control: SharedArrayBuffer;
  port: MessagePort;
  /** ScanFeed messages from the scanner thread. */
  scan: MessagePort;
  /** Absolute path of the native helper (native-reads.ts), when it is built and enabled. */
  native: string | undefined;
  /** Block buffers handed back for reuse (read synchronously with receiveMessageOnPort). */
  recycle: MessagePort;
}

export interface PackReaderBlock {
  t: 'block';
  buf: ArrayBuffer;
  length: number;
  /**
   * Index entries completed with this block: a JSON array, zstd-compressed. The main thread
   * keeps these until the end — a few small buffers instead of 100k live objects (garbage
   * collector time) or their text (memory: JSON compresses ~5×).
   */
  entries: ArrayBuffer | undefined;
  entriesLength: number;
  warnings: ArchiveWarning[];
  bytesDone: number;
  filesDone: number;
}

export interface PackReaderEnd {
  t: 'end';
  result: PackReaderResult;
}

export interface PackReaderResult {
  tarBytes: number;
  volumes: VolumeSummary[];
}

// Copying a fresh context is cheaper than createHash() per file.
const SHA256 = createHash('sha256');
const ZEROS = Buffer.alloc(64 * 1024);
const hashOf = (b: Uint8Array): string => hashOnce('sha256', b, 'hex');
// O_NONBLOCK: a file swapped for a FIFO after the scan must not hang the open.
const OPEN_FLAGS = fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK;

function packEntries(entries: ArchiveEntry[]): { buf: ArrayBuffer; length: number } | undefined {
  if (!entries.length) return undefined;
  const json = Buffer.from(JSON.stringify(entries));
  const z = compressBlock('zstd', 1, json);
  // Kept until the end of the pack: an exact-size copy, not the frame's larger buffer.
  return { buf: (z.buffer as ArrayBuffer).slice(z.byteOffset, z.byteOffset + z.length), length: json.length };
}

/** Builds "<dir>/<name>" paths in one reused buffer; consecutive items share their directory. */
class PathBuilder {
  private buf = Buffer.alloc(4096);
  private dir: Buffer | undefined;

  /** With `nul`, the view ends with a NUL byte (for the native helper). */
  get(dir: Buffer, name: string, nul = false): Buffer {
    const need = dir.length + 1 + name.length;
    if (this.buf.length < need + 1) {
      this.buf = Buffer.alloc(need * 2);
      this.dir = undefined;
    }
    if (this.dir !== dir) {
      dir.copy(this.buf, 0);
      this.buf[dir.length] = 0x2f;
      this.dir = dir;
    }
    this.buf.write(name, dir.length + 1, 'latin1');
    if (!nul) return this.buf.subarray(0, need);
    this.buf[need] = 0;
    return this.buf.subarray(0, need + 1);
  }
}

export function runPackReader(d: PackReaderData): PackReaderResult {
  const ctrl = new Int32Array(d.control);
  const warnings: ArchiveWarning[] = [];
  const warn = (path: string, code: WarningCode, message: string, vol?: number): void => {
    warnings.push({ path, code, message });
    if (vol !== undefined) summaries[vol]!.warnings++;
  };
  const summaries: VolumeSummary[] = d.volumes.map((v) => ({
    name: v.name,
    entries: 0,
    files: 0,
    dirs: 0,
    symlinks: 0,
    hardlinks: 0,
    logicalBytes: 0,
    empty: true,
    warnings: 0,
  }));
  const checkAbort = (): void => throwIfAborted(ctrl);

  // ---- scanned items, one chunk at a time as the scanner thread sends them ---------------
  let scanDone = false;
  let feeds = 0;
  /** Waits for the next chunk; undefined once the scan has ended. */
  const nextChunk = (): ScanList | undefined => {
    for (;;) {
      const m = receiveMessageOnPort(d.scan)?.message as ScanFeed | undefined;
      if (m) {
        feeds++;
        Atomics.store(ctrl, CTRL_CONSUMED, feeds);
        Atomics.notify(ctrl, CTRL_CONSUMED);
        for (const w of m.warnings) warn(w.path, w.code, w.message, w.vol);
        if (m.done) scanDone = true;
        if (m.chunk) return ScanList.fromChunk(m.chunk);
        continue;
      }
      if (scanDone) return undefined;
      checkAbort();
      // The scanner bumps the counter after each post: wait only while nothing new was posted.
      if (Atomics.load(ctrl, CTRL_CHUNKS) === feeds) Atomics.wait(ctrl, CTRL_CHUNKS, feeds, 250);
    }
  };

  // ---- tar stream into blocks -----------------------------------------------------------
  const blockSize = d.blockSize;
  let block = Buffer.allocUnsafeSlow(blockSize);
  let bpos = 0;
  let offset = 0; // tar offset of block[0]
  let entries: ArchiveEntry[] = [];
  let sentWarnings = 0;
  let bytesDone = 0;
  let filesDone = 0;

  const acquireCredit = (): void => {
    for (;;) {
      checkAbort();
      const c = Atomics.load(ctrl, CTRL_CREDITS);
      if (c > 0) {
        if (Atomics.compareExchange(ctrl, CTRL_CREDITS, c, c - 1) === c) return;
        continue;
      }
      Atomics.wait(ctrl, CTRL_CREDITS, c, 250);
    }
  };

  const flush = (): void => {
    if (bpos === 0) return;
    acquireCredit();
    const packed = packEntries(entries);
    const msg: PackReaderBlock = {
      t: 'block',
      buf: block.buffer as ArrayBuffer,
      length: bpos,
      entries: packed?.buf,
      entriesLength: packed?.length ?? 0,
      warnings: warnings.slice(sentWarnings),
      bytesDone,
      filesDone,
    };
    sentWarnings = warnings.length;
    d.port.postMessage(msg, packed ? [msg.buf, packed.buf] : [msg.buf]);
    offset += bpos;
    entries = [];
    const reused = receiveMessageOnPort(d.recycle)?.message as ArrayBuffer | undefined;
    block = reused?.byteLength === blockSize ? Buffer.from(reused) : Buffer.allocUnsafeSlow(blockSize);
    bpos = 0;
  };

  const put = (src: Buffer): void => {
    // TypedArray set/fill: Buffer.copy costs ~1 µs of view creation per call, at 100k files.
    if (src.length <= blockSize - bpos) {
      block.set(src, bpos);
      bpos += src.length;
      return;
    }
    let i = 0;
    while (i < src.length) {
      if (bpos === blockSize) flush();
      const n = src.copy(block, bpos, i, Math.min(src.length, i + blockSize - bpos));
      bpos += n;
      i += n;
    }
  };

  const putZeros = (count: number, hash?: ReturnType<typeof createHash>): void => {
    while (count > 0) {
      if (bpos === blockSize) flush();
      const n = Math.min(count, blockSize - bpos, ZEROS.length);
      block.fill(0, bpos, bpos + n);
      hash?.update(ZEROS.subarray(0, n));
      bpos += n;
      count -= n;
    }
  };

  const tarPos = (): number => offset + bpos;

  const fsPaths = new PathBuilder();
  const arcPaths = new PathBuilder();
  const native = loadNativeReads(d.native);
  const nOut = new Float64Array(Out.Slots);
  const nDigest = Buffer.alloc(32);
  /**
   * Hard-link targets (first names of inodes with more names, and names standing in for them),
   * by global item index: the archive path once stored, or the later name storing the content
   * when this one could not be read. The only per-item state kept across chunks.
   */
  const links = new Map<number, { arc: Buffer | undefined; replacement: number }>();
  for (let list = nextChunk(); list; list = nextChunk()) {
    for (let i = 0; i < list.length; i++) {
      checkAbort();
      emit(list.item(i));
    }
  }
  putZeros(2 * RECORD);
  const tarBytes = tarPos();
  flush();
  if (sentWarnings < warnings.length)
    d.port.postMessage({
      t: 'block',
      buf: new ArrayBuffer(0),
      length: 0,
      entries: undefined,
      entriesLength: 0,
      warnings: warnings.slice(sentWarnings),
      bytesDone,
      filesDone,
    } satisfies PackReaderBlock);
  for (const s of summaries) s.empty = s.entries <= 1;
  const result: PackReaderResult = { tarBytes, volumes: summaries };
  d.port.postMessage({ t: 'end', result } satisfies PackReaderEnd);
  return result;

  function emit(item: ScanItem): void {
    if (item.linkTo === LINK_TARGET) links.set(item.index, { arc: undefined, replacement: -1 });
    if (native && item.kind === Kind.File && emitSmallFile(item)) return;
    const fsPath = item.node ? item.node.fs : fsPaths.get(item.parent!.fs, item.name!);
    const arc = item.node ? item.node.arc : arcPaths.get(item.parent!.arc, item.name!);
    let type: EntryType;
    let link: Buffer | undefined;
    let fd = -1;
    if (item.kind === Kind.Hardlink) {
      let target = links.get(item.linkTo)!;
      while (!target.arc && target.replacement >= 0) target = links.get(target.replacement)!;
      if (target.arc) {
        link = target.arc;
      } else {
        // The first name of this inode could not be stored: store the content under this one.
        target.replacement = item.index;
        links.set(item.index, { arc: undefined, replacement: -1 });
        item.kind = Kind.File;
      }
    }
    switch (item.kind) {
      case Kind.Dir:
        type = 'dir';
        break;
      case Kind.Symlink:
        type = 'symlink';
        try {
          link = readlinkSync(fsPath, { encoding: 'buffer' });
        } catch (err) {
          const code = errCode(err);
          warn(bytesToPath(arc), code === 'ENOENT' ? 'vanished' : 'unreadable', `cannot read symlink (${code})`, item.vol);
          return;
        }
        break;
      case Kind.Hardlink:
        type = 'hardlink';
        break;
      default:
        type = 'file';
        try {
          fd = openSync(fsPath, OPEN_FLAGS);
        } catch (err) {
          notOpened(bytesToPath(arc), errCode(err), item);
          return;
        }
    }
    const size = type === 'file' ? item.size : 0;
    const headerOffset = tarPos();
    put(
      encodeTarHeaders({
        path: arc,
        type,
        size,
        mode: item.mode,
        uid: item.uid,
        gid: item.gid,
        mtimeSec: item.mtimeSec,
        mtimeNsec: item.mtimeNsec,
        linkTarget: link,
      }),
    );
    const entry: ArchiveEntry = {
      path: bytesToPath(arc),
      type,
      size,
      mode: item.mode,
      uid: item.uid,
      gid: item.gid,
      mtime: mtimeString(item.mtimeSec, item.mtimeNsec),
      headerOffset,
      dataOffset: tarPos(),
    };
    if (link) entry.linkTarget = bytesToPath(link);
    if (type === 'file') entry.sha256 = readContent(fd, size, entry.path, item);
    stored(item, entry, arc);
  }

  /** A regular file that could not be opened: a warning, and it counts as done for progress. */
  function notOpened(path: string, code: string, item: ScanItem): void {
    warn(
      path,
      code === 'ENOENT' ? 'vanished' : code === 'ELOOP' ? 'changed' : 'unreadable',
      code === 'ENOENT' ? 'file vanished before it was read' : code === 'ELOOP' ? 'file was replaced by a symlink; skipped' : `cannot open (${code})`,
      item.vol,
    );
    filesDone++;
    bytesDone += item.size;
  }

  /** An entry whose headers (and content) are in the stream: index, volume summary, links. */
  function stored(item: ScanItem, entry: ArchiveEntry, arc: Buffer): void {
    const target = links.get(item.index);
    if (target) target.arc = Buffer.from(arc); // `arc` may be a reused buffer's view
    const sum = summaries[item.vol]!;
    sum.entries++;
    if (entry.type === 'file') {
      sum.files++;
      sum.logicalBytes += entry.size;
    } else if (entry.type === 'dir') sum.dirs++;
    else if (entry.type === 'symlink') sum.symlinks++;
    else sum.hardlinks++;
    entries.push(entry);
  }

  /**
   * The native path for a regular file whose headers, content and padding fit in the current
   * block: one call opens, reads (straight into the block, after the room left for the headers),
   * fstats and hashes it. False (nothing done) when it does not fit.
   */
  function emitSmallFile(item: ScanItem): boolean {
    const size = item.size;
    const arc = arcPaths.get(item.parent!.arc, item.name!);
    const header = encodeTarHeaders({
      path: arc,
      type: 'file',
      size,
      mode: item.mode,
      uid: item.uid,
      gid: item.gid,
      mtimeSec: item.mtimeSec,
      mtimeNsec: item.mtimeNsec,
      linkTarget: undefined,
    });
    const pad = (RECORD - (size % RECORD)) % RECORD;
    if (header.length + size + pad > blockSize - bpos) return false;
    const at = bpos + header.length;
    native!.readSmallFile(fsPaths.get(item.parent!.fs, item.name!, true), block, at, size, pad, nOut, nDigest);
    const path = bytesToPath(arc);
    const openErr = nOut[Out.OpenErrno]!;
    if (openErr) {
      notOpened(path, errnoName(openErr), item);
      return true;
    }
    const headerOffset = tarPos();
    block.set(header, bpos);
    bpos = at;
    const read = nOut[Out.Read]!;
    let problem: string | undefined;
    let sha: string;
    if (read < size) {
      block.fill(0, at + read, at + size);
      const err = nOut[Out.ReadErrno]!;
      problem = err ? `read error (${errnoName(err)}); rest stored as zeros` : 'file shrank while it was read; rest stored as zeros';
      sha = hashOf(block.subarray(at, at + size));
    } else {
      sha = nOut[Out.DigestOk] ? nDigest.toString('hex') : hashOf(block.subarray(at, at + size));
    }
    if (
      !problem &&
      (!nOut[Out.StatOk] ||
        nOut[Out.Size] !== size ||
        nOut[Out.MtimeSec] !== item.mtimeSec ||
        nOut[Out.MtimeNsec] !== item.mtimeNsec ||
        msFromParts(nOut[Out.CtimeSec]!, nOut[Out.CtimeNsec]!) !== item.ctimeMs ||
        nOut[Out.Ino] !== item.ino)
    ) {
      problem = 'file changed as we read it';
    }
    if (problem) warn(path, problem.startsWith('read error') ? 'read-error' : 'changed', problem, item.vol);
    bpos = at + size + pad; // the helper zeroed the padding
    bytesDone += size;
    filesDone++;
    stored(
      item,
      {
        path,
        type: 'file',
        size,
        mode: item.mode,
        uid: item.uid,
        gid: item.gid,
        mtime: mtimeString(item.mtimeSec, item.mtimeNsec),
        headerOffset,
        dataOffset: headerOffset + header.length,
        sha256: sha,
      },
      arc,
    );
    return true;
  }

  /** Copies a file's content into the blocks; returns the sha256 of what was stored. */
  function readContent(fd: number, size: number, path: string, item: ScanItem): string {
    const hash = SHA256.copy();
    let done = 0;
    let problem: string | undefined;
    try {
      while (done < size) {
        if (bpos === blockSize) flush();
        const want = Math.min(size - done, blockSize - bpos);
        let n: number;
        try {
          n = readSync(fd, block, bpos, want, done);
        } catch (err) {
          problem = `read error (${errCode(err)}); rest stored as zeros`;
          break;
        }
        if (n === 0) {
          problem = 'file shrank while it was read; rest stored as zeros';
          break;
        }
        hash.update(block.subarray(bpos, bpos + n));
        bpos += n;
        done += n;
        bytesDone += n;
        if (n === want && bpos === blockSize) checkAbort();
      }
      if (done < size) {
        putZeros(size - done, hash);
        bytesDone += size - done;
      }
      let after: Stats | undefined;
      try {
        // Plain (not bigint) stats are cheaper; the scan kept comparable values.
        after = fstatSync(fd);
      } catch {
        after = undefined;
      }
      if (
        !problem &&
        (!after ||
          after.size !== size ||
          after.mtimeMs !== msFromParts(item.mtimeSec, item.mtimeNsec) ||
          after.ctimeMs !== item.ctimeMs ||
          after.ino !== item.ino)
      ) {
        problem = 'file changed as we read it';
      }
    } finally {
      closeSync(fd);
    }
    if (problem) warn(path, problem.startsWith('read error') ? 'read-error' : 'changed', problem, item.vol);
    const pad = (RECORD - (size % RECORD)) % RECORD;
    if (pad) putZeros(pad);
    filesDone++;
    return hash.digest('hex');
  }
}
