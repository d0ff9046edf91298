/**
 * What a restore does (or did) to the target's live data, as its job result reports it (issue 15):
 * counts per kind, and the first paths ('<volume>/<relative path>') of each kind. The node worker
 * computes it (restore-changes.ts there); the CLI shows it before a replace.
 */
export interface RestoreChanges {
  created: number;
  changed: number;
  deleted: number;
  unchanged: number;
  samples: { created: string[]; changed: string[]; deleted: string[] };
}
