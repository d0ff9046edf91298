/**
 * What the pack reader tells the main thread: with each block, the index entries stored and the
 * warnings raised since the block before and the progress so far; at the end, a summary per
 * volume.
 */
import type { ArchiveEntry, ArchiveWarning, VolumeSummary, WarningCode } from './archive-types.ts';

export class ReaderReport {
  readonly summaries: VolumeSummary[];
  bytesDone = 0;
  filesDone = 0;
  private entries: ArchiveEntry[] = [];
  private warnings: ArchiveWarning[] = [];

  constructor(volumes: readonly { name: string }[]) {
    this.summaries = volumes.map((v) => ({
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
  }

  /** `vol`: the volume to count it against, when it is about one. */
  warn(path: string, code: WarningCode, message: string, vol?: number): void {
    this.warnings.push({ path, code, message });
    if (vol !== undefined) this.summaries[vol]!.warnings++;
  }

  /** An entry whose headers (and content) are in the tar stream. */
  stored(vol: number, entry: ArchiveEntry): void {
    const sum = this.summaries[vol]!;
    sum.entries++;
    if (entry.type === 'file') {
      sum.files++;
      sum.logicalBytes += entry.size;
    } else if (entry.type === 'dir') sum.dirs++;
    else if (entry.type === 'symlink') sum.symlinks++;
    else sum.hardlinks++;
    this.entries.push(entry);
  }

  /** Entries stored since the last call. */
  takeEntries(): ArchiveEntry[] {
    const taken = this.entries;
    this.entries = [];
    return taken;
  }

  /** Warnings raised since the last call. */
  takeWarnings(): ArchiveWarning[] {
    const taken = this.warnings;
    this.warnings = [];
    return taken;
  }

  get hasWarnings(): boolean {
    return this.warnings.length > 0;
  }

  /** The summaries for the end of the pack. */
  finish(): VolumeSummary[] {
    for (const s of this.summaries) s.empty = s.entries <= 1;
    return this.summaries;
  }
}
