import type { Context } from 'koa';
import { CairnError } from '@cairn/core';

/**
 * Reads a JSON request body of at most `limit` bytes. No body (or an empty one) gives
 * undefined. Past the limit the read stops at once (413); Node discards the rest of the upload
 * after the response, so a client is never left hanging mid-send.
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

  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks, size).toString('utf8');
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
