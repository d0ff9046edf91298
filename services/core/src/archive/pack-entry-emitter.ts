/**
 * Turns the pack reader's scanned items into tar entries: headers, then a file's content read
 * with synchronous calls (or, for a small file that fits the current block, by one call of the
 * native helper), written through the block writer; the index entry, warnings and counts go to
 * the report.
 */
import { createHash, hash as hashOnce, type Hash } from 'node:crypto';
import { closeSync, constants as fsc, fstatSync, openSync, readlinkSync, type Stats } from 'node:fs';
import type { ArchiveEntry, EntryType } from './archive-types.ts';
import { chunkHasher, type ChunkHasher } from './chunk-hasher.ts';
import { FileHashBatch } from './file-hash-batch.ts';
import { errnoName, Out, type NativeReads } from './native-reads.ts';
import type { ReaderReport } from './pack-reader-report.ts';
import { throwIfAborted } from './pack-scanner.ts';
import { bytesToPath, pathToBytes } from './path-bytes.ts';
import type { ReusedFrame, TarBlockWriter } from './tar-block-writer.ts';
import { encodeTarHeaders, msFromParts, mtimeString, RECORD } from './tar-header.ts';
import { errCode, Kind, LINK_TARGET, type ScanItem } from './tree-scan.ts';

// Copying a fresh context is cheaper than createHash() per file.
const SHA256 = createHash('sha256');
const hashOf = (b: Uint8Array): string => hashOnce('sha256', b, 'hex');
// O_NONBLOCK: a file swapped for a FIFO after the scan must not hang the open.
const OPEN_FLAGS = fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK;
const SHRANK = 'file shrank while it was read; rest stored as zeros';
const CHANGED = 'file changed as we read it';
/** readSmallFile's digest argument when the file is hashed later with its block (FileHashBatch). */
const NO_DIGEST = new Uint8Array(0);

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

/**
 * The directory whose small files are being read, open (native openDir): each file is then opened
 * by its name in it, one lookup instead of a walk of the whole path (~0.6 µs a file).
 */
class DirHandle {
  private dir: Buffer | undefined;
  private fd = -1;
  private name = Buffer.alloc(256);

  constructor(private readonly native: NativeReads) {}

  /** The descriptor of `dir` (the same Buffer as the last call: the same directory), or -1 when it cannot be opened. */
  fdOf(dir: Buffer): number {
    if (dir === this.dir) return this.fd;
    this.close();
    this.dir = dir;
    const fd = this.native.openDir?.(Buffer.concat([dir, NUL]));
    this.fd = fd !== undefined && fd >= 0 ? fd : -1;
    return this.fd;
  }

  /** `name` (latin1) NUL-terminated, in a reused buffer. */
  nameZ(name: string): Buffer {
    if (this.name.length < name.length + 1) this.name = Buffer.alloc(name.length * 2 + 1);
    const n = this.name.write(name, 0, 'latin1');
    this.name[n] = 0;
    return this.name.subarray(0, n + 1);
  }

  close(): void {
    if (this.fd >= 0) this.native.closeDir!(this.fd);
    this.fd = -1;
    this.dir = undefined;
  }
}

const NUL = Buffer.alloc(1);

/** Where a hard link to an inode points: its stored first name, or the later name standing in for it. */
interface LinkTarget {
  arc: Buffer | undefined;
  replacement: number;
}

function headersOf(item: ScanItem, arc: Buffer, type: EntryType, size: number, linkTarget: Buffer | undefined): Buffer {
  return encodeTarHeaders({
    path: arc,
    type,
    size,
    mode: item.mode,
    uid: item.uid,
    gid: item.gid,
    mtimeSec: item.mtimeSec,
    mtimeNsec: item.mtimeNsec,
    linkTarget,
  });
}

/** The index entry (without linkTarget / sha256, which follow in that order when present). */
function indexEntry(item: ScanItem, path: string, type: EntryType, size: number, headerOffset: number, dataOffset: number): ArchiveEntry {
  return {
    path,
    type,
    size,
    mode: item.mode,
    uid: item.uid,
    gid: item.gid,
    mtime: mtimeString(item.mtimeSec, item.mtimeNsec),
    headerOffset,
    dataOffset,
    ctimeMs: item.ctimeMs,
    ino: item.ino,
    dev: item.dev,
  };
}

/** The parent's frame holding chunk `k` of its entry `parent` when it is `length` tar bytes and reusable (pack-reuse.ts). */
export type ChunkFrames = (parent: ArchiveEntry, k: number, length: number) => ReusedFrame | undefined;

const padding = (size: number): number => (RECORD - (size % RECORD)) % RECORD;

export class EntryEmitter {
  private readonly fsPaths = new PathBuilder();
  private readonly arcPaths = new PathBuilder();
  private readonly nOut = new Float64Array(Out.Slots);
  private readonly nDigest = Buffer.alloc(32);
  /**
   * Hard-link targets (first names of inodes with more names, and names standing in for them),
   * by global item index: the archive path once stored, or the later name storing the content
   * when this one could not be read. The only per-item state kept across chunks.
   */
  private readonly links = new Map<number, LinkTarget>();
  /** A large file's hash and its chunks' hashes (one pass over the bytes where the helper can). */
  private readonly chunkHasher: ChunkHasher;
  /** Small files' hashes, computed per block two at a time (where the helper can). */
  private readonly fileHashes: FileHashBatch | undefined;
  private readonly dirHandle: DirHandle | undefined;

  constructor(
    private readonly out: TarBlockWriter,
    private readonly report: ReaderReport,
    private readonly native: NativeReads | undefined,
    /** Int32Array over the pack threads' control slots (pack-scanner.ts): read for aborts. */
    private readonly ctrl: Int32Array,
    /** An incremental pack's look-up of its parent's chunk frames. */
    private readonly chunkFrames?: ChunkFrames,
  ) {
    this.chunkHasher = chunkHasher(native);
    this.fileHashes = FileHashBatch.create(native);
    this.dirHandle = native?.openDir && native.closeDir ? new DirHandle(native) : undefined;
    const batch = this.fileHashes;
    if (batch) out.beforeShip = (block) => batch.settle(block);
  }

  /**
   * Frames are cut at entry boundaries, so that a later incremental pack can reuse them whole: an
   * entry that does not fit the rest of the block starts a new one; a directory's headers are a
   * frame of their own; a file too big for a block is a frame of headers, then one frame per
   * block's worth of content (its chunks).
   * `parent`: the parent archive's entry for the same path (an incremental pack), whose chunk
   * frames a changed large file reuses where their content is the same.
   */
  emit(item: ScanItem, parent?: ArchiveEntry): void {
    if (item.linkTo === LINK_TARGET) this.links.set(item.index, { arc: undefined, replacement: -1 });
    if (this.native && item.kind === Kind.File && this.emitSmallFile(item, this.native)) return;
    const fsPath = item.node ? item.node.fs : this.fsPaths.get(item.parent!.fs, item.name!);
    const arc = item.node ? item.node.arc : this.arcPaths.get(item.parent!.arc, item.name!);
    // Resolved first: a hard link whose first name was not stored becomes a file.
    const linkTo = item.kind === Kind.Hardlink ? this.hardlinkTarget(item) : undefined;
    switch (item.kind) {
      case Kind.Dir:
        this.write(item, arc, 'dir', undefined, -1);
        break;
      case Kind.Symlink: {
        const target = this.readSymlink(fsPath, arc, item);
        if (target) this.write(item, arc, 'symlink', target, -1);
        break;
      }
      case Kind.Hardlink:
        this.write(item, arc, 'hardlink', linkTo, -1);
        break;
      default: {
        const fd = this.open(fsPath, arc, item);
        if (fd >= 0) this.write(item, arc, 'file', undefined, fd, parent);
      }
    }
  }

  /** Gives back the open directory descriptor (at the end of the pack, or when it fails). */
  close(): void {
    this.dirHandle?.close();
  }

  /** Whether the item with this global index (a hard link's target) is in the stream. */
  isStored(index: number): boolean {
    return this.links.get(index)?.arc !== undefined;
  }

  /** An entry an incremental pack did not read: its parent's frames hold it (pack-reuse.ts). */
  storedReused(item: ScanItem, entry: ArchiveEntry): void {
    if (item.linkTo === LINK_TARGET) this.links.set(item.index, { arc: pathToBytes(entry.path), replacement: -1 });
    if (entry.type === 'file') {
      this.report.filesDone++;
      this.report.bytesDone += entry.size;
    }
    this.report.stored(item.vol, entry);
  }

  /**
   * The archive path a hard link points at. When the inode's first name could not be stored,
   * this name stores the content instead: the item becomes a file and later names point here.
   */
  private hardlinkTarget(item: ScanItem): Buffer | undefined {
    let target = this.links.get(item.linkTo)!;
    while (!target.arc && target.replacement >= 0) target = this.links.get(target.replacement)!;
    if (target.arc) return target.arc;
    target.replacement = item.index;
    this.links.set(item.index, { arc: undefined, replacement: -1 });
    item.kind = Kind.File;
    return undefined;
  }

  private readSymlink(fsPath: Buffer, arc: Buffer, item: ScanItem): Buffer | undefined {
    try {
      return readlinkSync(fsPath, { encoding: 'buffer' });
    } catch (err) {
      const code = errCode(err);
      this.report.warn(bytesToPath(arc), code === 'ENOENT' ? 'vanished' : 'unreadable', `cannot read symlink (${code})`, item.vol);
      return undefined;
    }
  }

  /** A regular file's descriptor, or -1 (with a warning) when it cannot be opened. */
  private open(fsPath: Buffer, arc: Buffer, item: ScanItem): number {
    try {
      return openSync(fsPath, OPEN_FLAGS);
    } catch (err) {
      this.notOpened(bytesToPath(arc), errCode(err), item);
      return -1;
    }
  }

  /** Headers, then for a file (`fd`, closed here) its content and padding; then the index entry. */
  private write(item: ScanItem, arc: Buffer, type: EntryType, linkTarget: Buffer | undefined, fd: number, parent?: ArchiveEntry): void {
    const out = this.out;
    const size = type === 'file' ? item.size : 0;
    const headers = headersOf(item, arc, type, size, linkTarget);
    const length = headers.length + size + padding(size);
    // A directory's headers are a frame of their own: adding or removing a name changes them,
    // and that must not make the frames of its unchanged files unusable.
    const alone = type === 'dir' || length > out.blockSize;
    if (alone || length > out.room) out.flush();
    const headerOffset = out.tarPos;
    out.put(headers);
    if (alone) out.flush();
    const entry = indexEntry(item, bytesToPath(arc), type, size, headerOffset, out.tarPos);
    if (linkTarget) entry.linkTarget = bytesToPath(linkTarget);
    if (type === 'file') {
      if (alone) this.readChunks(fd, entry, item, parent);
      else this.readContent(fd, entry, item);
    }
    this.stored(item, entry, arc);
  }

  /** A regular file that could not be opened: a warning, and it counts as done for progress. */
  private notOpened(path: string, code: string, item: ScanItem): void {
    this.report.warn(
      path,
      code === 'ENOENT' ? 'vanished' : code === 'ELOOP' ? 'changed' : 'unreadable',
      code === 'ENOENT' ? 'file vanished before it was read' : code === 'ELOOP' ? 'file was replaced by a symlink; skipped' : `cannot open (${code})`,
      item.vol,
    );
    this.report.filesDone++;
    this.report.bytesDone += item.size;
  }

  /** A read error, a short read or a change seen while a file was read. */
  private readProblem(path: string, problem: string, item: ScanItem): void {
    this.report.warn(path, problem.startsWith('read error') ? 'read-error' : 'changed', problem, item.vol);
  }

  /** An entry whose headers (and content) are in the stream: index, volume summary, links. */
  private stored(item: ScanItem, entry: ArchiveEntry, arc: Buffer): void {
    const target = this.links.get(item.index);
    if (target) target.arc = Buffer.from(arc); // `arc` may be a reused buffer's view
    this.report.stored(item.vol, entry);
  }

  /**
   * The native path for a regular file whose headers, content and padding fit in the current
   * block: one call opens, reads (straight into the block, after the room left for the headers),
   * fstats and hashes it. False (nothing done) when it does not fit.
   */
  private emitSmallFile(item: ScanItem, native: NativeReads): boolean {
    const out = this.out;
    const o = this.nOut;
    const size = item.size;
    const arc = this.arcPaths.get(item.parent!.arc, item.name!);
    const header = headersOf(item, arc, 'file', size, undefined);
    const pad = padding(size);
    if (header.length + size + pad > out.room) {
      if (header.length + size + pad > out.blockSize) return false;
      out.flush(); // a new frame rather than one split across two
    }
    const at = out.pos + header.length;
    const batch = this.fileHashes;
    const digest = batch ? NO_DIGEST : this.nDigest;
    const dirfd = this.dirHandle ? this.dirHandle.fdOf(item.parent!.fs) : -1;
    if (dirfd >= 0) native.readSmallFile(this.dirHandle!.nameZ(item.name!), out.block, at, size, pad, o, digest, dirfd);
    else native.readSmallFile(this.fsPaths.get(item.parent!.fs, item.name!, true), out.block, at, size, pad, o, digest);
    const path = bytesToPath(arc);
    const openErr = o[Out.OpenErrno]!;
    if (openErr) {
      this.notOpened(path, errnoName(openErr), item);
      return true;
    }
    const headerOffset = out.tarPos;
    out.block.set(header, out.pos);
    const read = o[Out.Read]!;
    let problem: string | undefined;
    let sha: string | undefined;
    if (read < size) {
      out.block.fill(0, at + read, at + size);
      const err = o[Out.ReadErrno]!;
      problem = err ? `read error (${errnoName(err)}); rest stored as zeros` : SHRANK;
    }
    // Hashed later with the rest of the block (batch), or now: the bytes stored, zeros included.
    if (!batch) sha = read === size && o[Out.DigestOk] ? this.nDigest.toString('hex') : hashOf(out.block.subarray(at, at + size));
    if (
      !problem &&
      (!o[Out.StatOk] ||
        o[Out.Size] !== size ||
        o[Out.MtimeSec] !== item.mtimeSec ||
        o[Out.MtimeNsec] !== item.mtimeNsec ||
        msFromParts(o[Out.CtimeSec]!, o[Out.CtimeNsec]!) !== item.ctimeMs ||
        o[Out.Ino] !== item.ino)
    ) {
      problem = CHANGED;
    }
    if (problem) this.readProblem(path, problem, item);
    out.pos = at + size + pad; // the helper zeroed the padding
    this.report.bytesDone += size;
    this.report.filesDone++;
    const entry = indexEntry(item, path, 'file', size, headerOffset, headerOffset + header.length);
    if (batch) batch.add(entry, at, size);
    else entry.sha256 = sha;
    if (problem) entry.partial = true;
    this.stored(item, entry, arc);
    return true;
  }

  /** Copies a file's content into the blocks, then its padding; closes `fd`; sets the entry's sha256. */
  private readContent(fd: number, entry: ArchiveEntry, item: ScanItem): void {
    const out = this.out;
    const size = entry.size;
    const hash = SHA256.copy();
    let done = 0;
    let problem: string | undefined;
    try {
      while (done < size) {
        if (out.room === 0) out.flush();
        const n = this.readSome(fd, size - done, done, hash);
        if (typeof n === 'string') {
          problem = n;
          break;
        }
        done += n;
        if (out.room === 0) throwIfAborted(this.ctrl);
      }
      if (done < size) {
        out.putZeros(size - done, hash);
        this.report.bytesDone += size - done;
      }
      problem ??= this.changedSinceScan(fd, item);
    } finally {
      closeSync(fd);
    }
    const pad = padding(size);
    if (pad) out.putZeros(pad);
    this.finishFile(entry, item, hash.digest('hex'), problem);
  }

  /**
   * A large file's content, a frame per block's worth (its chunks, at file offsets k·blockSize),
   * each hashed on its own; a chunk whose hash and length match the parent entry's chunk at the
   * same offset reuses the parent's frame instead of being stored again. Closes `fd`.
   */
  private readChunks(fd: number, entry: ArchiveEntry, item: ScanItem, parent: ArchiveEntry | undefined): void {
    const out = this.out;
    const size = entry.size;
    const chunkSize = out.blockSize;
    const hasher = this.chunkHasher;
    hasher.reset();
    const chunks: string[] = [];
    let done = 0;
    let problem: string | undefined;
    try {
      for (let k = 0; done < size; k++) {
        const end = Math.min(size, done + chunkSize);
        // out.pos is 0: the chunk is block[0, end - done), read whole before it is hashed.
        while (!problem && done < end) {
          const n = this.readSome(fd, end - done, done);
          if (typeof n === 'string') problem = n;
          else done += n;
        }
        if (done < end) {
          out.putZeros(end - done);
          this.report.bytesDone += end - done;
          done = end;
        }
        const sha = hasher.chunk(out.block.subarray(0, out.pos));
        chunks.push(sha);
        if (done === size) out.putZeros(padding(size));
        const reused = parent?.chunks?.[k] === sha ? this.chunkFrames?.(parent, k, out.pos) : undefined;
        if (reused) {
          out.discard();
          out.reuse([reused], reused.uncompressedLength);
        } else {
          out.flush();
        }
        throwIfAborted(this.ctrl);
      }
      problem ??= this.changedSinceScan(fd, item);
    } finally {
      closeSync(fd);
    }
    entry.chunks = chunks;
    this.finishFile(entry, item, hasher.digest(), problem);
  }

  /** Reads into the current block at most `max` bytes at `position`: the count, or the problem that stopped it. */
  private readSome(fd: number, max: number, position: number, hash?: Hash): number | string {
    let n: number;
    try {
      n = this.out.readFrom(fd, max, position, hash);
    } catch (err) {
      return `read error (${errCode(err)}); rest stored as zeros`;
    }
    if (n === 0) return SHRANK;
    this.report.bytesDone += n;
    return n;
  }

  /** GNU tar's check after reading: the file is not what the scan saw any more. */
  private changedSinceScan(fd: number, item: ScanItem): string | undefined {
    let after: Stats | undefined;
    try {
      // Plain (not bigint) stats are cheaper; the scan kept comparable values.
      after = fstatSync(fd);
    } catch {
      after = undefined;
    }
    const same =
      after &&
      after.size === item.size &&
      after.mtimeMs === msFromParts(item.mtimeSec, item.mtimeNsec) &&
      after.ctimeMs === item.ctimeMs &&
      after.ino === item.ino;
    return same ? undefined : CHANGED;
  }

  private finishFile(entry: ArchiveEntry, item: ScanItem, sha256: string, problem: string | undefined): void {
    entry.sha256 = sha256;
    if (problem) {
      // Never reused by an incremental pack: the next backup reads the file again.
      entry.partial = true;
      this.readProblem(entry.path, problem, item);
    }
    this.report.filesDone++;
  }
}
