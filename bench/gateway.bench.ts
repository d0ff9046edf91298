/**
 * The gateway scenario of `npm run bench` (issue 17), named `gateway`: a gateway process over a
 * database holding CAIRN_BENCH_GW_BACKUPS (10,000) backups and as many jobs, driven at a fixed
 * rate (CAIRN_BENCH_GW_RATE, 200 req/s) on list/show/jobs for CAIRN_BENCH_GW_SECONDS (30) per
 * phase: first alone, then with CAIRN_BENCH_GW_STREAMS (300) progress streams open on
 * CAIRN_BENCH_GW_RUNNING (30) running jobs whose progress a simulated worker writes and publishes
 * every 500 ms, as a node worker does. Target: p99 <= 50 ms in both phases.
 *
 * The load is open-loop (wrk2-style): request i is due at start + i / rate whether or not earlier
 * ones have answered, and its latency is measured from that due time, so a stalled gateway shows
 * as latency instead of as fewer requests (no coordinated omission).
 *
 * The gateway runs as a process of its own (CAIRN_BENCH_GW_PROFILE=<dir>: with a V8 CPU profile
 * written there when it stops), and so does the load client (gateway-load.ts); the streams and the
 * simulated worker run in this one.
 * The database is one of its own, created, migrated and dropped here.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createRedis, newId, PrismaRecords, publishJobChange, type Records } from '../services/core/src/index.ts';
import { startLocalStack } from '../scripts/local-stack/index.ts';
import { type LoadRoute, runLoadProcess } from './gateway-load.ts';
import { loadAverage } from './measure.ts';

export const GATEWAY_SCENARIOS = ['gateway'];

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const TARGET_P99_MS = 50;

interface PhaseResult {
  name: string;
  rate: number;
  seconds: number;
  sent: number;
  ok: number;
  failed: number;
  /** Answers by HTTP status (599: none within 10 s, or a connection error). */
  statuses: Map<number, number>;
  latencies: number[];
  byRoute: Map<string, number[]>;
  loadBefore: string;
  loadAfter: string;
  gatewayCpuShare: number;
  /** The gateway's CPU time (user + system) per request sent: a figure the machine's load hardly changes (streams' work included). */
  gatewayCpuMsPerRequest: number;
  /** Of which in the kernel (system time: sockets to the clients and to Postgres). */
  gatewaySysMsPerRequest: number;
  /** Transactions per second in the bench's database during the phase (the simulated worker's progress writes included). */
  dbTxPerSecond: number;
  dbTxPerRequest: number;
  /** Event-loop delay p99 of this process (streams, simulated worker) and of the load client's own process. */
  benchLoopP99Ms: number;
  clientLoopP99Ms: number;
  /** The gateway's own event-loop delay over the phase (its /metrics, which resets the histogram on each scrape). */
  gatewayLoop: { p99Ms: number; maxMs: number };
  streams?: { open: number; events: number; refusedBeyondCap: boolean };
}

export interface GatewayResult {
  backups: number;
  jobs: number;
  phases: PhaseResult[];
}

/** Runs the scenario unless CAIRN_BENCH_ONLY leaves it out. */
export async function runGateway(o: { only?: string[] } = {}): Promise<GatewayResult | undefined> {
  if (o.only && !o.only.includes('gateway')) return undefined;
  const backups = env('CAIRN_BENCH_GW_BACKUPS', 10_000);
  const rate = env('CAIRN_BENCH_GW_RATE', 200);
  const seconds = env('CAIRN_BENCH_GW_SECONDS', 30);
  const streamCount = env('CAIRN_BENCH_GW_STREAMS', 300);
  const runningJobs = env('CAIRN_BENCH_GW_RUNNING', 30);

  const runId = `${Date.now().toString(36)}${process.pid}`;
  const s3Directory = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-bench-gw-s3-'));
  const stack = await startLocalStack({
    database: `cairn_bench_gw_${runId}`,
    dropDatabaseOnStop: true,
    bucket: `cairn-bench-gw-${runId}`,
    s3Directory,
    log: (m) => console.log(`  [stack] ${m}`),
  });
  const prefix = `{cairn-bench-gw-${runId}}`;
  const records = PrismaRecords.open(stack.env.DATABASE_URL!, { max: 8 });
  const redis = createRedis(stack.env.REDIS_URL!);
  let gateway: ChildProcess | undefined;
  try {
    console.log(`  seeding ${backups} backups and their jobs...`);
    const t0 = performance.now();
    const seeded = await seed(records, backups, runningJobs);
    console.log(`  seeded in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${seeded.instances.length} instances, ${seeded.jobCount} jobs`);

    const adminToken = `cairn_${randomBytes(24).toString('base64url')}`;
    const port = await freePort();
    // CAIRN_BENCH_GW_PROFILE=<dir>: the gateway writes a V8 CPU profile there when it stops.
    const profile = process.env.CAIRN_BENCH_GW_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.CAIRN_BENCH_GW_PROFILE}`] : [];
    gateway = spawn(process.execPath, [...profile, '--import', 'tsx', 'services/gateway/src/main.ts'], {
      env: { ...process.env, ...stack.env, PORT: String(port), HOST: '127.0.0.1', QUEUE_PREFIX: prefix, CAIRN_ADMIN_TOKEN: adminToken, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const base = `http://127.0.0.1:${port}`;
    await waitFor(`${base}/healthz`, 60_000);
    // Member tokens of the seeded tenant: the tenant-scoped paths are the ones measured.
    const tokens: string[] = [];
    const perToken = 20; // JOB_STREAMS_PER_TOKEN's default
    for (let i = 0; i < Math.max(1, Math.ceil(streamCount / perToken)); i++) {
      const res = await request(base, 'POST', '/v1/tokens', adminToken, { name: `bench-${i}`, role: 'member', tenant: seeded.tenant });
      if (res.status !== 201) throw new Error(`creating a token answered ${res.status}: ${res.body}`);
      tokens.push(JSON.parse(res.body).token as string);
    }
    const member = tokens[0]!;
    const routes: LoadRoute[] = [
      { name: 'list backups', paths: seeded.instances.map((id) => `/v1/instances/${id}/backups?limit=50`) },
      { name: 'show backup', paths: seeded.backupIds.map((id) => `/v1/backups/${id}`) },
      { name: 'list jobs', paths: ['/v1/jobs?limit=50'] },
    ];
    const gwPid = gateway.pid!;

    // Warm-up (JIT, connection pools), not measured.
    await fixedRate(base, member, routes, rate, 3, gwPid, records);
    const phases: PhaseResult[] = [];
    phases.push({ ...(await fixedRate(base, member, routes, rate, seconds, gwPid, records)), name: 'alone' });
    console.log(`  ${describe(phases.at(-1)!)}`);

    const streams = await openStreams(base, tokens, seeded.running, streamCount);
    const refused = await request(base, 'GET', `/v1/jobs/${seeded.running[0]}/events`, tokens[0]!);
    const worker = simulateWorker(records, redis, prefix, seeded.running);
    try {
      const phase = await fixedRate(base, member, routes, rate, seconds, gwPid, records);
      phases.push({
        ...phase,
        name: `${streams.open} streams`,
        streams: { open: streams.open, events: streams.events(), refusedBeyondCap: refused.status === 429 },
      });
      console.log(`  ${describe(phases.at(-1)!)}`);
    } finally {
      await worker.stop();
      streams.close();
    }
    return { backups, jobs: seeded.jobCount, phases };
  } finally {
    gateway?.kill('SIGTERM');
    if (gateway && gateway.exitCode === null) await new Promise((r) => gateway!.once('exit', r));
    redis.disconnect();
    await records.close();
    await stack.stop();
    fs.rmSync(s3Directory, { recursive: true, force: true });
  }
}

export function reportGateway(r: GatewayResult): void {
  console.log(`gateway over ${r.backups} backups and ${r.jobs} jobs; latency from each request's due time (open loop)`);
  console.log('phase        rate/s  sent   failed  p50 ms  p90 ms  p99 ms  max ms  gateway CPU  load before -> after      p99 <= 50 ms');
  for (const p of r.phases) {
    const q = quantiles(p.latencies);
    console.log(
      `${p.name.padEnd(12)} ${String(p.rate).padStart(6)}  ${String(p.sent).padStart(5)}  ${String(p.failed).padStart(6)}  ` +
        `${q.p50.toFixed(1).padStart(6)}  ${q.p90.toFixed(1).padStart(6)}  ${q.p99.toFixed(1).padStart(6)}  ${q.max.toFixed(0).padStart(6)}  ` +
        `${`${(p.gatewayCpuShare * 100).toFixed(0)}%`.padStart(11)}  ${`${p.loadBefore} -> ${p.loadAfter}`.padEnd(24)} ` +
        `${q.p99 <= TARGET_P99_MS && p.failed === 0 ? 'met' : 'NOT met'}`,
    );
    const routes = [...p.byRoute].map(([name, xs]) => `${name} p99 ${quantiles(xs).p99.toFixed(1)}`).join(', ');
    const answers = [...p.statuses].map(([status, n]) => `${n} × ${status}`).join(', ');
    console.log(`             per route: ${routes}; answers ${answers}`);
    console.log(
      `             gateway CPU ${p.gatewayCpuMsPerRequest.toFixed(2)} ms per request (${p.gatewaySysMsPerRequest.toFixed(2)} system); ` +
        `database ${p.dbTxPerSecond.toFixed(0)} transactions/s ` +
        `(${p.dbTxPerRequest.toFixed(2)} per request); event loop p99: load client ${p.clientLoopP99Ms.toFixed(1)} ms, ` +
        `streams/worker process ${p.benchLoopP99Ms.toFixed(1)} ms, gateway ${p.gatewayLoop.p99Ms.toFixed(1)} ms (max ${p.gatewayLoop.maxMs.toFixed(0)})`,
    );
    if (p.streams)
      console.log(
        `             streams: ${p.streams.open} open, ${p.streams.events} events received, one more on a full token: ` +
          `${p.streams.refusedBeyondCap ? '429 (capped)' : 'NOT refused'}`,
      );
  }
  console.log('  (a shared machine: compare with the load averages; the target is for a quiet one)');
}

// ----- seeding -----

interface Seeded {
  tenant: string;
  instances: string[];
  backupIds: string[];
  running: string[];
  jobCount: number;
}

/**
 * A tenant of 20 instances and another of 5 (tenant scoping has rows to leave out), their backups
 * spread evenly over the 25 instances and interleaved in time as real ones are (the first tenant
 * holds 80%), one succeeded backup job per backup, and `running` running jobs of the first tenant
 * for the streams. Tenants, instances and the running jobs go through the records layer; the bulk
 * rows are inserted a thousand per statement (one by one took minutes on a loaded machine), with
 * the columns the records layer would set. Then ANALYZE, as autovacuum would after such a load.
 */
async function seed(records: PrismaRecords, backups: number, running: number): Promise<Seeded> {
  const nodeId = 'bench-node';
  await records.nodes.heartbeat(nodeId, { volumeRoots: ['/srv'], version: 'bench', lastHeartbeatAt: new Date(), capacity: {} });
  const instances: Array<{ id: string; tenantId: string }> = [];
  const names: string[] = [];
  for (const [name, count] of [
    [`bench-${newId().toLowerCase()}`, 20],
    [`other-${newId().toLowerCase()}`, 5],
  ] as const) {
    const tenant = await records.tenants.ensure(name, newId());
    names.push(name);
    for (let n = 0; n < count; n++) {
      const id = newId();
      const volumes = [{ id: newId(), name: 'data', hostPath: `/srv/${name}/app-${n}`, excludes: [] }];
      await records.instances.create({ id, tenantId: tenant.id, name: `app-${n}`, nodeId, volumes });
      instances.push({ id, tenantId: tenant.id });
    }
  }
  const first = instances[0]!.tenantId;
  const out: Seeded = { tenant: names[0]!, instances: instances.filter((i) => i.tenantId === first).map((i) => i.id), backupIds: [], running: [], jobCount: 0 };
  for (let from = 0; from < backups; from += 1000) {
    const rows = Array.from({ length: Math.min(1000, backups - from) }, (_, k) => {
      const instance = instances[(from + k) % instances.length]!;
      return { id: newId(), instanceId: instance.id, tenantId: instance.tenantId };
    });
    await records.prisma.backup.createMany({
      data: rows.map(({ id, instanceId }) => ({
        id,
        instanceId,
        status: 'completed' as const,
        trigger: 'manual' as const,
        volumes: ['data'],
        storageKey: `bench/${instanceId}/${id}.tar.zst`,
        indexKey: `bench/${instanceId}/${id}.index.json.gz`,
        compression: 'zstd',
        sizeBytes: BigInt(1 << 20),
        requestedBy: 'bench',
        completedAt: new Date(),
      })),
    });
    await records.prisma.job.createMany({
      data: rows.map((row) => ({
        id: newId(),
        type: 'backup' as const,
        status: 'succeeded' as const,
        instanceId: row.instanceId,
        tenantId: row.tenantId,
        backupId: row.id,
        requestedBy: 'bench',
        finishedAt: new Date(),
      })),
    });
    out.backupIds.push(...rows.filter((r) => r.tenantId === first).map((r) => r.id));
  }
  for (let n = 0; n < running; n++) {
    const id = newId();
    const instanceId = out.instances[n % out.instances.length]!;
    await records.jobs.create({ id, type: 'backup', status: 'running', instanceId, nodeId, requestedBy: 'bench', startedAt: new Date() });
    out.running.push(id);
  }
  out.jobCount = backups + running;
  await records.prisma.$executeRawUnsafe('ANALYZE');
  return out;
}

// ----- load -----

/**
 * One phase: the load from its own process (gateway-load.ts), the gateway's CPU and the database's
 * transactions counted around it, and this process's event-loop delay (streams, simulated worker).
 */
async function fixedRate(
  base: string,
  token: string,
  routes: LoadRoute[],
  rate: number,
  seconds: number,
  gatewayPid: number,
  records: PrismaRecords,
): Promise<PhaseResult> {
  const txBefore = await transactions(records);
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const loadBefore = loadAverage();
  await gatewayLoopDelay(base); // starts the gateway's histogram afresh
  const cpuBefore = processCpuSeconds(gatewayPid);
  const sysBefore = processCpuSeconds(gatewayPid, 'system');
  const load = await runLoadProcess({ base, token, routes, rate, seconds });
  const gatewayLoop = await gatewayLoopDelay(base);
  const gatewayCpuSeconds = processCpuSeconds(gatewayPid) - cpuBefore;
  const gatewaySysSeconds = processCpuSeconds(gatewayPid, 'system') - sysBefore;
  const dbTx = (await transactions(records)) - txBefore;
  loop.disable();
  const statuses = new Map(Object.entries(load.statuses).map(([status, n]) => [Number(status), n]));
  const ok = statuses.get(200) ?? 0;
  return {
    name: '',
    rate,
    seconds,
    sent: load.sent,
    ok,
    failed: load.sent - ok,
    statuses,
    latencies: Object.values(load.byRoute).flat(),
    byRoute: new Map(Object.entries(load.byRoute)),
    loadBefore,
    loadAfter: loadAverage(),
    gatewayCpuShare: gatewayCpuSeconds / load.elapsedSeconds,
    gatewayCpuMsPerRequest: (gatewayCpuSeconds * 1000) / load.sent,
    gatewaySysMsPerRequest: (gatewaySysSeconds * 1000) / load.sent,
    dbTxPerSecond: dbTx / load.elapsedSeconds,
    dbTxPerRequest: dbTx / load.sent,
    benchLoopP99Ms: loop.percentile(99) / 1e6,
    clientLoopP99Ms: load.clientLoopP99Ms,
    gatewayLoop,
  };
}

/** The gateway's event-loop delay since the last scrape, from prom-client's default metrics on /metrics. */
async function gatewayLoopDelay(base: string): Promise<{ p99Ms: number; maxMs: number }> {
  const text = (await request(base, 'GET', '/metrics', '')).body;
  const value = (name: string) => Number(new RegExp(`^${name} ([0-9.e+-]+)`, 'm').exec(text)?.[1] ?? Number.NaN) * 1000;
  return { p99Ms: value('nodejs_eventloop_lag_p99_seconds'), maxMs: value('nodejs_eventloop_lag_max_seconds') };
}

function request(base: string, method: string, route: string, token: string, body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      `${base}${route}`,
      { method, headers: { authorization: `Bearer ${token}`, ...(data ? { 'content-type': 'application/json' } : {}) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
          // An event stream that was granted: its first event is enough.
          if (res.statusCode === 200 && res.headers['content-type']?.startsWith('text/event-stream')) req.destroy();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('close', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

/** `count` event streams, spread over the tokens (at most 20 each) and the running jobs. */
async function openStreams(base: string, tokens: string[], jobs: string[], count: number) {
  const requests: http.ClientRequest[] = [];
  let events = 0;
  let open = 0;
  const closeAll = () => {
    for (const req of requests) req.destroy();
  };
  await Promise.all(
    Array.from({ length: count }, (_, n) => {
      return new Promise<void>((resolve, reject) => {
        const req = http.get(
          `${base}/v1/jobs/${jobs[n % jobs.length]}/events`,
          { headers: { authorization: `Bearer ${tokens[n % tokens.length]}` } },
          (res) => {
            res.on('error', () => {});
            if (res.statusCode !== 200) {
              res.resume();
              return reject(new Error(`stream ${n} answered ${res.statusCode}`));
            }
            open++;
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => {
              events += chunk.split('\nevent: ').length - 1 + (chunk.startsWith('event: ') ? 1 : 0);
            });
            resolve();
          },
        );
        req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
        requests.push(req);
      });
    }),
  ).catch((err: unknown) => {
    closeAll();
    throw err;
  });
  return { open, events: () => events, close: closeAll };
}

/** What node workers do while jobs run: write each job's progress and publish its change notice, every 500 ms. */
function simulateWorker(records: Records, redis: ReturnType<typeof createRedis>, prefix: string, jobs: string[]) {
  let bytesDone = 0;
  let stopping = false;
  const tick = async () => {
    bytesDone += 1 << 20;
    for (const jobId of jobs) {
      if (stopping) return;
      await records.jobs.setProgress(jobId, { stage: 'uploading', bytesDone, bytesTotal: 1 << 40, filesDone: 0, filesTotal: 0, percent: 0, etaSeconds: null });
      await publishJobChange(redis, prefix, { jobId });
    }
  };
  let running = tick();
  const timer = setInterval(() => {
    running = running.then(tick);
  }, 500);
  return {
    async stop() {
      stopping = true;
      clearInterval(timer);
      await running;
    },
  };
}

// ----- helpers -----

function quantiles(xs: number[]): { p50: number; p90: number; p99: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] ?? Number.NaN;
  return { p50: q(0.5), p90: q(0.9), p99: q(0.99), max: s.at(-1) ?? Number.NaN };
}

function describe(p: PhaseResult): string {
  const q = quantiles(p.latencies);
  const answers = [...p.statuses].map(([status, n]) => `${n} × ${status}`).join(', ');
  return `${p.name}: ${p.sent} requests at ${p.rate}/s (${answers}), p50 ${q.p50.toFixed(1)} ms, p99 ${q.p99.toFixed(1)} ms, load ${p.loadAfter}`;
}

/** Transactions committed in the bench's database so far (Postgres statistics; refreshed per transaction of ours). */
async function transactions(records: PrismaRecords): Promise<number> {
  await records.prisma.$executeRawUnsafe('SELECT pg_stat_clear_snapshot()');
  const rows = await records.prisma.$queryRawUnsafe<Array<{ n: bigint }>>('SELECT xact_commit AS n FROM pg_stat_database WHERE datname = current_database()');
  return Number(rows[0]?.n ?? 0);
}

/** user + system CPU seconds of a process so far (Linux /proc). */
function processCpuSeconds(pid: number, which: 'all' | 'system' = 'all'): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    const user = Number(fields[11]);
    const system = Number(fields[12]);
    return (which === 'system' ? system : user + system) / 100;
  } catch {
    return Number.NaN;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function waitFor(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await fetch(url).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms`);
}
