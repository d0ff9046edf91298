/**
 * The index object (SPEC §5): gzipped JSON, plus the look-ups restore needs — which entries a
 * set of paths selects, and which runs of blocks hold them.
 */
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { gunzipSync, gzip, gzipSync } from 'node:zlib';
import { CairnError } from '../errors.ts';
import { ARCHIVE_FORMAT, ARCHIVE_FORMAT_VERSION, type ArchiveBlock, type ArchiveEntry, type ArchiveIndex, type ArchiveIndexHead } from './archive-types.ts';
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

/** encodeIndex's bytes as a stream, from entries that arrive in batches (a pack's spill file). */
export function encodeIndexStream(head: ArchiveIndexHead, entryCount: number, batches: Iterable<ArchiveEntry[]>): Readable {
  return Readable.from(
    (async function* () {
      for (const text of indexText(head, entryCount, batches)) yield await gzipAsync(text, { level: INDEX_GZIP_LEVEL });
    })(),
    { objectMode: false },
  );
}

const INDEX_GZIP_LEVEL = 6;
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
  const bad = (why: string): CairnError => new CairnError('archive-corrupt', `invalid archive index: ${why}`);
  if (!v || typeof v !== 'object') throw bad('not an object');
  const ix = v as ArchiveIndex;
  if (ix.format !== ARCHIVE_FORMAT) throw bad(`format ${String(ix.format)}`);
  if (ix.version !== ARCHIVE_FORMAT_VERSION) throw bad(`unsupported version ${String(ix.version)}`);
  if (ix.codec !== 'zstd' && ix.codec !== 'gzip' && ix.codec !== 'none') throw bad(`codec ${String(ix.codec)}`);
  if (!Array.isArray(ix.blocks) || !Array.isArray(ix.entries) || !Array.isArray(ix.volumes)) throw bad('missing blocks, entries or volumes');
  let c = 0;
  let u = 0;
  for (const b of ix.blocks) {
    if (!isNum(b.compressedOffset) || !isNum(b.compressedLength) || !isNum(b.uncompressedOffset) || !isNum(b.uncompressedLength)) throw bad('block fields');
    if (b.compressedOffset !== c || b.uncompressedOffset !== u) throw bad('blocks are not contiguous');
    c += b.compressedLength;
    u += b.uncompressedLength;
  }
  for (const e of ix.entries) {
    if (typeof e.path !== 'string' || !isNum(e.headerOffset) || !isNum(e.dataOffset) || !isNum(e.size) || e.dataOffset < e.headerOffset) throw bad(`entry ${String(e.path)}`);
    if (e.type !== 'file' && e.type !== 'dir' && e.type !== 'symlink' && e.type !== 'hardlink') throw bad(`entry type ${String(e.type)}`);
    if (entryEnd(e) > u) throw bad(`entry ${e.path} lies past the end of the archive`);
  }
  return ix;
}

/** Offset just past an entry's (padded) content. */
export function entryEnd(e: ArchiveEntry): number {
  return e.dataOffset + (e.type === 'file' ? padTo512(e.size) : 0);
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
 */
export function selectEntries(index: ArchiveIndex, paths: readonly string[] | undefined, volumes?: ReadonlySet<string>): { selected: ArchiveEntry[]; sources: ArchiveEntry[] } {
  const inVolume = (e: ArchiveEntry): boolean => !volumes || volumes.has(volumeOf(e.path));
  if (!paths) return { selected: index.entries.filter(inVolume), sources: [] };
  const sel = paths.map(normalizeSelector);
  for (const s of sel) if (!s || s.split('/').some((c) => c === '..' || c === '.')) throw new CairnError('validation', `bad path selector ${JSON.stringify(s)}`);
  const hit = new Set<string>();
  const selected = index.entries.filter((e) => {
    if (!inVolume(e)) return false;
    for (const s of sel) {
      if (e.path === s || e.path.startsWith(`${s}/`)) {
        hit.add(s);
        return true;
      }
    }
    return false;
  });
  const missing = sel.filter((s) => !hit.has(s));
  if (missing.length) throw new CairnError('not-found', `not in this backup: ${missing.join(', ')}`, { details: { paths: missing } });
  const chosen = new Set(selected.map((e) => e.path));
  const byPath = new Map<string, ArchiveEntry>();
  for (const e of index.entries) if (e.type === 'file') byPath.set(e.path, e);
  const sources: ArchiveEntry[] = [];
  for (const e of selected) {
    if (e.type !== 'hardlink' || !e.linkTarget || chosen.has(e.linkTarget)) continue;
    const t = byPath.get(e.linkTarget);
    if (t && !sources.includes(t)) sources.push(t);
  }
  return { selected, sources };
}

export function volumeOf(path: string): string {
  const i = path.indexOf('/');
  return i < 0 ? path : path.slice(0, i);
}

/** First block holding tar offset `off` (binary search over the block table). */
export function blockAt(blocks: readonly ArchiveBlock[], off: number): number {
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

/** Groups entries (in archive order) into runs of consecutive blocks to fetch. */
export function planRuns(index: ArchiveIndex, entries: readonly ArchiveEntry[]): BlockRun[] {
  const sorted = [...entries].sort((a, b) => a.headerOffset - b.headerOffset);
  const runs: BlockRun[] = [];
  for (const e of sorted) {
    const end = entryEnd(e);
    const first = blockAt(index.blocks, e.headerOffset);
    const last = blockAt(index.blocks, Math.max(e.headerOffset, end - 1));
    const cur = runs[runs.length - 1];
    if (cur && first <= cur.lastBlock + 1) {
      cur.lastBlock = Math.max(cur.lastBlock, last);
      cur.limit = Math.max(cur.limit, end);
    } else {
      runs.push({ firstBlock: first, lastBlock: last, start: e.headerOffset, limit: end });
    }
  }
  return runs;
}
