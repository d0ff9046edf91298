/**
 * A benchmark's client of Cairn's REST API (e2e.bench.ts, worker-rss.bench.ts): one request per
 * connection, and polling a job until it ends.
 */
import http from 'node:http';

export const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'interrupted']);

export interface Api {
  url: string;
  token: string;
}

/** The fields of the API's answers the benchmarks read (instances, backups, jobs, nodes). */
export interface Reply {
  id: string;
  status: string;
  job: { id: string };
  backup: { id: string };
  storageKey: string;
  indexKey: string;
  sizeBytes: number;
  items: { id: string }[];
  error?: unknown;
  progress?: { stage?: string };
  startedAt?: string;
  finishedAt?: string;
}

/**
 * One request on a connection of its own: a kept-alive connection left idle while restic runs can
 * be closed by the server just as it is reused (ECONNRESET), and a POST must not be sent twice.
 */
export function call(api: Api, method: string, route: string, body?: unknown): Promise<Reply> {
  const payload = body !== undefined ? JSON.stringify(body) : undefined;
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${api.url}${route}`,
      {
        method,
        agent: false,
        headers: { authorization: `Bearer ${api.token}`, ...(payload !== undefined ? { 'content-type': 'application/json' } : {}) },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(parts).toString();
          if ((res.statusCode ?? 500) >= 300) reject(new Error(`${method} ${route}: ${res.statusCode} ${text}`));
          else resolve(JSON.parse(text) as Reply);
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

export interface JobTimes {
  /** Seconds from `started` to the poll that saw the job end. */
  seconds: number;
  /** Seconds the worker ran it (startedAt to finishedAt): the rest is queueing and polling. */
  ran: number;
}

/** Polls the job until it ends; throws unless it succeeded. */
export async function waitForJob(api: Api, jobId: string, started: number): Promise<JobTimes> {
  let stage = '';
  const stages: string[] = [];
  for (;;) {
    const job = await call(api, 'GET', `/v1/jobs/${jobId}`);
    const now = job.progress?.stage ?? job.status;
    if (now !== stage) stages.push(`${(stage = now)} @${((performance.now() - started) / 1000).toFixed(2)}`);
    if (TERMINAL.has(job.status)) {
      const seconds = (performance.now() - started) / 1000;
      if (job.status !== 'succeeded') throw new Error(`job ${jobId} ${job.status}: ${JSON.stringify(job.error ?? job)}`);
      // CAIRN_E2E_STAGES=1: when the job entered each stage (seconds from the request).
      if (process.env.CAIRN_E2E_STAGES === '1') console.log(`    job ${jobId}: ${stages.join(', ')}`);
      return { seconds, ran: (Date.parse(job.finishedAt!) - Date.parse(job.startedAt!)) / 1000 };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until the node worker `nodeId` has registered itself (its first heartbeat). */
export async function waitForNode(api: Api, nodeId: string, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await call(api, 'GET', '/v1/nodes')).items.some((n) => n.id === nodeId)) {
    if (Date.now() > until) throw new Error(`node ${nodeId} did not register within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
