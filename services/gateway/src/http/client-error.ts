import type { Duplex } from 'node:stream';

/** Request headers (request line included) larger than this are answered 431; Node's own default. */
export const MAX_HEADER_BYTES = 16 * 1024;

/**
 * Node answers a request it cannot parse (headers too large, malformed HTTP, a request timeout)
 * itself, with an empty body, before Koa sees it. This answers it in the API's error shape
 * instead: `{"error": {"code", "message"}}`, then closes the connection (the stream cannot be
 * trusted past the bad request).
 */
export function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, reason, code, message] = describe(err.code);
  const body = JSON.stringify({ error: { code, message } });
  const head = [
    `HTTP/1.1 ${status} ${reason}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
  ];
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
}

function describe(code: string | undefined): [number, string, string, string] {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'Request Header Fields Too Large', 'headers-too-large', `request headers are larger than ${MAX_HEADER_BYTES} bytes`];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'Request Timeout', 'timeout', 'the request was not received in time'];
    default:
      return [400, 'Bad Request', 'validation', 'malformed HTTP request'];
  }
}
