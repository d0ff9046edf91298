import type { ApiErrorBody, Job } from './types.ts';

/** The token lives in this tab's session only: sessionStorage, never localStorage or a cookie. */
const TOKEN_KEY = 'cairn.token';

export const session = {
  get token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  signIn(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  signOut(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** An error as the API states it (`{error: {code, message, details?}}`), or a transport failure. */
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

function authHeaders(token = session.token): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

async function failure(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as ApiErrorBody;
    if (body?.error?.code) return new ApiError(res.status, body.error.code, body.error.message, body.error.details);
  } catch {
    /* not JSON */
  }
  return new ApiError(res.status, `http-${res.status}`, text.trim() || res.statusText || `HTTP ${res.status}`);
}

async function send(method: string, path: string, body?: unknown, token?: string): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: { ...authHeaders(token), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch (err) {
    throw new ApiError(0, 'network', `cannot reach the gateway: ${(err as Error).message}`);
  }
  if (res.status === 401 && token === undefined) window.dispatchEvent(new CustomEvent('cairn:unauthorized'));
  if (!res.ok) throw await failure(res);
  return res;
}

/** JSON request to the API with the session's token; throws ApiError with the API's own code and message. */
export async function api<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
  const res = await send(method, path, body, token);
  const text = await res.text();
  return (text ? JSON.parse(text) : null) as T;
}

export function query(params: Record<string, string | number | boolean | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * Follows a job's Server-Sent Events (`GET /v1/jobs/:id/events`). EventSource cannot send the
 * Authorization header, so the stream is read with fetch. Calls `onJob` with each state/progress
 * and resolves with the last job at `end`; a dropped stream is resumed (the endpoint restarts
 * from the job's current state).
 */
export async function watchJob(jobId: string, onJob: (job: Job) => void, signal: AbortSignal): Promise<Job | null> {
  let last: Job | null = null;
  for (let attempt = 0; attempt < 5 && !signal.aborted; attempt++) {
    let res: Response;
    try {
      res = await fetch(`/v1/jobs/${encodeURIComponent(jobId)}/events`, { headers: { ...authHeaders(), accept: 'text/event-stream' }, signal });
    } catch (err) {
      if (signal.aborted) return last;
      if (attempt === 4) throw new ApiError(0, 'network', `progress stream lost: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    if (!res.ok) throw await failure(res);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut = buffer.indexOf('\n\n');
        while (cut !== -1) {
          const frame = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          cut = buffer.indexOf('\n\n');
          let event = 'message';
          let data = '';
          for (const line of frame.split('\n')) {
            if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('data:')) data += line.slice(5).trim();
          }
          if (!data) continue;
          const parsed = JSON.parse(data) as unknown;
          if (event === 'error') {
            const e = (parsed as ApiErrorBody).error;
            throw new ApiError(503, e?.code ?? 'unavailable', e?.message ?? 'event stream stopped');
          }
          if (parsed && typeof parsed === 'object' && 'id' in parsed) {
            last = parsed as Job;
            onJob(last);
          }
          if (event === 'end') return last;
        }
      }
    } catch (err) {
      if (signal.aborted) return last;
      if (err instanceof ApiError) throw err;
    }
  }
  return last;
}

/**
 * Downloads a backup (or one path of it) by a short-lived signed link (`POST
 * /v1/backups/:id/download-links`): the browser fetches the link itself and streams the file to
 * disk, so nothing is held in this page's memory and the token never appears in a URL.
 */
export async function download(backupId: string, path?: string): Promise<string> {
  const link = await api<{ url: string }>('POST', `/v1/backups/${encodeURIComponent(backupId)}/download-links`, path ? { path } : {});
  const a = document.createElement('a');
  a.href = link.url;
  a.rel = 'noreferrer';
  document.body.append(a);
  a.click();
  a.remove();
  return link.url;
}
