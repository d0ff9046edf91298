/**
 * Restores mtimes with nanosecond precision. Node's utimes takes seconds as a double and libuv
 * truncates them to microseconds, so exact times are set by one `perl` process per restore
 * calling utimensat(2) (perl-base is part of every Debian-based image). Without perl (or on an
 * architecture whose syscall number we do not know) times fall back to Node, to the microsecond.
 */
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { lutimesSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';

const SYS_UTIMENSAT: Partial<Record<NodeJS.Architecture, number>> = { x64: 280, arm64: 88 };
const NS = 1_000_000_000n;
const NUL = Buffer.from([0]);

// Records are "<sec>\0<nsec>\0<path>\0"; failures come back as "<errno text>\0<path>\0".
// atime is left alone (UTIME_OMIT); AT_SYMLINK_NOFOLLOW (0x100) sets a symlink's own time.
const SCRIPT = `
use strict; use warnings; $/ = "\\0"; $| = 0;
my $nr = shift @ARGV;
while (defined(my $s = <STDIN>)) {
  my $n = <STDIN>; my $p = <STDIN>;
  last unless defined $p;
  chomp($s); chomp($n); chomp($p);
  my $t = pack("q4", 0, 1073741822, $s, $n);
  if (syscall($nr, -100, $p, $t, 0x100) != 0) { print "$!\\0$p\\0"; }
}
`;

export interface TimeSetter {
  readonly exact: boolean;
  set(path: Buffer, mtimeNs: bigint): void;
  /** Hands queued records to the helper (call once per block: one pipe write, not one per file). */
  flush(): void;
  /** Waits until every time is applied; returns the paths that failed with the reason. */
  finish(): Promise<{ path: Buffer; reason: string }[]>;
  /** Stops at once (abort). */
  kill(): void;
}

let perlOk: boolean | undefined;

function perlAvailable(): boolean {
  if (perlOk === undefined) {
    const nr = SYS_UTIMENSAT[process.arch];
    perlOk = nr !== undefined && spawnSync('perl', ['-e', 'exit 0'], { stdio: 'ignore' }).status === 0;
  }
  return perlOk;
}

function split(ns: bigint): { sec: bigint; nsec: bigint } {
  let sec = ns / NS;
  let nsec = ns % NS;
  if (nsec < 0n) {
    sec -= 1n;
    nsec += NS;
  }
  return { sec, nsec };
}

class PerlTimeSetter implements TimeSetter {
  readonly exact = true;
  private readonly child: ChildProcessByStdio<Writable, Readable, null>;
  private readonly out: Buffer[] = [];
  private readonly done: Promise<number | null>;
  private spawnError: Error | undefined;

  constructor() {
    this.child = spawn('perl', ['-e', SCRIPT, String(SYS_UTIMENSAT[process.arch])], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.child.stdout.on('data', (b: Buffer) => this.out.push(b));
    this.child.stdin.on('error', (err) => {
      this.spawnError ??= err;
    });
    this.done = new Promise((resolve) => {
      this.child.on('error', (err) => {
        this.spawnError ??= err;
        resolve(null);
      });
      this.child.on('close', (code) => resolve(code));
    });
  }

  private queued: Buffer[] = [];
  private queuedBytes = 0;

  set(path: Buffer, mtimeNs: bigint): void {
    const { sec, nsec } = split(mtimeNs);
    this.queued.push(Buffer.from(`${sec}\0${nsec}\0`, 'latin1'), path, NUL);
    this.queuedBytes += path.length + 24;
    if (this.queuedBytes >= 256 * 1024) this.flush();
  }

  flush(): void {
    if (!this.queued.length) return;
    this.child.stdin.write(Buffer.concat(this.queued));
    this.queued = [];
    this.queuedBytes = 0;
  }

  async finish(): Promise<{ path: Buffer; reason: string }[]> {
    this.flush();
    this.child.stdin.end();
    const code = await this.done;
    if (this.spawnError || code !== 0) {
      return [{ path: Buffer.alloc(0), reason: `time helper failed (${this.spawnError?.message ?? `exit ${code}`})` }];
    }
    const raw = Buffer.concat(this.out);
    const fails: { path: Buffer; reason: string }[] = [];
    let pos = 0;
    while (pos < raw.length) {
      const a = raw.indexOf(0, pos);
      const b = a < 0 ? -1 : raw.indexOf(0, a + 1);
      if (b < 0) break;
      fails.push({ reason: raw.toString('utf8', pos, a), path: raw.subarray(a + 1, b) });
      pos = b + 1;
    }
    return fails;
  }

  kill(): void {
    this.child.kill();
  }
}

class NodeTimeSetter implements TimeSetter {
  readonly exact = false;
  private readonly fails: { path: Buffer; reason: string }[] = [];

  set(path: Buffer, mtimeNs: bigint): void {
    const { sec, nsec } = split(mtimeNs);
    // libuv truncates to whole microseconds; aim at the middle of the microsecond.
    const t = Number(sec) + (Number(nsec / 1000n) + 0.5) / 1e6;
    try {
      lutimesSync(path, t, t);
    } catch (err) {
      this.fails.push({ path, reason: (err as Error).message });
    }
  }

  flush(): void {}

  async finish(): Promise<{ path: Buffer; reason: string }[]> {
    return this.fails;
  }

  kill(): void {}
}

export function createTimeSetter(): TimeSetter {
  return perlAvailable() ? new PerlTimeSetter() : new NodeTimeSetter();
}
