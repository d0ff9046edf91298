import { PassThrough } from 'node:stream';
import type { Context } from 'koa';

export interface ServerSentEvent {
  event: string;
  data: unknown;
  /** `data` already serialized (one serialization shared by many streams). */
  json?: string;
}

/**
 * Answers with a Server-Sent Events stream fed by `events`. The first event is awaited before
 * any header is sent, so a failing lookup (404, 401...) still gets a normal JSON error. The
 * stream ends with an `end` event when `events` is exhausted, or an `error` event if it fails;
 * a comment line every `keepAliveMs` keeps proxies from closing an idle stream. `abort` fires
 * when the client goes away, which must stop the producer.
 */
export async function sendEventStream(ctx: Context, events: AsyncIterator<ServerSentEvent>, abort: AbortController, keepAliveMs = 15_000): Promise<void> {
  ctx.res.once('close', () => abort.abort());
  const first = await events.next();

  const stream = new PassThrough();
  let id = 0;
  const write = (chunk: string) => {
    if (!stream.destroyed && !stream.writableEnded) stream.write(chunk);
  };
  const send = (e: ServerSentEvent) => write(`id: ${++id}\nevent: ${e.event}\ndata: ${e.json ?? JSON.stringify(e.data)}\n\n`);
  const keepAlive = setInterval(() => write(': keep-alive\n\n'), keepAliveMs);
  keepAlive.unref();

  ctx.req.socket.setTimeout(0);
  ctx.req.socket.setNoDelay(true);
  ctx.status = 200;
  ctx.type = 'text/event-stream';
  ctx.set('Cache-Control', 'no-cache, no-transform');
  ctx.set('X-Accel-Buffering', 'no');
  ctx.body = stream;
  write('retry: 2000\n\n');

  void (async () => {
    let last: ServerSentEvent | undefined;
    try {
      if (!first.done) {
        send(first.value);
        last = first.value;
        for (let next = await events.next(); !next.done; next = await events.next()) {
          send(next.value);
          last = next.value;
        }
      }
      if (!abort.signal.aborted) send({ event: 'end', data: last?.data ?? null, ...(last?.json !== undefined ? { json: last.json } : {}) });
    } catch (err) {
      send({ event: 'error', data: { error: { code: 'unavailable', message: `event stream stopped: ${(err as Error).message}` } } });
    } finally {
      clearInterval(keepAlive);
      stream.end();
      await events.return?.();
    }
  })();
}
