import { HOOK_DELIVERY_HEADER, HOOK_EVENT_HEADER, HOOK_SIGNATURE_HEADER, signHookBody, type HookEvent } from '@cairn/core/domain/hooks.ts';
import type { HookRunResult } from './command-hook.ts';
import { OutputTail } from './output-tail.ts';

export interface WebhookRunOptions {
  url: string;
  event: HookEvent;
  /** The instance's hook secret; null: the event goes unsigned (an instance whose secret was never made). */
  secret: string | null;
  timeoutMs: number;
  /** Aborting it (the job was cancelled) stops the request. */
  signal?: AbortSignal;
}

/** Response bytes read at most (the tail of them is recorded). */
const MAX_RESPONSE_BYTES = 64 * 1024;

/**
 * POSTs a hook event as JSON, signed with HMAC-SHA256 of the exact body under the instance's
 * secret (`X-Cairn-Signature: sha256=<hex>`). A 2xx answer is success; any other status (redirects
 * are not followed), a network error or the timeout is a failure. Never rejects.
 */
export async function runWebhookHook(opts: WebhookRunOptions): Promise<HookRunResult> {
  const started = Date.now();
  const body = JSON.stringify(opts.event);
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': 'cairn-hooks/1',
    [HOOK_EVENT_HEADER]: opts.event.type,
    [HOOK_DELIVERY_HEADER]: opts.event.id,
  };
  if (opts.secret) headers[HOOK_SIGNATURE_HEADER] = signHookBody(opts.secret, body);
  const tail = new OutputTail();
  const ended = (r: Omit<HookRunResult, 'durationMs' | 'outputTail' | 'exitCode' | 'signal'>): HookRunResult => ({
    ...r,
    exitCode: null,
    signal: null,
    outputTail: tail.text(),
    durationMs: Date.now() - started,
  });
  let status: number | null = null;
  try {
    const res = await fetch(opts.url, { method: 'POST', body, headers, redirect: 'manual', signal });
    status = res.status;
    if (res.body) {
      let read = 0;
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        tail.push(Buffer.from(chunk));
        read += chunk.length;
        if (read >= MAX_RESPONSE_BYTES) break;
      }
    }
    if (status >= 200 && status < 300) return ended({ status: 'succeeded', httpStatus: status, error: null });
    return ended({ status: 'failed', httpStatus: status, error: `HTTP ${status}` });
  } catch (err) {
    if (timeout.aborted) return ended({ status: 'timeout', httpStatus: status, error: `no answer within ${Math.round(opts.timeoutMs / 1000)} s` });
    if (opts.signal?.aborted) return ended({ status: 'cancelled', httpStatus: status, error: 'cancelled' });
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return ended({ status: 'failed', httpStatus: status, error: `request failed: ${cause?.code ?? cause?.message ?? (err as Error).message}` });
  }
}
