/**
 * Restoring mtimes: exact to the nanosecond through the native helper (files, directories,
 * symlinks themselves), to the microsecond through Node when the helper is not there; and a
 * whole restore on each path.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unpackArchive } from '@cairn/core/archive/index.ts';
import { loadNativeReads, nativeAddonPath } from '@cairn/core/archive/native-reads.ts';
import { createTimeSetter, type TimeSetter } from '@cairn/core/archive/time-setter.ts';
import { packToFile } from './helpers/archive.ts';
import { setTime } from './helpers/tree.ts';

let work: string;

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-times-'));
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const mtimeNs = (p: string): bigint => fs.lstatSync(p, { bigint: true }).mtimeNs;
const atimeNs = (p: string): bigint => fs.lstatSync(p, { bigint: true }).atimeNs;
/** Within the microsecond (libuv cuts times to microseconds, towards zero before 1970). */
const nearUs = (a: bigint, b: bigint): boolean => (a > b ? a - b : b - a) < 1000n;

/** A file, a directory and a symlink (to the file) in a fresh directory. */
function targets(name: string): { file: string; dir: string; link: string } {
  const base = path.join(work, name);
  fs.mkdirSync(path.join(base, 'dir'), { recursive: true });
  fs.writeFileSync(path.join(base, 'file'), 'content');
  fs.symlinkSync('file', path.join(base, 'link'));
  return { file: path.join(base, 'file'), dir: path.join(base, 'dir'), link: path.join(base, 'link') };
}

// Nanoseconds that a double of seconds cannot carry, before 1970, and past 2038 and 2262.
const TIMES = [1_700_000_000_123_456_789n, -1_500_000_001n, 2_200_000_000_999_999_999n, 10_413_792_000_000_000_001n];

describe('native time setter', () => {
  const native = loadNativeReads(nativeAddonPath());

  it('is available where the helper is built', () => {
    expect(native, 'services/core/native was not built by npm install (see scripts/build-native.mjs)').toBeDefined();
    expect(createTimeSetter(native).exact).toBe(true);
  });

  it.each(TIMES)('sets %s ns exactly on a file, a directory and a symlink itself', (ns) => {
    const t = targets(`native-${ns}`);
    setTime(t.file, 1_000_000_000n, 5);
    const fileAtime = atimeNs(t.file);
    const times = createTimeSetter(native);
    times.set(Buffer.from(t.link), ns);
    // The link's own time changed; its target's did not.
    expect(mtimeNs(t.link)).toBe(ns);
    expect(mtimeNs(t.file)).toBe(1_000_000_000_000_000_005n);
    times.set(Buffer.from(t.file), ns);
    times.set(Buffer.from(t.dir), ns);
    expect([mtimeNs(t.file), mtimeNs(t.dir)]).toEqual([ns, ns]);
    // The access time is left alone.
    expect(atimeNs(t.file)).toBe(fileAtime);
    expect(times.failures).toEqual([]);
  });

  it('reports paths it could not set, and refuses a path with a NUL inside', () => {
    const t = targets('native-fail');
    const times = createTimeSetter(native);
    times.set(Buffer.from(path.join(work, 'missing')), 1n);
    times.set(Buffer.from(`${t.file}\0x`), 1n);
    expect(times.failures.map((f) => [f.path.toString(), f.reason])).toEqual([
      [path.join(work, 'missing'), 'ENOENT'],
      [`${t.file}\0x`, 'EINVAL'],
    ]);
    expect(mtimeNs(t.file)).not.toBe(1n);
  });

  it('checks its arguments', () => {
    const p = Buffer.from(`${targets('native-args').file}\0`);
    expect(() => native!.setTime(p, 1, 1e9)).toThrow(/time out of range/);
    expect(() => native!.setTime(p, 1.5, 0)).toThrow(/time out of range/);
    expect(() => native!.setTime(p, 1, -1)).toThrow(/time out of range/);
    expect(() => native!.setTime(Buffer.from('no-nul'), 1, 0)).toThrow(/must end with NUL/);
    expect(native!.setTime(p, 1, 2)).toBe(0);
    expect(mtimeNs(p.subarray(0, -1).toString())).toBe(1_000_000_002n);
  });
});

describe('plain-Node time setter (no helper)', () => {
  it.each(TIMES.slice(0, 3))('sets %s ns to the microsecond on a file, a directory and a symlink itself', (ns) => {
    const t = targets(`node-${ns}`);
    setTime(t.file, 1_000_000_000n, 5);
    const times: TimeSetter = createTimeSetter(undefined);
    expect(times.exact).toBe(false);
    for (const p of [t.link, t.dir]) times.set(Buffer.from(p), ns);
    expect(mtimeNs(t.file)).toBe(1_000_000_000_000_000_005n);
    times.set(Buffer.from(t.file), ns);
    for (const p of [t.file, t.dir, t.link]) expect(nearUs(mtimeNs(p), ns), `${p}: ${mtimeNs(p)} vs ${ns}`).toBe(true);
    expect(times.failures).toEqual([]);
  });

  it('reports paths it could not set', () => {
    const times = createTimeSetter(undefined);
    times.set(Buffer.from(path.join(work, 'missing')), 1n);
    expect(times.failures.map((f) => [f.path.toString(), f.reason])).toEqual([[path.join(work, 'missing'), 'ENOENT']]);
  });
});

describe.each([
  ['native', '1'],
  ['plain-node', '0'],
])('restored mtimes, %s', (label, flag) => {
  const before = process.env.CAIRN_NATIVE_READS;
  beforeAll(() => {
    process.env.CAIRN_NATIVE_READS = flag;
  });
  afterAll(() => {
    if (before === undefined) delete process.env.CAIRN_NATIVE_READS;
    else process.env.CAIRN_NATIVE_READS = before;
  });

  it(flag === '1' ? 'are exact' : 'are right to the microsecond, with a warning saying so', async () => {
    const src = path.join(work, `src-${label}`);
    const t = { file: path.join(src, 'sub', 'file'), dir: path.join(src, 'sub'), link: path.join(src, 'sub', 'link') };
    fs.mkdirSync(t.dir, { recursive: true });
    fs.writeFileSync(t.file, 'x');
    fs.symlinkSync('file', t.link);
    setTime(t.file, 1_700_000_000n, 123_456_789);
    setTime(t.link, -2n, 999_999_999);
    setTime(t.dir, 1_600_000_000n, 1);
    const archive = path.join(work, `times-${label}.tar.zst`);
    const packed = await packToFile({ volumes: [{ name: 'v', dir: src }] }, archive);
    const index = packed.index;
    packed.close();
    const out = path.join(work, `out-${label}`);
    const r = await unpackArchive({ target: out, index, source: { stream: fs.createReadStream(archive) } });
    const got = (p: string): bigint => mtimeNs(path.join(out, 'v', path.relative(src, p)));
    const want = [mtimeNs(t.file), mtimeNs(t.link), mtimeNs(t.dir)];
    if (flag === '1') {
      expect([got(t.file), got(t.link), got(t.dir)]).toEqual(want);
      expect(r.warnings).toEqual([]);
    } else {
      expect([got(t.file), got(t.link), got(t.dir)].map((g, i) => nearUs(g, want[i]!))).toEqual([true, true, true]);
      expect(r.warnings.map((w) => w.code)).toEqual(['time-precision']);
    }
  });
});
