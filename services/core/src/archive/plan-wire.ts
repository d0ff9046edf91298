/**
 * A block's plan items as they travel to the extract worker (extract-job.ts): the numbers in one
 * Float64Array and the strings joined into one, instead of an array of objects. Structured clone
 * copies objects property by property on both sides (and leaves garbage in the extract worker);
 * a restore of 100,000 small files sends 100,000 of them.
 */
import type { EntryType } from './archive-types.ts';
import type { PlanItem } from './extractor.ts';

export interface WirePlan {
  /** SLOTS numbers per item (the offsets below). */
  nums: Float64Array;
  /** Each item's path, mtime, link target and sha256, one after another (their lengths in `nums`). */
  text: string;
  /** The rare items written under other paths (hard-link redirection): [item index, outputs]. */
  outputs?: [number, string[]][];
}

const TYPES: readonly EntryType[] = ['file', 'dir', 'symlink', 'hardlink'];
const TYPE_CODE: Record<EntryType, number> = { file: 0, dir: 1, symlink: 2, hardlink: 3 };

// Per item: offsets, size, mode, owner, flags (the type in the low two bits), the write errnos,
// then the lengths of its strings (-1: absent).
const HEADER = 0;
const DATA = 1;
const SIZE = 2;
const MODE = 3;
const UID = 4;
const GID = 5;
const FLAGS = 6;
const ERRNO_CHOWN = 7;
const ERRNO_TIME = 8;
const PATH_LEN = 9;
const MTIME_LEN = 10;
const LINK_LEN = 11;
const SHA_LEN = 12;
const SLOTS = 13;

const COVERED = 4;
const VERIFIED = 8;
const HASHED_AHEAD = 16;
const WRITTEN = 32;
const ERRNOS = 64;

export function encodePlan(items: readonly PlanItem[]): WirePlan {
  const nums = new Float64Array(items.length * SLOTS);
  const texts: string[] = [];
  let outputs: [number, string[]][] | undefined;
  for (let i = 0; i < items.length; i++) {
    const p = items[i]!;
    const at = i * SLOTS;
    nums[at + HEADER] = p.headerOffset;
    nums[at + DATA] = p.dataOffset;
    nums[at + SIZE] = p.size;
    nums[at + MODE] = p.mode;
    nums[at + UID] = p.uid;
    nums[at + GID] = p.gid;
    let flags = TYPE_CODE[p.type];
    if (p.covered) flags |= COVERED;
    if (p.verified) flags |= VERIFIED;
    if (p.hashedAhead) flags |= HASHED_AHEAD;
    if (p.written) flags |= WRITTEN;
    if (p.writeErrnos) {
      flags |= ERRNOS;
      nums[at + ERRNO_CHOWN] = p.writeErrnos[0];
      nums[at + ERRNO_TIME] = p.writeErrnos[1];
    }
    nums[at + FLAGS] = flags;
    nums[at + PATH_LEN] = p.path.length;
    nums[at + MTIME_LEN] = p.mtime.length;
    nums[at + LINK_LEN] = p.linkTarget?.length ?? -1;
    nums[at + SHA_LEN] = p.sha256?.length ?? -1;
    texts.push(p.path, p.mtime, p.linkTarget ?? '', p.sha256 ?? '');
    if (p.outputs) (outputs ??= []).push([i, p.outputs]);
  }
  const text = texts.join('');
  return outputs ? { nums, text, outputs } : { nums, text };
}

export function decodePlan(w: WirePlan): PlanItem[] {
  const { nums, text } = w;
  const items: PlanItem[] = [];
  let pos = 0;
  const take = (len: number): string => text.slice(pos, (pos += len));
  for (let at = 0; at < nums.length; at += SLOTS) {
    const flags = nums[at + FLAGS]!;
    const p: PlanItem = {
      headerOffset: nums[at + HEADER]!,
      dataOffset: nums[at + DATA]!,
      path: take(nums[at + PATH_LEN]!),
      type: TYPES[flags & 3]!,
      size: nums[at + SIZE]!,
      mode: nums[at + MODE]!,
      uid: nums[at + UID]!,
      gid: nums[at + GID]!,
      mtime: take(nums[at + MTIME_LEN]!),
    };
    const link = nums[at + LINK_LEN]!;
    if (link >= 0) p.linkTarget = take(link);
    const sha = nums[at + SHA_LEN]!;
    if (sha >= 0) p.sha256 = take(sha);
    if (flags & COVERED) p.covered = true;
    if (flags & VERIFIED) p.verified = true;
    if (flags & HASHED_AHEAD) p.hashedAhead = true;
    if (flags & WRITTEN) p.written = true;
    if (flags & ERRNOS) p.writeErrnos = [nums[at + ERRNO_CHOWN]!, nums[at + ERRNO_TIME]!];
    items.push(p);
  }
  for (const [i, outputs] of w.outputs ?? []) items[i]!.outputs = outputs;
  return items;
}
