/**
 * Restores mtimes. Node's utimes takes seconds as a double and libuv truncates them to
 * microseconds, so exact times are set by the native helper (utimensat(2), native-reads.ts).
 * Without it (not built, or CAIRN_NATIVE_READS=0) times are set through Node, to the microsecond.
 * Either way a symlink gets its own time, never its target's.
 */
import { lutimesSync } from 'node:fs';
import { errnoName, type NativeReads } from './native-reads.ts';
import { splitNs } from './tar-header.ts';

export interface TimeSetter {
  /** Times are set to the nanosecond. */
  readonly exact: boolean;
  set(path: Buffer, mtimeNs: bigint): void;
  /** The paths whose time could not be set, with the reason. */
  readonly failures: { path: Buffer; reason: string }[];
}

class NativeTimeSetter implements TimeSetter {
  readonly exact = true;
  readonly failures: { path: Buffer; reason: string }[] = [];
  /** The path with its NUL terminator, in one reused buffer (a copy per file otherwise). */
  private cPath = Buffer.alloc(4096);

  constructor(private readonly native: NativeReads) {}

  set(path: Buffer, mtimeNs: bigint): void {
    if (this.cPath.length <= path.length) this.cPath = Buffer.alloc(path.length * 2);
    this.cPath.set(path, 0);
    this.cPath[path.length] = 0;
    const { sec, nsec } = splitNs(mtimeNs);
    const err = this.native.setTime(this.cPath.subarray(0, path.length + 1), sec, nsec);
    if (err) this.failures.push({ path, reason: errnoName(err) });
  }
}

class NodeTimeSetter implements TimeSetter {
  readonly exact = false;
  readonly failures: { path: Buffer; reason: string }[] = [];

  set(path: Buffer, mtimeNs: bigint): void {
    const { sec, nsec } = splitNs(mtimeNs);
    // libuv truncates to whole microseconds; aim at the middle of the microsecond. A numeric
    // string, because Node takes a negative number (a time before 1970) to mean "now".
    const t = String(sec + (Math.floor(nsec / 1000) + 0.5) / 1e6);
    try {
      lutimesSync(path, t, t);
    } catch (err) {
      this.failures.push({ path, reason: (err as NodeJS.ErrnoException).code ?? (err as Error).message });
    }
  }
}

/** `native`: the loaded helper (loadNativeReads), undefined when it is not built or switched off. */
export function createTimeSetter(native: NativeReads | undefined): TimeSetter {
  return native ? new NativeTimeSetter(native) : new NodeTimeSetter();
}
