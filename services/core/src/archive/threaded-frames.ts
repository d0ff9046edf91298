/**
 * The main thread's side of the frame reader job (frame-reader-job.ts): starts the job on the store
 * thread, takes the frames it hands over, in order, and gives frame buffers back to it. Every buffer that
 * arrives here leaves again by transfer (to a codec worker, then back to the reader), so none
 * stays behind as garbage in this thread's heap.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { CairnError } from '../errors.ts';
import type { StoreRequestError } from './archive-types.ts';
import { AsyncQueue } from './async-queue.ts';
import type { Frame } from './block-source.ts';
import type { FrameReaderAck, FrameReaderJobData, FrameReaderMessage } from './frame-reader-job.ts';
import { nativeAddonPath } from './native-reads.ts';
import type { SharedSlab } from './shared-slab.ts';
import { deserializeError } from './worker-errors.ts';
import type { WorkerHost } from './worker-host.ts';

/** The job's data but its port and slab, where its store's failed requests are reported, and the slab to cut frames into. */
export type ThreadedReadsOptions = Omit<FrameReaderJobData, 'port' | 'slab'> & { onRequestError?: (e: StoreRequestError) => void; frameSlab?: SharedSlab };

/** What the job sends but its failed store requests (reported as they come, not queued). */
type QueuedMessage = Exclude<FrameReaderMessage, { t: 'store-error' }>;

export class ThreadedFrames {
  private readonly queue = new AsyncQueue<QueuedMessage>();
  private closed = false;
  /** The whole archive's sha256, once the last frame was taken (when hashWhole). */
  sha256: string | undefined;

  private constructor(
    private readonly host: WorkerHost,
    private readonly port: MessagePort,
    onRequestError: ((e: StoreRequestError) => void) | undefined,
    private readonly slab: SharedSlab | undefined,
  ) {
    port.on('message', (m: FrameReaderMessage) => {
      if (m.t === 'store-error') onRequestError?.(m.error);
      else this.queue.push(m);
    });
  }

  static async start(host: WorkerHost, { onRequestError, frameSlab, ...job }: ThreadedReadsOptions): Promise<ThreadedFrames> {
    const w = await host.acquireStoreThread();
    const { port1, port2 } = new MessageChannel();
    const reads = new ThreadedFrames(host, port1, onRequestError, frameSlab);
    const slab = frameSlab ? { slab: { sab: frameSlab.sab, slotSize: frameSlab.slotSize, native: nativeAddonPath() } } : {};
    const data: FrameReaderJobData = { ...job, port: port2, ...slab };
    // The job ends by message ('end' or 'error'); a thread that dies ends it here.
    w.request('read-frames', { data }, [port2]).catch((err: unknown) => reads.queue.fail(err));
    return reads;
  }

  /** The frames, in order; the job stops when they end or the consumer stops. */
  async *frames(): AsyncGenerator<Frame> {
    try {
      for (;;) {
        const r = await this.queue.next();
        if (r.done) throw new CairnError('internal', 'the frame reader stopped before the last frame');
        const m = r.value;
        if (m.t === 'error') throw deserializeError(m.error);
        if (m.t === 'end') {
          this.sha256 = m.sha256;
          return;
        }
        this.ack({ taken: 1 });
        yield { block: m.block, data: m.buf ? Buffer.from(m.buf, 0, m.length) : this.slab!.view(m.at!, m.length) };
      }
    } finally {
      this.destroy();
    }
  }

  /** A frame's buffer, done with: back to the store thread for its next frame. */
  readonly giveBack = (buf: ArrayBuffer): void => {
    if (!this.closed) this.ack({ taken: 0, spare: buf });
  };

  /** The same for a frame in the frame slab: its slot. */
  readonly giveBackSlot = (at: number): void => {
    if (!this.closed) this.ack({ taken: 0, spareAt: at });
  };

  /** Stops the job (idempotent: its port closed, reads in flight aborted); a consumer waiting for a frame gets `err`. */
  destroy(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.fail(err ?? new CairnError('cancelled', 'frame reads stopped'));
    this.port.close();
    this.host.releaseStoreThread();
  }

  private ack(m: FrameReaderAck): void {
    this.port.postMessage(m, m.spare ? [m.spare] : []);
  }
}
