import http from 'node:http';
import type net from 'node:net';
import { Transform, pipeline } from 'node:stream';

/** What a fault rule sees of a request. */
export interface ProxiedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
}

export type RequestMatch = (req: ProxiedRequest) => boolean;

/** A part of a multipart upload (what a backup's archive is sent in). */
export const isPartUpload: RequestMatch = (r) => r.method === 'PUT' && r.query.has('partNumber');

/**
 * An HTTP proxy in front of an S3-compatible server that breaks chosen requests (issue 16): it
 * stalls them (the request body is no longer read and no answer ever comes: a transfer that hangs
 * forever), resets their connection after some bytes of the body, or slows every request body
 * down. Everything else passes through unchanged.
 */
export interface S3FaultProxy {
  endpoint: string;
  /** The next `times` matching requests stall forever (until the client gives up). */
  stall(match: RequestMatch, times?: number): void;
  /** The next `times` matching requests have their connection reset once `afterBytes` of their body went through. */
  reset(match: RequestMatch, afterBytes: number, times?: number): void;
  /** Request bodies (uploads), all together, at most this many bytes per second; null: full speed. */
  throttle(bytesPerSecond: number | null): void;
  /** How many requests were stalled and reset so far. */
  readonly faults: { stalled: number; reset: number };
  close(): Promise<void>;
}

type Rule = { kind: 'stall' | 'reset'; match: RequestMatch; left: number; afterBytes: number };

export async function startS3FaultProxy(upstream: string): Promise<S3FaultProxy> {
  const target = new URL(upstream);
  const rules: Rule[] = [];
  const faults = { stalled: 0, reset: 0 };
  const sockets = new Set<net.Socket>();
  let rate: number | null = null;
  // One budget for every body: the next moment the throttle lets bytes through.
  let nextFree = 0;

  const take = (req: ProxiedRequest, kind: Rule['kind']): Rule | null => {
    const rule = rules.find((r) => r.kind === kind && r.left > 0 && r.match(req));
    if (rule) rule.left--;
    return rule ?? null;
  };

  const throttled = () =>
    new Transform({
      transform(chunk: Buffer, _enc, callback) {
        if (rate === null) return callback(null, chunk);
        const now = Date.now();
        const start = Math.max(now, nextFree);
        nextFree = start + (chunk.length / rate) * 1000;
        setTimeout(() => callback(null, chunk), start - now);
      },
    });

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const info: ProxiedRequest = { method: req.method ?? 'GET', path: url.pathname, query: url.searchParams };
    if (take(info, 'stall')) {
      faults.stalled++;
      // Read nothing more and answer nothing: the client's own timeouts must end it.
      req.pause();
      return;
    }
    const reset = take(info, 'reset');
    const headers = { ...req.headers, host: target.host };
    delete headers.expect; // the body is sent at once; the upstream's 100-continue is not relayed
    const out = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (upstreamRes) => {
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
      pipeline(upstreamRes, res, () => undefined);
    });
    out.on('error', () => res.destroy());
    let sent = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, callback) {
        sent += chunk.length;
        if (reset && sent >= reset.afterBytes) {
          faults.reset++;
          // As a network failure does: the client's connection dies mid-body.
          req.socket.resetAndDestroy();
          out.destroy();
          return callback();
        }
        callback(null, chunk);
      },
    });
    pipeline(req, counter, throttled(), out, () => undefined);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    faults,
    stall(match, times = 1) {
      rules.push({ kind: 'stall', match, left: times, afterBytes: 0 });
    },
    reset(match, afterBytes, times = 1) {
      rules.push({ kind: 'reset', match, left: times, afterBytes });
    },
    throttle(bytesPerSecond) {
      rate = bytesPerSecond;
      nextFree = 0;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
