/**
 * The index object (SPEC §5): gzipped JSON, plus the look-ups restore needs — which entries a
 * set of paths selects, and which runs of blocks hold them.
 */
import { pipeline, Readable } from 'node:stream';
import { promisify } from 'node:util';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip, gunzipSync, gzip, gzipSync } from 'node:zlib';
import { CairnError } from '../errors.ts';
import {
  ARCHIVE_FORMAT,
  type ArchiveBlock,
  type ArchiveEntry,
  type ArchiveIndex,
  type ArchiveIndexHead,
  type EntrySource,
  type StreamedIndex,
} from './archive-types.ts';
import { READABLE_FORMAT_VERSIONS } from './archive-types.ts';
import { EntrySpill } from './entry-spill.ts';
import { padTo512 } from './tar-header.ts';

const gzipAsync = promisify(gzip);

/**
 * Gzipped JSON lines: a header line (the index without its entries), then one line per entry.
 * Neither side ever holds the whole index as one string (~300 bytes per entry, so 30 MB at
 * 100k files), and it is written as a series of gzip members (one stream to any gunzip).
 */
export function encodeIndex(index: ArchiveIndex): Buffer {
  const { entries, ...head } = index;
  const members: Buffer[] = [];
  for (const text of indexText(head, entries.length, [entries])) members.push(gzipSync(text, { level: INDEX_GZIP_LEVEL }));
  return Buffer.concat(members);
}

/** encodeIndex's bytes as a stream, from entries that arrive in batches. */
export function encodeIndexStream(head: ArchiveIndexHead, entryCount: number, batches: Iterable<ArchiveEntry[]>): Readable {
  return gzipMembers(indexText(head, entryCount, batches));
}

/**
 * encodeIndex's bytes from batches given as the JSON arrays JSON.stringify made of them (a pack's
 * spill file): turned into lines in place, without parsing and printing every entry again (most
 * of the cost of writing the index of 100k files). Relies on JSON.stringify's output: no
 * whitespace, and entries are flat objects whose first key is a string, so the bytes `},{"` occur
 * only between two entries (inside a string a quote is always escaped), and the comma becomes
 * the newline. Each batch must say how many entries it holds: the lines are counted against it.
 */
export function encodeIndexStreamFromArrays(
  head: ArchiveIndexHead,
  entryCount: number,
  arrays: Iterable<{ json: Buffer; count: number | undefined }>,
): Readable {
  return gzipMembers(
    (function* () {
      yield Buffer.from(`${JSON.stringify({ ...head, layout: 'jsonl', entryCount })}\n`);
      let parts: Buffer[] = [];
      let size = 0;
      let written = 0;
      for (const { json, count } of arrays) {
        if (json.length <= 2) continue;
        let lines = 1;
        for (let i = json.indexOf(BETWEEN); i >= 0; i = json.indexOf(BETWEEN, i + 2)) {
          json[i + 1] = 0x0a;
          lines++;
        }
        if (count !== lines) throw new CairnError('internal', `an index batch holds ${lines} entries, its writer counted ${String(count)}`);
        written += lines;
        json[json.length - 1] = 0x0a; // the closing bracket ends the last line
        parts.push(json.subarray(1));
        size += json.length - 1;
        if (size >= MEMBER_TEXT) {
          yield Buffer.concat(parts, size);
          parts = [];
          size = 0;
        }
      }
      if (size) yield Buffer.concat(parts, size);
      if (written !== entryCount) throw new CairnError('internal', `index header counts ${entryCount} entries, ${written} were written`);
    })(),
  );
}

const BETWEEN = Buffer.from('},{"');

/** Gzip members of the texts, in order, compressed two at a time on the thread pool. */
function gzipMembers(texts: Iterable<Buffer>): Readable {
  return Readable.from(
    (async function* () {
      const inflight: Promise<Buffer>[] = [];
      for (const text of texts) {
        const member = gzipAsync(text, { level: INDEX_GZIP_LEVEL });
        member.catch(() => undefined); // awaited below, in order
        inflight.push(member);
        if (inflight.length >= 2) yield await inflight.shift()!;
      }
      while (inflight.length) yield await inflight.shift()!;
    })(),
    { objectMode: false },
  );
}

const INDEX_GZIP_LEVEL = 1;
/** JSON text per gzip member. */
const MEMBER_TEXT = 512 * 1024;

function* indexText(head: ArchiveIndexHead, entryCount: number, batches: Iterable<ArchiveEntry[]>): Generator<Buffer> {
  yield Buffer.from(`${JSON.stringify({ ...head, layout: 'jsonl', entryCount })}\n`);
  let text = '';
  let written = 0;
  for (const batch of batches) {
    for (const e of batch) {
      text += `${JSON.stringify(e)}\n`;
      written++;
      if (text.length >= MEMBER_TEXT) {
        yield Buffer.from(text);
        text = '';
      }
    }
  }
  if (text) yield Buffer.from(text);
  if (written !== entryCount) throw new CairnError('internal', `index header counts ${entryCount} entries, ${written} were written`);
}

/** Reads an index written by encodeIndex (or a plain gzipped JSON document). */
export function decodeIndex(buf: Buffer): ArchiveIndex {
  let parsed: unknown;
  try {
    const raw = buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b ? gunzipSync(buf) : buf;
    const nl = raw.indexOf(0x0a);
    if (nl < 0) {
      parsed = JSON.parse(raw.toString('utf8'));
    } else {
      const head = JSON.parse(raw.toString('utf8', 0, nl)) as Record<string, unknown>;
      const entries: unknown[] = [];
      for (let start = nl + 1; start < raw.length; ) {
        let end = raw.indexOf(0x0a, start);
        if (end < 0) end = raw.length;
        if (end > start) entries.push(JSON.parse(raw.toString('utf8', start, end)));
        start = end + 1;
      }
      if (head.entryCount !== entries.length) throw new Error(`index lists ${String(head.entryCount)} entries, holds ${entries.length}`);
      delete head.layout;
      delete head.entryCount;
      parsed = { ...head, entries };
    }
  } catch (err) {
    throw new CairnError('archive-corrupt', `index does not decode: ${(err as Error).message}`, { cause: err });
  }
  return checkIndex(parsed);
}

function isNum(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Structural check of an index read from storage; offsets must be consistent with each other. */
export function checkIndex(v: unknown): ArchiveIndex {
  const ix = v as ArchiveIndex;
  const tarEnd = checkIndexHead(v);
  if (!Array.isArray(ix.entries)) throw badIndex('missing entries');
  for (const e of ix.entries) checkEntry(e, tarEnd);
  return ix;
}

function badIndex(why: string): CairnError {
  return new CairnError('archive-corrupt', `invalid archive index: ${why}`);
}

/** Checks everything but the entries; returns the tar length the block table covers. */
export function checkIndexHead(v: unknown): number {
  if (!v || typeof v !== 'object') throw badIndex('not an object');
  const ix = v as ArchiveIndexHead;
  if (ix.format !== ARCHIVE_FORMAT) throw badIndex(`format ${String(ix.format)}`);
  if (!READABLE_FORMAT_VERSIONS.includes(ix.version)) throw badIndex(`unsupported version ${String(ix.version)}`);
  if (ix.codec !== 'zstd' && ix.codec !== 'gzip' && ix.codec !== 'none') throw badIndex(`codec ${String(ix.codec)}`);
  if (!Array.isArray(ix.blocks) || !Array.isArray(ix.volumes)) throw badIndex('missing blocks or volumes');
  let c = 0;
  let u = 0;
  for (const b of ix.blocks) {
    if (!isNum(b.compressedOffset) || !isNum(b.compressedLength) || !isNum(b.uncompressedOffset) || !isNum(b.uncompressedLength))
      throw badIndex('block fields');
    if (b.object !== undefined && (ix.version < 2 || typeof b.object !== 'string' || !b.object)) throw badIndex('block object');
    // The tar is contiguous across all blocks; the archive's own object across its own blocks
    // (a format 2 block in another object may sit anywhere in it).
    if (b.uncompressedOffset !== u || (b.object === undefined && b.compressedOffset !== c)) throw badIndex('blocks are not contiguous');
    if (b.object === undefined) c += b.compressedLength;
    u += b.uncompressedLength;
  }
  return u;
}

/** Format 2: some block lives in another backup's archive object (an incremental backup). */
export function hasForeignBlocks(index: Pick<ArchiveIndexHead, 'blocks'>): boolean {
  return index.blocks.some((b) => b.object !== undefined);
}

/** Length of the complete stored archive: every frame, wherever it is stored (exportArchive's output). */
export function archiveLength(index: Pick<ArchiveIndexHead, 'blocks' | 'encryption'>): number {
  let n = 0;
  for (const b of index.blocks) n += b.compressedLength;
  // An encrypted archive is exported opened: without each frame's authentication tag.
  return index.encryption ? n - index.blocks.length * 16 : n;
}

/** Structural check of one entry against the tar length. */
export function checkEntry(e: ArchiveEntry, tarEnd: number): void {
  if (!e || typeof e !== 'object') throw badIndex('entry is not an object');
  if (typeof e.path !== 'string' || !isNum(e.headerOffset) || !isNum(e.dataOffset) || !isNum(e.size) || e.dataOffset < e.headerOffset)
    throw badIndex(`entry ${String(e.path)}`);
  if (e.type !== 'file' && e.type !== 'dir' && e.type !== 'symlink' && e.type !== 'hardlink') throw badIndex(`entry type ${String(e.type)}`);
  if (entryEnd(e) > tarEnd) throw badIndex(`entry ${e.path} lies past the end of the archive`);
}

export function entrySource(index: ArchiveIndex | StreamedIndex): EntrySource {
  const e = index.entries as unknown;
  if (Array.isArray(e)) return { batches: () => [e as ArchiveEntry[]] };
  if (e && typeof (e as EntrySource).batches === 'function') return e as EntrySource;
  throw badIndex('missing entries');
}

/** Every entry of a source, in order. */
export function* eachEntry(source: EntrySource): Generator<ArchiveEntry> {
  for (const batch of source.batches()) yield* batch;
}

/**
 * The index's text bytes: gunzipped when the object starts with gzip's magic (it always does
 * when Cairn wrote it). pipeline, not pipe: a source failing part-way (an S3 body) ends the
 * read with its error instead of leaving it waiting.
 */
async function indexBytes(src: Readable): Promise<Readable> {
  const it = src[Symbol.asyncIterator]();
  const first = await it.next();
  const body = Readable.from(
    (async function* () {
      if (first.done) return;
      yield first.value as Buffer;
      for (let n = await it.next(); !n.done; n = await it.next()) yield n.value as Buffer;
    })(),
    { objectMode: false },
  );
  const head = first.done ? undefined : (first.value as Buffer);
  if (head?.[0] !== 0x1f || (head.length > 1 && head[1] !== 0x8b)) return body;
  const gunzip = createGunzip({ chunkSize: 256 * 1024 });
  pipeline(body, gunzip, () => undefined);
  return gunzip;
}

/** Entry lines per spilled batch (their JSON text, ~300 bytes each). */
const SPILL_BATCH_TEXT = 256 * 1024;

/**
 * Reads an encoded index from a stream (a stored index object) without holding its entries:
 * they go, as they arrive, to a temporary file. Memory stays a batch whatever the file count.
 */
export async function readIndex(src: Readable, tempDir?: string): Promise<StreamedIndex> {
  const spill = new EntrySpill(tempDir);
  // The source's own failure (a dropped connection, a cancel) is not a corrupt index: it passes as is.
  let sourceError: unknown;
  src.once('error', (err) => (sourceError ??= err));
  try {
    let head: Record<string, unknown> | undefined;
    let legacy: Buffer[] | undefined;
    // Entry lines stay bytes (no decoding): each batch is '[' line (',' line)* ']' for the spill.
    let batch: Buffer[] = [];
    let batchBytes = 0;
    let count = 0;
    const flush = (): void => {
      if (!batch.length) return;
      batch.push(CLOSE);
      spill.appendJson(Buffer.concat(batch, batchBytes + 1));
      batch = [];
      batchBytes = 0;
    };
    const line = (bytes: Buffer): void => {
      if (legacy) return void legacy.push(bytes, NEWLINE);
      if (!head) {
        let first: unknown;
        try {
          first = JSON.parse(bytes.toString('utf8'));
        } catch {
          first = undefined;
        }
        // A plain JSON document (no entry lines, maybe over several lines): read whole, as decodeIndex does.
        if ((first as { layout?: unknown } | undefined)?.layout === 'jsonl') head = first as Record<string, unknown>;
        else legacy = [bytes, NEWLINE];
        return;
      }
      if (!bytes.length) return;
      batch.push(batch.length ? COMMA : OPEN, bytes);
      batchBytes += bytes.length + 1;
      count++;
      if (batchBytes >= SPILL_BATCH_TEXT) flush();
    };
    // The unfinished line, in pieces: a long line (a big block table) is joined once.
    let pieces: Buffer[] = [];
    for await (const chunk of await indexBytes(src)) {
      const buf = chunk as Buffer;
      let start = 0;
      for (let nl = buf.indexOf(0x0a); nl >= 0; nl = buf.indexOf(0x0a, start)) {
        const part = buf.subarray(start, nl);
        if (pieces.length) {
          pieces.push(part);
          line(Buffer.concat(pieces));
          pieces = [];
        } else {
          line(part);
        }
        start = nl + 1;
      }
      if (start < buf.length) pieces.push(buf.subarray(start));
    }
    if (pieces.length) line(Buffer.concat(pieces));
    if (!head && !legacy) throw new Error('empty index');
    if (legacy) {
      const whole = checkIndex(JSON.parse(Buffer.concat(legacy).toString('utf8')));
      const json = Buffer.from(JSON.stringify(whole.entries));
      spill.appendJson(json);
      const { entries: _entries, ...rest } = whole;
      return { ...rest, entries: spill };
    }
    flush();
    if (!head) throw new Error('empty index');
    if (head.entryCount !== count) throw new Error(`index lists ${String(head.entryCount)} entries, holds ${count}`);
    delete head.layout;
    delete head.entryCount;
    checkIndexHead(head);
    return { ...(head as unknown as ArchiveIndexHead), entries: spill };
  } catch (err) {
    spill.close();
    src.destroy();
    if (err instanceof CairnError) throw err;
    if (sourceError !== undefined) throw sourceError;
    throw new CairnError('archive-corrupt', `index does not decode: ${(err as Error).message}`, { cause: err });
  }
}

const OPEN = Buffer.from('[');
const COMMA = Buffer.from(',');
const CLOSE = Buffer.from(']');
const NEWLINE = Buffer.from('\n');

/**
 * The head of an encoded index (everything but its entries), checked: only its first line is
 * read when it has encodeIndex's layout (the rest of the object is not downloaded); a plain JSON
 * document is read whole.
 */
export async function readIndexHead(src: Readable): Promise<ArchiveIndexHead> {
  let sourceError: unknown;
  src.once('error', (err) => (sourceError ??= err));
  try {
    const decoder = new StringDecoder('utf8');
    const pieces: string[] = [];
    let head: Record<string, unknown> | undefined;
    let legacy = false;
    for await (const chunk of await indexBytes(src)) {
      const text = decoder.write(chunk as Buffer);
      const nl = legacy ? -1 : text.indexOf('\n');
      if (nl < 0) {
        pieces.push(text);
        continue;
      }
      pieces.push(text.slice(0, nl));
      const first = pieces.join('');
      let parsed: unknown;
      try {
        parsed = JSON.parse(first);
      } catch {
        parsed = undefined;
      }
      if ((parsed as { layout?: unknown } | undefined)?.layout === 'jsonl') {
        head = parsed as Record<string, unknown>;
        break;
      }
      // A plain JSON document, maybe over several lines: read it whole.
      legacy = true;
      pieces.length = 0;
      pieces.push(first, '\n', text.slice(nl + 1));
    }
    if (!head) {
      pieces.push(decoder.end());
      const { entries: _entries, ...rest } = checkIndex(JSON.parse(pieces.join('')));
      return rest;
    }
    delete head.layout;
    delete head.entryCount;
    checkIndexHead(head);
    return head as unknown as ArchiveIndexHead;
  } catch (err) {
    if (err instanceof CairnError) throw err;
    if (sourceError !== undefined) throw sourceError;
    throw new CairnError('archive-corrupt', `index does not decode: ${(err as Error).message}`, { cause: err });
  } finally {
    src.destroy();
  }
}

/** Offset just past an entry's (padded) content. */
export function entryEnd(e: ArchiveEntry): number {
  return e.dataOffset + (e.type === 'file' ? padTo512(e.size) : 0);
}

/** '<volume>/<rel>' selectors, normalised and checked. */
function selectors(paths: readonly string[]): string[] {
  const sel = paths.map(normalizeSelector);
  for (const s of sel)
    if (!s || s.split('/').some((c) => c === '..' || c === '.')) throw new CairnError('validation', `bad path selector ${JSON.stringify(s)}`);
  return sel;
}

/** The selector an entry path falls under (itself or an ancestor directory), if any. */
function matchSelector(path: string, sel: ReadonlySet<string>): string | undefined {
  // The path itself, then each ancestor: O(depth) whatever the number of selectors (a migrate's
  // cutover selects every changed file).
  if (sel.has(path)) return path;
  for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
    const ancestor = path.slice(0, i);
    if (sel.has(ancestor)) return ancestor;
  }
  return undefined;
}

function normalizeSelector(p: string): string {
  let s = p.replace(/\/+/g, '/');
  while (s.length > 1 && s.endsWith('/')) s = s.slice(0, -1);
  if (s.startsWith('/')) s = s.slice(1);
  return s;
}

/**
 * Entries selected by '<volume>/<rel>' paths (a directory selects its subtree). A hard link
 * whose target is not selected brings its target along as `sources` so its content exists.
 * Works in passes over the entries (a second one only for such links): they may be on disk.
 */
export function selectEntries(
  index: ArchiveIndex | StreamedIndex,
  paths: readonly string[] | undefined,
  volumes?: ReadonlySet<string>,
): { selected: ArchiveEntry[]; sources: ArchiveEntry[] } {
  const source = entrySource(index);
  const inVolume = (e: ArchiveEntry): boolean => !volumes || volumes.has(volumeOf(e.path));
  if (!paths) return { selected: [...eachEntry(source)].filter(inVolume), sources: [] };
  const list = selectors(paths);
  const sel = new Set(list);
  const hit = new Set<string>();
  const selected: ArchiveEntry[] = [];
  for (const e of eachEntry(source)) {
    if (!inVolume(e)) continue;
    const s = matchSelector(e.path, sel);
    if (s === undefined) continue;
    hit.add(s);
    selected.push(e);
  }
  const missing = list.filter((s) => !hit.has(s));
  if (missing.length) throw new CairnError('not-found', `not in this backup: ${missing.join(', ')}`, { details: { paths: missing } });
  const chosen = new Set(selected.map((e) => e.path));
  const wanted = new Set<string>();
  for (const e of selected) if (e.type === 'hardlink' && e.linkTarget && !chosen.has(e.linkTarget)) wanted.add(e.linkTarget);
  const byPath = new Map<string, ArchiveEntry>();
  if (wanted.size) for (const e of eachEntry(source)) if (e.type === 'file' && wanted.has(e.path)) byPath.set(e.path, e);
  return { selected, sources: [...byPath.values()] };
}

export function volumeOf(path: string): string {
  const i = path.indexOf('/');
  return i < 0 ? path : path.slice(0, i);
}

/** First block holding tar offset `off` (binary search over the block table). */
function blockAt(blocks: readonly ArchiveBlock[], off: number): number {
  let lo = 0;
  let hi = blocks.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (blocks[mid]!.uncompressedOffset <= off) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

export interface BlockRun {
  firstBlock: number;
  lastBlock: number;
  /** Tar offset where parsing starts (the first entry's header) and where it stops. */
  start: number;
  limit: number;
}

/** Adds an entry (the furthest in archive order so far) to runs of consecutive blocks to fetch. */
export function addToRuns(runs: BlockRun[], blocks: readonly ArchiveBlock[], e: ArchiveEntry): void {
  const end = entryEnd(e);
  const first = blockAt(blocks, e.headerOffset);
  const last = blockAt(blocks, Math.max(e.headerOffset, end - 1));
  const cur = runs[runs.length - 1];
  if (cur && first <= cur.lastBlock + 1) {
    cur.lastBlock = Math.max(cur.lastBlock, last);
    cur.limit = Math.max(cur.limit, end);
  } else {
    runs.push({ firstBlock: first, lastBlock: last, start: e.headerOffset, limit: end });
  }
}

/** Groups entries into runs of consecutive blocks to fetch. */
export function planRuns(index: Pick<ArchiveIndexHead, 'blocks'>, entries: readonly ArchiveEntry[]): BlockRun[] {
  const sorted = [...entries].sort((a, b) => a.headerOffset - b.headerOffset);
  const runs: BlockRun[] = [];
  for (const e of sorted) addToRuns(runs, index.blocks, e);
  return runs;
}
