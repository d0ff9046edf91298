/**
 * The plan step of an unpack: what to extract, decided from the index before any stored byte is
 * read — every entry checked, the target directory of each volume, the entries in archive order
 * with their hard-link redirections, the runs of blocks that hold them, and the progress totals.
 *
 * It works in passes over the entries, holding only the selection (for chosen paths) or nothing
 * per entry (for whole volumes): an index of a million files is read from its temporary file a
 * few times rather than held.
 */
import { resolve as resolvePath } from 'node:path';
import { CairnError } from '../errors.ts';
import { addToRuns, checkEntry, checkIndexHead, eachEntry, entryEnd, entrySource, selectEntries, volumeOf, type BlockRun } from './archive-index.ts';
import type { ArchiveEntry, ArchiveIndex, EntrySource, StreamedIndex, UnpackOptions } from './archive-types.ts';
import type { PlanItem } from './extractor.ts';
import { checkChosen, checkEntryPath } from './path-safety.ts';

/** Hard-link redirections of one entry (see PlannedEntry.outputs / covered). */
type Extra = { outputs?: string[]; covered?: boolean };

export interface Plan {
  roots: Record<string, string>;
  /** The entries to extract, in archive order (a fresh pass each call: they may be on disk). */
  entries: () => Iterator<ArchiveEntry>;
  /** Hard-link redirections by header offset. */
  extras: Map<number, Extra>;
  runs: BlockRun[];
  /** Every entry of the restored volumes is extracted. */
  strict: boolean;
  /** All volumes of the archive (entries of the others are corruption). */
  known: string[];
  bytesTotal: number;
  filesTotal: number;
}

type Index = ArchiveIndex | StreamedIndex;
type Options = Pick<UnpackOptions, 'target' | 'volumeDirs' | 'paths'>;

/** Content bytes and files to write, for progress (a hard link is a file written). */
class Totals {
  bytes = 0;
  files = 0;

  count(e: ArchiveEntry): void {
    if (e.type === 'file') this.bytes += e.size;
    if (e.type === 'file' || e.type === 'hardlink') this.files++;
  }
}

/** What the two kinds of plan start from: pass 1's results. */
interface Checked {
  index: Index;
  source: EntrySource;
  roots: Record<string, string>;
  /** The volumes being restored. */
  volumes: Set<string>;
  known: Set<string>;
  symlinks: Set<string>;
  totals: Totals;
}

const NO_SYMLINKS: ReadonlySet<string> = new Set();

export function planExtraction(o: Options, index: Index): Plan {
  const tarEnd = checkIndexHead(index);
  const roots = volumeRoots(o, index);
  const volumes = new Set(Object.keys(roots));
  const known = new Set(index.volumes.map((v) => v.name));
  for (const name of known)
    if (!name || name.includes('/') || name === '.' || name === '..')
      throw new CairnError('unsafe-path', `unsafe volume name ${JSON.stringify(name)} in index`);
  const source = entrySource(index);

  // Pass 1: every entry is well-formed, in order and inside a listed volume; the symlinks.
  const symlinks = new Set<string>();
  const totals = new Totals();
  let prevEnd = 0;
  for (const e of eachEntry(source)) {
    checkEntry(e, tarEnd);
    if (e.headerOffset < prevEnd) throw new CairnError('archive-corrupt', `invalid archive index: entry ${e.path} overlaps the one before it`);
    prevEnd = entryEnd(e);
    const volume = checkEntryPath(e, known);
    if (e.type === 'symlink') symlinks.add(e.path);
    if (!o.paths && volumes.has(volume)) {
      totals.count(e);
      // Its link target's own checks; whether either goes through a symlink needs them all (pass 2).
      if (e.type === 'hardlink') checkChosen(e, NO_SYMLINKS);
    }
  }
  const checked: Checked = { index, source, roots, volumes, known, symlinks, totals };
  return o.paths ? planPaths(checked, o.paths) : planVolumes(checked);
}

/** Volume name -> absolute directory to extract it into. */
function volumeRoots(o: Options, index: Index): Record<string, string> {
  const roots: Record<string, string> = {};
  if (o.volumeDirs) {
    for (const [name, dir] of Object.entries(o.volumeDirs)) {
      if (!index.volumes.some((v) => v.name === name)) throw new CairnError('validation', `volume ${name} is not in this backup`);
      roots[name] = resolvePath(dir);
    }
  } else {
    for (const v of index.volumes) roots[v.name] = resolvePath(o.target, v.name);
  }
  return roots;
}

/** Whole volumes: every entry in them, nothing held per entry. */
function planVolumes(c: Checked): Plan {
  const { index, source, volumes } = c;
  const inVolumes = function* (): Generator<ArchiveEntry> {
    for (const e of eachEntry(source)) if (volumes.has(volumeOf(e.path))) yield e;
  };
  // Pass 2: no write goes through a symlink (none can without symlinks). Pass 3 is the extraction itself.
  if (c.symlinks.size) for (const e of inVolumes()) checkChosen(e, c.symlinks);
  const runs: BlockRun[] = [];
  const last = index.blocks.length - 1;
  if (volumes.size === index.volumes.length) {
    if (last >= 0) runs.push({ firstBlock: 0, lastBlock: last, start: 0, limit: Number.POSITIVE_INFINITY });
  } else {
    for (const e of inVolumes()) addToRuns(runs, index.blocks, e);
  }
  return { ...common(c), entries: inVolumes, extras: new Map(), runs, strict: true };
}

/** Chosen paths: the selected entries, and the files their hard links need. */
function planPaths(c: Checked, paths: string[]): Plan {
  const { index, totals } = c;
  const extras = new Map<number, Extra>();
  const { selected, sources } = selectEntries(index, paths, c.volumes);
  // A hard link whose file is not selected: that file's content is written under the link's path.
  const bySource = new Map<string, string[]>();
  for (const src of sources) {
    const outputs: string[] = [];
    bySource.set(src.path, outputs);
    extras.set(src.headerOffset, { outputs });
    totals.bytes += src.size;
  }
  for (const e of selected) {
    totals.count(e);
    const outputs = e.type === 'hardlink' && e.linkTarget ? bySource.get(e.linkTarget) : undefined;
    if (outputs) {
      outputs.push(e.path);
      extras.set(e.headerOffset, { covered: true });
    }
  }
  const entries = [...selected, ...sources].sort((a, b) => a.headerOffset - b.headerOffset);
  for (const e of entries) checkChosen(e, c.symlinks);
  const runs: BlockRun[] = [];
  for (const e of entries) addToRuns(runs, index.blocks, e);
  return { ...common(c), entries: () => entries[Symbol.iterator](), extras, runs, strict: false };
}

function common(c: Checked): Pick<Plan, 'roots' | 'known' | 'bytesTotal' | 'filesTotal'> {
  return { roots: c.roots, known: [...c.known], bytesTotal: c.totals.bytes, filesTotal: c.totals.files };
}

/** The plan's entries handed out in archive order, those whose headers a block holds with it. */
export class PlanCursor {
  private readonly entries: Iterator<ArchiveEntry>;
  private next: IteratorResult<ArchiveEntry>;

  constructor(private readonly plan: Plan) {
    this.entries = plan.entries();
    this.next = this.entries.next();
  }

  /** The next entries whose headers start before tar offset `end`. */
  itemsBefore(end: number): PlanItem[] {
    const items: PlanItem[] = [];
    while (!this.next.done && this.next.value.headerOffset < end) {
      items.push(planItem(this.next.value, this.plan.extras.get(this.next.value.headerOffset)));
      this.next = this.entries.next();
    }
    return items;
  }
}

function planItem(e: ArchiveEntry, extra: Extra | undefined): PlanItem {
  const p: PlanItem = {
    headerOffset: e.headerOffset,
    dataOffset: e.dataOffset,
    path: e.path,
    type: e.type,
    size: e.size,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    mtime: e.mtime,
  };
  if (e.linkTarget !== undefined) p.linkTarget = e.linkTarget;
  if (e.sha256 !== undefined) p.sha256 = e.sha256;
  if (extra?.outputs) p.outputs = extra.outputs;
  if (extra?.covered) p.covered = true;
  return p;
}
