import type { Worker } from 'bullmq';
import { cancelChannel, createRedis, type CancelMessage, type Logger } from '@cairn/core';

/**
 * Cancellation that crosses processes (SPEC §4): the gateway publishes on a Redis channel, every
 * worker listens, and the one holding the job aborts its processor's AbortSignal.
 */
export async function listenForCancels(redisUrl: string, prefix: string, workers: Worker[], logger: Logger): Promise<() => Promise<void>> {
  const sub = createRedis(redisUrl, { maxRetriesPerRequest: null });
  await sub.subscribe(cancelChannel(prefix));
  sub.on('message', (_channel, raw: string) => {
    let msg: CancelMessage;
    try {
      msg = JSON.parse(raw) as CancelMessage;
    } catch {
      return;
    }
    for (const worker of workers) {
      if (worker.cancelJob(msg.jobId, msg.reason)) logger.info({ jobId: msg.jobId, reason: msg.reason }, 'cancelling job');
    }
  });
  return async () => {
    await sub.quit().catch(() => sub.disconnect());
  };
}
