/**
 * The extract job, run in a worker thread: receives decompressed tar blocks over a port, writes
 * them through the Extractor, and acknowledges each block (the main thread's backpressure).
 */
import type { MessagePort } from 'node:worker_threads';
import type { ArchiveWarning } from './archive-types.ts';
import { Extractor, type PlanItem } from './extractor.ts';
import { loadNativeReads } from './native-reads.ts';
import { createTimeSetter } from './time-setter.ts';

export interface ExtractJobData {
  roots: Record<string, string>;
  strict: boolean;
  knownVolumes: string[];
  restoreOwnership: boolean;
  /** Absolute path of the native helper (native-reads.ts), when it is built and enabled: exact mtimes, small files in one call. */
  native: string | undefined;
  port: MessagePort;
}

export type ExtractMessage =
  | { t: 'run'; start: number; limit: number }
  /** `plan`: the entries whose headers start in this block (sent with it, so memory stays flat). */
  /** `digests`: [header offset, sha256] of the files hashed ahead whose last byte is in this block. */
  | { t: 'block'; buf: ArrayBuffer; offset: number; length: number; at: number; plan: PlanItem[]; digests?: [number, string][] }
  | { t: 'end' };

export interface ExtractAck {
  t: 'ack';
  filesWritten: number;
  bytesWritten: number;
  /** The block's buffer, handed back for reuse. */
  buf: ArrayBuffer;
}

export interface ExtractJobResult {
  filesWritten: number;
  bytesWritten: number;
  warnings: ArchiveWarning[];
}

export function runExtractJob(d: ExtractJobData): Promise<ExtractJobResult> {
  return new Promise((resolve, reject) => {
    let ex: Extractor;
    try {
      const native = loadNativeReads(d.native);
      ex = new Extractor({
        roots: d.roots,
        strict: d.strict,
        knownVolumes: new Set(d.knownVolumes),
        restoreOwnership: d.restoreOwnership,
        times: createTimeSetter(native),
        native,
      });
    } catch (err) {
      d.port.close();
      reject(err);
      return;
    }
    let stopped = false;
    const stop = (err: unknown): void => {
      stopped = true;
      d.port.close();
      ex.abort();
      reject(err);
    };
    d.port.on('message', (m: ExtractMessage) => {
      if (stopped) return;
      try {
        if (m.t === 'run') {
          ex.startRun(m.start, m.limit);
        } else if (m.t === 'block') {
          ex.addPlan(m.plan);
          if (m.digests) ex.addDigests(m.digests);
          ex.push(Buffer.from(m.buf, m.offset, m.length), m.at);
          d.port.postMessage({ t: 'ack', ...ex.stats, buf: m.buf } satisfies ExtractAck, [m.buf]);
        } else {
          stopped = true;
          d.port.close();
          resolve(ex.finish());
        }
      } catch (err) {
        stop(err);
      }
    });
  });
}
