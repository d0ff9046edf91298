import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { cancelChannel, type CancelMessage, type Logger } from '@cairn/core';

/** How long a cancel that found no running processor is remembered (it may be about to start). */
export const EARLY_CANCEL_TTL_MS = 60_000;
const EARLY_CANCEL_MAX = 10_000;

export interface CancelListener {
  /**
   * The reason of a cancel that arrived for `jobId` before its processor was registered (BullMQ
   * had already made the job active, so the gateway signalled instead of removing it). Consumed.
   */
  takeEarly(jobId: string): string | undefined;
  close(): Promise<void>;
}

/** Cancels remembered by job id for a short while; bounded in size and age. */
export class EarlyCancels {
  private readonly entries = new Map<string, { reason: string; at: number }>();

  constructor(
    private readonly ttlMs = EARLY_CANCEL_TTL_MS,
    private readonly max = EARLY_CANCEL_MAX,
    private readonly now: () => number = Date.now,
  ) {}

  remember(jobId: string, reason: string): void {
    const now = this.now();
    this.entries.delete(jobId);
    this.entries.set(jobId, { reason, at: now });
    // Oldest first (insertion order): drop the expired and anything past the cap.
    for (const [id, e] of this.entries) {
      if (this.entries.size <= this.max && now - e.at <= this.ttlMs) break;
      this.entries.delete(id);
    }
  }

  take(jobId: string): string | undefined {
    const e = this.entries.get(jobId);
    if (!e) return undefined;
    this.entries.delete(jobId);
    return this.now() - e.at <= this.ttlMs ? e.reason : undefined;
  }

  get size(): number {
    return this.entries.size;
  }
}

/**
 * Cancellation that crosses processes (SPEC §4): the gateway publishes on a Redis channel, every
 * worker listens, and the one holding the job aborts its processor's AbortSignal. A cancel that
 * arrives while the job is active in Redis but before its processor is registered is remembered,
 * and the processor checks for it when it starts.
 */
export async function listenForCancels(sub: Redis, prefix: string, workers: Worker[], logger: Logger): Promise<CancelListener> {
  const early = new EarlyCancels();
  sub.on('message', (_channel, raw: string) => {
    let msg: CancelMessage;
    try {
      msg = JSON.parse(raw) as CancelMessage;
    } catch {
      return;
    }
    if (typeof msg?.jobId !== 'string' || !msg.jobId) return;
    const reason = typeof msg.reason === 'string' ? msg.reason : 'cancelled';
    let found = false;
    for (const worker of workers) {
      if (worker.cancelJob(msg.jobId, reason)) {
        found = true;
        logger.info({ jobId: msg.jobId, reason }, 'cancelling job');
      }
    }
    if (!found) early.remember(msg.jobId, reason);
  });
  try {
    await sub.subscribe(cancelChannel(prefix));
  } catch (err) {
    sub.disconnect();
    throw err;
  }
  return {
    takeEarly: (jobId) => early.take(jobId),
    async close() {
      await sub.quit().catch(() => sub.disconnect());
    },
  };
}
