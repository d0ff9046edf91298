import fs from 'node:fs/promises';
import { lstatSync, type BigIntStats, type Dirent } from 'node:fs';
import { bytesToPath, eachEntry, pathToBytes, type ArchiveEntry, type EntrySource } from '@cairn/core/archive/index.ts';
import type { RestoreChanges } from '@cairn/core/domain/restore-changes.ts';
import { isCairnName } from './staging.ts';

/** How many paths of each kind a report names (the counts are always whole). */
export const CHANGE_SAMPLE_LIMIT = 20;

/**
 * What a restore does (or did) to the target's live data, per the same rules as its swap
 * (staging.ts applyStaged): entries of the backup that are missing live are created, those that
 * differ are changed, live entries the restored tree does not have are deleted (replace mode, or
 * below a live directory a merge replaces by a file), the rest is unchanged. Paths in the samples
 * are '<volume>/<relative path>', the first `sampleLimit` found of each kind.
 */
export type { RestoreChanges };

/** One restored volume: its live directory (null: it does not exist yet) and the chosen paths in it. */
export interface ChangeScope {
  name: string;
  live: string | null;
  /** Relative paths chosen in the volume; all of it when absent or empty. */
  paths?: string[];
}

/** What a backup entry is, in the terms the comparison uses (kept per entry of the selection). */
type Signature = string;

/**
 * The comparison of a backup entry with what is live: type, then a file's size and mtime (to the
 * microsecond: a restore without the native time helper sets times to the microsecond), a
 * symlink's target. Directories compare by type only (their mtime moves with their content).
 * Content is not read: an equal size and mtime is taken as equal content, as backups do.
 */
export function signatureOf(e: Pick<ArchiveEntry, 'type' | 'size' | 'mtime' | 'linkTarget'>): Signature {
  switch (e.type) {
    case 'file':
      return `f:${e.size}:${BigInt(e.mtime) / 1000n}`;
    case 'symlink':
      return `l:${e.linkTarget ?? ''}`;
    case 'hardlink':
      // A hard link is restored as a link to a file of the backup: live, a regular file of any content.
      return 'h';
    default:
      return 'd';
  }
}

/** The signature of a live entry, comparable with signatureOf; null when it is of no kind a backup holds. */
export function liveSignatureOf(st: BigIntStats, linkTarget?: string): Signature | null {
  if (st.isFile()) return `f:${st.size}:${st.mtimeNs / 1000n}`;
  if (st.isSymbolicLink()) return `l:${linkTarget ?? ''}`;
  if (st.isDirectory()) return 'd';
  return null;
}

/** True when the live entry is what restoring `wanted` would leave (nothing to write). */
export function sameEntry(wanted: Signature, live: Signature | null): boolean {
  if (live === null) return false;
  if (wanted === 'h') return live.startsWith('f:');
  return wanted === live;
}

class Tally implements RestoreChanges {
  created = 0;
  changed = 0;
  deleted = 0;
  unchanged = 0;
  samples = { created: [] as string[], changed: [] as string[], deleted: [] as string[] };

  constructor(private readonly limit: number) {}

  add(kind: 'created' | 'changed' | 'deleted' | 'unchanged', path: string): void {
    this[kind]++;
    if (kind !== 'unchanged' && this.samples[kind].length < this.limit) this.samples[kind].push(path);
  }

  toJSON(): RestoreChanges {
    const { created, changed, deleted, unchanged, samples } = this;
    return { created, changed, deleted, unchanged, samples };
  }
}

/**
 * Compares the selected entries of a backup with the live volumes, changing nothing: one pass
 * over the index entries (keeping the selection's path and signature), one walk of the chosen
 * live trees. Memory grows with the number of entries selected (a path and a short signature
 * each), never with their data.
 */
export async function restoreChanges(
  entries: EntrySource,
  scopes: readonly ChangeScope[],
  mode: 'replace' | 'merge',
  sampleLimit = CHANGE_SAMPLE_LIMIT,
): Promise<RestoreChanges> {
  const tally = new Tally(sampleLimit);
  const wanted = new Map<string, Map<string, Signature>>(scopes.map((s) => [s.name, new Map()]));
  const roots = new Map(scopes.map((s) => [s.name, s.paths?.length ? s.paths.map(clean) : ['']]));
  // A volume with no live directory yet: everything selected is created, nothing to hold for a walk.
  const absent = new Set(scopes.filter((s) => s.live === null).map((s) => s.name));
  for (const e of eachEntry(entries)) {
    const slash = e.path.indexOf('/');
    if (slash < 0) continue; // a volume's root directory: never created, changed or deleted itself
    const volume = e.path.slice(0, slash);
    const rel = e.path.slice(slash + 1);
    const selected = wanted.get(volume);
    // Cairn's own directories a backup picked up are not restored over the live ones.
    if (!selected || isCairnName(rel.split('/')[0]!) || !roots.get(volume)!.some((r) => within(rel, r))) continue;
    if (absent.has(volume)) tally.add('created', e.path);
    else selected.set(rel, signatureOf(e));
  }
  for (const scope of scopes) {
    const selected = wanted.get(scope.name)!;
    const walk = new LiveWalk(scope, selected, mode, tally);
    for (const root of roots.get(scope.name)!) await walk.root(root);
    // What the walk did not meet is not live: the restore creates it.
    for (const rel of selected.keys()) tally.add('created', `${scope.name}/${rel}`);
  }
  return tally.toJSON();
}

const STATS_PER_TURN = 256;

/** One volume's walk: matches live entries against the selection, removing each one it meets. */
class LiveWalk {
  private readonly live: Buffer | null;

  constructor(
    private readonly scope: ChangeScope,
    private readonly selected: Map<string, Signature>,
    private readonly mode: 'replace' | 'merge',
    private readonly tally: Tally,
  ) {
    this.live = scope.live === null ? null : Buffer.from(scope.live);
  }

  /** A chosen path ('' for the whole volume), checked only through real directories (as applyStaged does). */
  async root(rel: string): Promise<void> {
    if (this.live === null) return;
    if (rel === '') return this.children('', false);
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      const st = await this.lstat(parent);
      if (st?.isDirectory()) continue;
      // Missing parents are made to move the path in; a parent that is not a directory is refused (unsafe-path).
      if (!st && this.selected.has(rel)) for (let j = i; j < parts.length; j++) this.tally.add('created', `${this.scope.name}/${parts.slice(0, j).join('/')}`);
      return;
    }
    const st = await this.lstat(rel);
    if (st) await this.visit(rel, st, false);
  }

  /** A live entry: compared with the backup's, or deleted; a directory's children after it. */
  private async visit(rel: string, st: BigIntStats, displaced: boolean): Promise<void> {
    const path = `${this.scope.name}/${rel}`;
    const want = displaced ? undefined : this.selected.get(rel);
    if (want === undefined) {
      // Absent from the restored tree: replace removes it; merge keeps it unless its parent is replaced.
      if (this.mode === 'merge' && !displaced) return;
      this.tally.add('deleted', path);
      if (st.isDirectory()) await this.children(rel, true);
      return;
    }
    this.selected.delete(rel);
    const target = st.isSymbolicLink() ? bytesToPath(await fs.readlink(this.abs(rel), { encoding: 'buffer' })) : undefined;
    const same = sameEntry(want, liveSignatureOf(st, target));
    this.tally.add(same ? 'unchanged' : 'changed', path);
    // A live directory the backup holds as something else goes away with everything in it.
    if (st.isDirectory()) await this.children(rel, want !== 'd');
  }

  private async children(rel: string, displaced: boolean): Promise<void> {
    let names: Dirent<Buffer>[];
    try {
      names = await fs.readdir(this.abs(rel), { withFileTypes: true, encoding: 'buffer' });
    } catch (err) {
      // Gone or unreadable while walked: what is not seen is neither compared nor deleted.
      if (['ENOENT', 'ENOTDIR', 'EACCES'].includes((err as NodeJS.ErrnoException).code ?? '')) return;
      throw err;
    }
    const children = names
      .map((d) => bytesToPath(d.name))
      .filter((name) => rel !== '' || !isCairnName(name)) // Cairn's own restore directories are never content
      .map((name) => (rel === '' ? name : `${rel}/${name}`));
    for (const [i, child] of children.entries()) {
      // Synchronous stats (an async one is a ~50 µs thread-pool round trip, a sync one a few µs),
      // with the event loop let go every so often: other jobs of this worker keep running.
      if (i > 0 && i % STATS_PER_TURN === 0) await new Promise((r) => setImmediate(r));
      const st = this.lstatNow(child);
      if (st) await this.visit(child, st, displaced);
    }
  }

  private lstatNow(rel: string): BigIntStats | null {
    try {
      return lstatSync(this.abs(rel), { bigint: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
      throw err;
    }
  }

  private async lstat(rel: string): Promise<BigIntStats | null> {
    return fs.lstat(this.abs(rel), { bigint: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return null;
      throw err;
    });
  }

  private abs(rel: string): Buffer {
    return rel === '' ? this.live! : Buffer.concat([this.live!, Buffer.from('/'), pathToBytes(rel)]);
  }
}

function clean(rel: string): string {
  return rel.replace(/\/+$/, '');
}

function within(rel: string, root: string): boolean {
  return root === '' || rel === root || rel.startsWith(`${root}/`);
}
