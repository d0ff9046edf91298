/**
 * Encryption at rest (issue 14) in `npm run bench`: the same pack (zstd, to a null sink) with and
 * without every frame sealed (AES-256-GCM), alternating, same data, same run. Target: encrypted
 * throughput at least 0.9 of unencrypted. Scenario names: `large-encrypted`, `small-encrypted`.
 */
import { randomBytes } from 'node:crypto';
import { packArchive } from '../services/core/src/archive/index.ts';
import type { DataSet } from './datasets.ts';
import { loadAverage, measureAsync, median, nullSink, warm, type Sample } from './measure.ts';

export interface EncryptionResult {
  name: string;
  set: DataSet;
  plain: Sample[];
  sealed: Sample[];
}

async function pack(set: DataSet, seal: boolean): Promise<Sample> {
  const key = randomBytes(32);
  return measureAsync(async () => {
    const r = await packArchive({ volumes: [{ name: 'data', dir: set.dir }], codec: 'zstd', ...(seal ? { seal: { key, object: 'bench' } } : {}) }, nullSink());
    r.close();
  });
}

export async function runEncryption(o: { large: DataSet; small: DataSet; reps: number; only?: string[] }): Promise<EncryptionResult[]> {
  const out: EncryptionResult[] = [];
  for (const [name, set] of [
    ['large-encrypted', o.large],
    ['small-encrypted', o.small],
  ] as const) {
    if (o.only && !o.only.includes(name)) continue;
    const res: EncryptionResult = { name, set, plain: [], sealed: [] };
    for (let i = 0; i < o.reps; i++) {
      // Alternating, the order swapped every repetition; the data read right before each run.
      for (const seal of i % 2 ? [true, false] : [false, true]) {
        warm(set.dir);
        (seal ? res.sealed : res.plain).push(await pack(set, seal));
      }
      console.log(
        `  ${name} #${i + 1}: plain ${res.plain.at(-1)!.seconds.toFixed(2)} s, encrypted ${res.sealed.at(-1)!.seconds.toFixed(2)} s, load ${loadAverage()}`,
      );
    }
    out.push(res);
  }
  return out;
}

export function reportEncryption(results: EncryptionResult[]): void {
  console.log('scenario          plain s  encrypted s  throughput ratio (plain s / encrypted s)  target');
  for (const r of results) {
    const plain = median(r.plain.map((s) => s.seconds));
    const sealed = median(r.sealed.map((s) => s.seconds));
    const ratio = plain / sealed;
    const runs = r.plain.map((p, i) => (p.seconds / r.sealed[i]!.seconds).toFixed(2)).join(', ');
    console.log(
      `${r.name.padEnd(17)} ${plain.toFixed(2).padStart(7)}  ${sealed.toFixed(2).padStart(11)}  ${ratio.toFixed(2)} (runs ${runs})`.padEnd(83) +
        ` >= 0.9 ${ratio >= 0.9 ? 'met' : 'NOT met'}`,
    );
  }
}
