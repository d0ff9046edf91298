/**
 * Incremental tar parser over chunks tagged with their offset in the uncompressed stream.
 * It can restart at a known header offset (`resync`), which is how selective restore reads
 * only the blocks holding the chosen entries.
 */
import { CairnError } from '../errors.ts';
import type { EntryType } from './archive-types.ts';
import { RECORD, isZeroRecord, padTo512, parsePaxRecords, parsePaxTime, parseUstar, type RawTarHeader } from './tar-header.ts';

export interface ParsedEntry {
  /** Path bytes without trailing slashes. */
  path: Buffer;
  typeflag: string;
  type: EntryType | 'other';
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
  linkTarget: Buffer;
  headerOffset: number;
  dataOffset: number;
}

export interface TarHandler {
  entry(e: ParsedEntry): void;
  /** Content of the current entry, in order; the chunk is only valid during the call. */
  data(chunk: Buffer): void;
  /** When given: the whole content of the current entry, when one chunk holds it (instead of data()). */
  content?(chunk: Buffer): void;
  entryEnd(e: ParsedEntry): void;
  /**
   * When given: asked at each entry's first header before it is read, with the bytes from there to
   * the end of the chunk. An offset returned is where the entry ends (its padding included): the
   * parser skips to it without reading the headers.
   */
  skipEntry?(headerOffset: number, ahead: Buffer): number | undefined;
}

type State = 'header' | 'meta' | 'data' | 'skip' | 'end' | 'idle';

const NS = 1_000_000_000n;

function corrupt(message: string): CairnError {
  return new CairnError('archive-corrupt', message);
}

export class TarParser {
  private pos = 0;
  private limit = Number.POSITIVE_INFINITY;
  private state: State = 'header';
  private need = 0;
  private acc: Buffer[] = [];
  private accLen = 0;
  private metaKind = '';
  private entryStart = -1;
  private pax: Map<string, Buffer> | undefined;
  private longName: Buffer | undefined;
  private longLink: Buffer | undefined;
  private current: ParsedEntry | undefined;
  /** Padding to skip once the current entry's data is done. */
  private skipAfter = 0;

  constructor(private readonly handler: TarHandler) {}

  /** Offset of the next byte the parser expects. */
  get offset(): number {
    return this.pos;
  }

  /** True once the end-of-archive marker was seen. */
  get ended(): boolean {
    return this.state === 'end';
  }

  /** True while it holds views of bytes pushed earlier (a header or meta record split between pushes): their buffers must stay as they are. */
  get holding(): boolean {
    return this.accLen > 0;
  }

  /** True when the parser sits between entries (or past its limit / the end). */
  get atBoundary(): boolean {
    return (this.state === 'header' && this.accLen === 0 && this.entryStart < 0) || this.state === 'idle' || this.state === 'end';
  }

  /** Starts parsing afresh at a header offset, stopping at `limit` (an entry boundary). */
  resync(start: number, limit = Number.POSITIVE_INFINITY): void {
    if (!this.atBoundary) throw corrupt(`tar entry truncated at offset ${this.pos}`);
    this.pos = start;
    this.limit = limit;
    this.state = start >= limit ? 'idle' : 'header';
    this.acc = [];
    this.accLen = 0;
    this.entryStart = -1;
    this.pax = undefined;
    this.longName = undefined;
    this.longLink = undefined;
  }

  push(chunk: Buffer, offset: number): void {
    const end = offset + chunk.length;
    if (end <= this.pos || this.state === 'end' || this.state === 'idle') return;
    if (offset > this.pos) throw corrupt(`tar stream has a gap at offset ${this.pos}`);
    let i = this.pos - offset;
    while (i < chunk.length) {
      if (this.state === 'header') {
        if (this.pos >= this.limit) {
          this.state = 'idle';
          return;
        }
        if (this.accLen === 0 && this.entryStart < 0 && this.handler.skipEntry) {
          const end = this.handler.skipEntry(this.pos, chunk.subarray(i));
          if (end !== undefined && end > this.pos) {
            this.need = end - this.pos;
            this.state = 'skip';
            continue;
          }
        }
        const take = Math.min(RECORD - this.accLen, chunk.length - i);
        let rec: Buffer;
        if (this.accLen === 0 && take === RECORD) {
          rec = chunk.subarray(i, i + RECORD);
        } else {
          this.acc.push(chunk.subarray(i, i + take));
          this.accLen += take;
          i += take;
          this.pos += take;
          if (this.accLen < RECORD) return;
          rec = Buffer.concat(this.acc, RECORD);
          this.acc = [];
          this.accLen = 0;
          i -= RECORD;
          this.pos -= RECORD;
        }
        this.onHeader(rec);
        i += RECORD;
        this.pos += RECORD;
        if (this.ended) return;
      } else if (this.state === 'meta') {
        const take = Math.min(this.need - this.accLen, chunk.length - i);
        this.acc.push(chunk.subarray(i, i + take));
        this.accLen += take;
        i += take;
        this.pos += take;
        if (this.accLen === this.need) this.onMeta(Buffer.concat(this.acc, this.accLen));
      } else if (this.state === 'data') {
        const take = Math.min(this.need, chunk.length - i);
        if (take > 0 && take === this.current!.size && this.handler.content) this.handler.content(chunk.subarray(i, i + take));
        else if (take > 0) this.handler.data(chunk.subarray(i, i + take));
        i += take;
        this.pos += take;
        this.need -= take;
        if (this.need === 0) this.finishEntry();
      } else if (this.state === 'skip') {
        const take = Math.min(this.need, chunk.length - i);
        i += take;
        this.pos += take;
        this.need -= take;
        if (this.need === 0) this.state = 'header';
      } else {
        return;
      }
    }
  }

  /** Checks the stream did not stop inside an entry. */
  finish(): void {
    if (!this.atBoundary) throw corrupt(`tar stream truncated at offset ${this.pos}`);
  }

  private onHeader(rec: Buffer): void {
    if (isZeroRecord(rec, 0)) {
      if (this.entryStart >= 0) throw corrupt(`tar entry without a header at offset ${this.pos}`);
      this.state = 'end';
      return;
    }
    const h = parseUstar(rec, 0);
    if (!h) throw corrupt(`bad tar header checksum at offset ${this.pos}`);
    if (this.entryStart < 0) this.entryStart = this.pos;
    if (h.typeflag === 'x' || h.typeflag === 'g' || h.typeflag === 'L' || h.typeflag === 'K') {
      if (!Number.isSafeInteger(h.size) || h.size < 0 || h.size > 64 * 1024 * 1024) throw corrupt(`bad tar metadata size at offset ${this.pos}`);
      this.metaKind = h.typeflag;
      this.need = h.size;
      this.acc = [];
      this.accLen = 0;
      this.state = 'meta';
      if (h.size === 0) this.onMeta(Buffer.alloc(0));
      return;
    }
    this.startEntry(h);
  }

  private onMeta(data: Buffer): void {
    this.acc = [];
    this.accLen = 0;
    const padded = padTo512(data.length);
    if (this.metaKind === 'x') {
      const rec = parsePaxRecords(data);
      if (!rec) throw corrupt(`bad PAX header at offset ${this.entryStart}`);
      this.pax = rec;
    } else if (this.metaKind === 'L') {
      this.longName = cstring(data);
    } else if (this.metaKind === 'K') {
      this.longLink = cstring(data);
    } else {
      // A global header applies to the archive as a whole; the headers we restore are per entry.
      this.entryStart = -1;
    }
    this.need = padded - data.length;
    this.state = this.need > 0 ? 'skip' : 'header';
  }

  private startEntry(h: RawTarHeader): void {
    const pax = this.pax;
    let path = this.longName ?? h.name;
    let link = this.longLink ?? h.linkname;
    let size = h.size;
    let uid = h.uid;
    let gid = h.gid;
    let mtimeNs = BigInt(Number.isFinite(h.mtimeSec) ? h.mtimeSec : 0) * NS;
    let typeflag = h.typeflag;
    if (pax) {
      const p = pax.get('path');
      if (p) path = p;
      const l = pax.get('linkpath');
      if (l) link = l;
      const s = pax.get('size');
      if (s) size = Number(s.toString('latin1'));
      const u = pax.get('uid');
      if (u) uid = Number(u.toString('latin1'));
      const g = pax.get('gid');
      if (g) gid = Number(g.toString('latin1'));
      const m = pax.get('mtime');
      const mt = m ? parsePaxTime(m.toString('latin1')) : undefined;
      if (mt !== undefined) mtimeNs = mt;
      if (pax.has('GNU.sparse.major') || pax.has('GNU.sparse.size')) typeflag = 'S';
    }
    if (!Number.isSafeInteger(size) || size < 0) throw corrupt(`bad tar entry size at offset ${this.entryStart}`);
    if (!Number.isFinite(h.mode) || !Number.isFinite(uid) || !Number.isFinite(gid)) throw corrupt(`bad tar header field at offset ${this.entryStart}`);
    let end = path.length;
    while (end > 1 && path[end - 1] === 0x2f) end--;
    const type = typeOf(typeflag);
    const e: ParsedEntry = {
      path: path.subarray(0, end),
      typeflag,
      type,
      size: type === 'file' || type === 'other' ? size : 0,
      mode: h.mode & 0o7777,
      uid,
      gid,
      mtimeNs,
      linkTarget: link,
      headerOffset: this.entryStart,
      dataOffset: this.pos + RECORD,
    };
    this.pax = undefined;
    this.longName = undefined;
    this.longLink = undefined;
    this.entryStart = -1;
    this.current = e;
    this.handler.entry(e);
    // Link and directory entries may declare a size that carries no data we need.
    const dataLen = size;
    if (e.size > 0) {
      this.need = e.size;
      this.state = 'data';
      this.skipAfter = padTo512(dataLen) - e.size;
    } else {
      this.handler.entryEnd(e);
      this.current = undefined;
      this.need = padTo512(dataLen);
      this.state = this.need > 0 ? 'skip' : 'header';
    }
  }

  private finishEntry(): void {
    const e = this.current!;
    this.current = undefined;
    this.handler.entryEnd(e);
    this.need = this.skipAfter;
    this.state = this.need > 0 ? 'skip' : 'header';
  }
}

function cstring(b: Buffer): Buffer {
  const z = b.indexOf(0);
  return Buffer.from(z < 0 ? b : b.subarray(0, z));
}

function typeOf(flag: string): EntryType | 'other' {
  switch (flag) {
    case '0':
    case '7':
      return 'file';
    case '1':
      return 'hardlink';
    case '2':
      return 'symlink';
    case '5':
      return 'dir';
    default:
      return 'other';
  }
}
