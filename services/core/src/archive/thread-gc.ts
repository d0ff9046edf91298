/**
 * Scavenges for the store thread. It receives or reads buffers by the megabyte and allocates
 * almost nothing else, so V8 would collect them rarely: dead ones piled up as RSS (~10–15 MiB
 * more for a node worker running two backups, measured). Its young generation is small and holds
 * only the few buffers in flight, so a scavenge every BYTES_PER_SCAVENGE costs well under a
 * millisecond, and one that comes before a buffer in flight has survived twice never promotes it.
 * And a full collection on demand (collectNow), for a thread that let go of an unpack's shared
 * slabs (shared-slab.ts): their memory is freed only once every thread that held one collected it.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const BYTES_PER_SCAVENGE = 8 * 1024 * 1024;

type Gc = (options?: { type?: 'minor' | 'major' }) => void;
/** undefined: not looked up yet; null: not available (then V8 collects as it would anyway). */
let gc: Gc | null | undefined;
let since = 0;

function collector(): Gc | null {
  if (gc === undefined) {
    try {
      // Exposes gc() to contexts created afterwards (the one made here to take it); the flag is the
      // process's, so later threads' and vm contexts' globals have a gc() too, which nothing calls.
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as Gc;
    } catch {
      gc = null;
    }
  }
  return gc;
}

/** `bytes` of buffers handled (and soon dead) on this thread: a scavenge once enough went by. */
export function handled(bytes: number): void {
  since += bytes;
  if (since < BYTES_PER_SCAVENGE) return;
  since = 0;
  collector()?.({ type: 'minor' });
}

/** A full collection now (a thread let go of a large buffer it will not replace soon). */
export function collectNow(): void {
  since = 0;
  collector()?.({ type: 'major' });
}
