import type { Context } from 'koa';
import { CairnError } from '@cairn/core';

/**
 * Reads a JSON request body of at most `limit` bytes. No body (or an empty one) gives
 * undefined. A declared length over the limit is refused without reading (Node then discards
 * the upload itself); a chunked body is read until it passes the limit, and the rest is drained
 * rather than destroyed, so the client receives the 413 instead of a connection reset.
 */
export async function readJsonBody(ctx: Context, limit: number): Promise<unknown> {
  const req = ctx.req;
  const declared = ctx.request.length;
  const chunked = req.headers['transfer-encoding'] !== undefined;
  if (!chunked && !declared) return undefined;
  if (!ctx.request.is('application/json', 'application/*+json')) {
    throw new CairnError('validation', `request body must be JSON: send Content-Type: application/json (got ${ctx.get('content-type') || 'none'})`);
  }
  if (declared !== undefined && declared > limit) throw tooLarge(limit);

  const raw = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        done();
        req.resume(); // drain and discard what is still coming
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      done();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      done();
      reject(new CairnError('validation', `could not read the request body: ${err.message}`));
    };
    const done = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });

  const text = raw.toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new CairnError('validation', `malformed JSON body: ${(err as Error).message}`);
  }
}

function tooLarge(limit: number): CairnError {
  return new CairnError('payload-too-large', `request body is larger than ${limit} bytes`, { details: { limitBytes: limit } });
}
