/**
 * The gateway bench's load client, a process of its own (`node --import tsx bench/gateway-load.ts`,
 * started by gateway.bench.ts over IPC): requests at a fixed rate, open loop, each latency from
 * its due time. In the bench's own process its event loop was shared with the 300 progress
 * streams and the simulated worker's writes, whose stalls then counted as the gateway's latency.
 */
import { fork } from 'node:child_process';
import http from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

export interface LoadRoute {
  name: string;
  /** Paths taken in turn (the instances or backups the route cycles over). */
  paths: string[];
}

export interface LoadRequest {
  base: string;
  token: string;
  routes: LoadRoute[];
  rate: number;
  seconds: number;
}

export interface LoadResult {
  sent: number;
  elapsedSeconds: number;
  /** Per route, the latencies in ms. */
  byRoute: Record<string, number[]>;
  /** Answers by HTTP status (599: none within 10 s, or a connection error). */
  statuses: Record<number, number>;
  /** The load client's own event-loop delay p99 (ms): what it adds to the latencies at most. */
  clientLoopP99Ms: number;
}

/** Runs one load phase in a child process and answers its result. */
export function runLoadProcess(request: LoadRequest): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let result: LoadResult | undefined;
    child.once('message', (m) => {
      result = m as LoadResult;
      child.disconnect();
    });
    child.once('error', reject);
    child.once('exit', (code) => (result ? resolve(result) : reject(new Error(`the load client exited with ${code} before answering`))));
    child.send(request);
  });
}

/** Requests at a fixed rate over keep-alive connections; each latency runs from the request's due time. */
async function fixedRate(r: LoadRequest): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const total = Math.round(r.rate * r.seconds);
  const byRoute: Record<string, number[]> = Object.fromEntries(r.routes.map((route) => [route.name, []]));
  const statuses: Record<number, number> = {};
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const start = performance.now();
  const inFlight: Promise<void>[] = [];
  for (let n = 0; n < total; n++) {
    const due = start + (n * 1000) / r.rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    const route = r.routes[n % r.routes.length]!;
    const path = route.paths[Math.floor(n / r.routes.length) % route.paths.length]!;
    inFlight.push(
      get(agent, `${r.base}${path}`, r.token).then((status) => {
        byRoute[route.name]!.push(performance.now() - due);
        statuses[status] = (statuses[status] ?? 0) + 1;
      }),
    );
  }
  await Promise.all(inFlight);
  const elapsedSeconds = (performance.now() - start) / 1000;
  loop.disable();
  agent.destroy();
  return { sent: total, elapsedSeconds, byRoute, statuses, clientLoopP99Ms: loop.percentile(99) / 1e6 };
}

/** A GET answering its status (599: no answer within 10 s or a connection error); the body is read and dropped. */
function get(agent: http.Agent, url: string, token: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent, headers: { authorization: `Bearer ${token}` }, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(599));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(599));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.send) {
  process.once('message', (request) => {
    fixedRate(request as LoadRequest).then(
      (result) => process.send!(result),
      (err: unknown) => {
        console.error(`load client: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      },
    );
  });
}
