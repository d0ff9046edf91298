import type { Redis } from 'ioredis';
import { jobChangesChannel, parseJobChange, publishJobChange, type JobChangeNotice, type Logger } from '@cairn/core';

/** Job change notices as the gateway sees them: from every process, and its own (cancels) to every gateway. */
export interface JobChangeFeed {
  /** Calls `listener` with each notice published by any process, this one included. */
  subscribe(listener: (notice: JobChangeNotice) => void): void;
  /** Best effort; never throws. */
  publish(notice: JobChangeNotice): Promise<void>;
  /** Stops listening (the subscribed connection is closed). */
  close(): void;
}

/**
 * The feed over Redis pub/sub: `sub` is a connection of its own (a subscribed connection can do
 * nothing else), subscribed in the background so a gateway starts while Redis is down; ioredis
 * subscribes again after a reconnect.
 */
export function redisJobChangeFeed(sub: Redis, pub: Redis, prefix: string, logger: Logger): JobChangeFeed {
  const channel = jobChangesChannel(prefix);
  const listeners: Array<(notice: JobChangeNotice) => void> = [];
  sub.on('message', (from: string, raw: string) => {
    if (from !== channel) return;
    const notice = parseJobChange(raw);
    if (notice) for (const listener of listeners) listener(notice);
  });
  sub.subscribe(channel).catch((err: Error) => logger.warn({ err: err.message }, 'could not subscribe to job change notices; progress streams poll'));
  return {
    subscribe: (listener) => void listeners.push(listener),
    publish: (notice) => publishJobChange(pub, prefix, notice),
    close() {
      listeners.length = 0;
      sub.disconnect();
    },
  };
}
