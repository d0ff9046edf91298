import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Job } from './api-responses.ts';

/** An error answered by the API, carrying its code and message (SPEC §11 error body). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/** A mistake in how `cairn` was called (or configured): exit code 2, with the usage. */
export class UsageError extends Error {}

/** How to point the CLI elsewhere; said in --help and whenever the gateway cannot be reached. */
export const URL_HINT = 'point cairn at another gateway with --url URL, the CAIRN_URL variable, or cairn login --url URL --token T';

/** An event of a job's stream: `state`, `progress` and `end` carry the job (an `error` event is thrown, as an ApiError). */
export interface JobEvent {
  event: string;
  data: Job;
}

/** A thin client of the `/v1` API: JSON in and out, errors as ApiError, SSE as an async iterator. */
export class CairnClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | null,
  ) {}

  private async fetch(method: string, route: string, body?: unknown, accept = 'application/json'): Promise<Response> {
    if (!this.token) {
      throw new UsageError(
        'no token: pass --token, set CAIRN_TOKEN, run cairn login --url URL --token T, or run from the all-in-one directory (.cairn/admin-token)',
      );
    }
    let res: Response;
    try {
      res = await fetch(new URL(route, this.baseUrl), {
        method,
        headers: { authorization: `Bearer ${this.token}`, accept, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
    } catch (err) {
      const cause = (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message;
      throw new ApiError(0, 'unreachable', `cannot reach Cairn at ${this.baseUrl}: ${cause}\n${URL_HINT}`);
    }
    if (!res.ok) {
      const text = await res.text();
      let parsed: { error?: { code?: string; message?: string; details?: unknown } } = {};
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON */
      }
      throw new ApiError(res.status, parsed.error?.code ?? String(res.status), parsed.error?.message ?? (text || res.statusText), parsed.error?.details);
    }
    return res;
  }

  async request<T = unknown>(method: string, route: string, body?: unknown): Promise<T> {
    const res = await this.fetch(method, route, body);
    const text = await res.text();
    return (text ? JSON.parse(text) : null) as T;
  }

  /** A binary response (downloads) as a Node stream. */
  async download(route: string): Promise<{ stream: Readable; filename?: string }> {
    const res = await this.fetch('GET', route, undefined, '*/*');
    const disposition = res.headers.get('content-disposition') ?? '';
    const filename = /filename="?([^";]+)"?/.exec(disposition)?.[1];
    return { stream: Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>), filename };
  }

  /** The job's Server-Sent Events (`state`, `progress`, `end`) until the stream ends. */
  async *jobEvents(jobId: string, signal?: AbortSignal): AsyncGenerator<JobEvent> {
    const res = await this.fetch('GET', `/v1/jobs/${encodeURIComponent(jobId)}/events`, undefined, 'text/event-stream');
    const decoder = new TextDecoder();
    let buffered = '';
    for await (const chunk of Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>, { signal })) {
      buffered += decoder.decode(chunk as Uint8Array, { stream: true });
      let split: number;
      while ((split = buffered.indexOf('\n\n')) >= 0) {
        const block = buffered.slice(0, split);
        buffered = buffered.slice(split + 2);
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
        }
        if (!data.length) continue;
        const parsed = JSON.parse(data.join('\n'));
        // The stream failed on the gateway (SPEC §11 error body); the job itself goes on.
        if (event === 'error') {
          const e = (parsed as { error?: { code?: string; message?: string } }).error;
          throw new ApiError(503, e?.code ?? 'unavailable', `${e?.message ?? 'the event stream failed'}; job ${jobId} goes on: cairn jobs show ${jobId}`);
        }
        yield { event, data: parsed as Job };
      }
    }
  }
}
