/**
 * Metrics and alerting end to end (issue 15): a real Cairn (gateway and control worker in this
 * process, the node worker in its own with WORKER_METRICS_PORT) makes a backup; then the gateway's
 * and the worker's /metrics are scraped, every metric the Prometheus alert rules and the Grafana
 * dashboard read must be exposed, and the figures must be the backup's. The node worker's
 * heartbeat reports a missing volume directory, and coverage says so.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCairn, type Cairn } from '../support/cairn-harness.ts';
import { alertRules, exposedNames, metricNames, sampleValue } from '../support/prometheus-rules.ts';

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not happen in ${timeoutMs} ms${last ? `: ${(last as Error).message}` : ''}`);
}

describe('metrics and alert rules against a running Cairn', () => {
  let cairn: Cairn;
  let workerMetricsUrl: string;
  let instanceId: string;
  let backup: any;

  beforeAll(async () => {
    cairn = await startCairn({ nodeWorker: 'none' });
    const port = await freePort();
    cairn.spawnNodeWorker({ WORKER_METRICS_PORT: String(port), HOST: '127.0.0.1' });
    workerMetricsUrl = `http://127.0.0.1:${port}/metrics`;
    // A worker process starting on a loaded 2-core machine can take a while.
    await until(
      'the node worker heartbeat',
      async () => ((await cairn.api('GET', `/v1/nodes/${cairn.nodeId}`)).body?.status === 'online' ? true : undefined),
      120_000,
    );

    const data = path.join(cairn.volumeRoot, 'm', 'data');
    fs.mkdirSync(path.join(data, 'sub'), { recursive: true });
    for (let i = 0; i < 10; i++) fs.writeFileSync(path.join(data, 'sub', `f${i}.txt`), `metrics ${i}\n`.repeat(1000 + i));
    const created = await cairn.api('POST', '/v1/instances', {
      name: 'metrics',
      nodeId: cairn.nodeId,
      tenant: cairn.tenant,
      volumes: [
        { name: 'data', hostPath: data },
        // Registered before its directory exists: accepted, but coverage must tell.
        { name: 'ghost', hostPath: path.join(cairn.volumeRoot, 'm', 'ghost') },
      ],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    instanceId = created.body.id;
    const schedule = await cairn.api('POST', `/v1/instances/${instanceId}/schedules`, { cron: '0 * * * *', timezone: 'UTC', retention: { keepLast: 3 } });
    expect(schedule.status, JSON.stringify(schedule.body)).toBe(201);
    const started = await cairn.api('POST', `/v1/instances/${instanceId}/backups`, { volumes: ['data'] });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const job = await cairn.waitForJob(started.body.job.id, undefined, 120_000);
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    backup = (await cairn.api('GET', `/v1/backups/${started.body.backup.id}`)).body;
  }, 300_000);

  afterAll(async () => {
    await cairn?.close();
  });

  const scrape = async (url: string): Promise<string> => {
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    return res.text();
  };

  it('sets the last-success gauge of the instance and the interval of its schedule on the gateway', async () => {
    const text = await scrape(`${cairn.url}/metrics`);
    const last = sampleValue(text, `cairn_instance_last_successful_backup_timestamp_seconds{instance_id="${instanceId}"}`);
    expect(last).toBe(new Date(backup.completedAt).getTime() / 1000);
    expect(sampleValue(text, `cairn_instance_backup_interval_seconds{instance_id="${instanceId}"}`)).toBe(3600);
    expect(sampleValue(text, `cairn_instance_scheduled_since_timestamp_seconds{instance_id="${instanceId}"}`)).toBeGreaterThan(0);
    expect(sampleValue(text, `cairn_node_online{node="${cairn.nodeId}"}`)).toBe(1);
    expect(sampleValue(text, `cairn_node_heartbeat_age_seconds{node="${cairn.nodeId}"}`)).toBeLessThan(60);
    expect(sampleValue(text, `cairn_queue_jobs{queue="node.${cairn.nodeId}",state="waiting"}`)).toBe(0);
  });

  it("counts the backup's duration and bytes on the node worker's own /metrics", async () => {
    const text = await scrape(workerMetricsUrl);
    expect(sampleValue(text, 'cairn_job_duration_seconds_count{type="backup",outcome="succeeded"}')).toBe(1);
    expect(sampleValue(text, 'cairn_job_duration_seconds_sum{type="backup",outcome="succeeded"}')).toBeGreaterThan(0);
    expect(sampleValue(text, 'cairn_backup_uploaded_bytes_total')).toBe(backup.storedBytes);
    expect(sampleValue(text, 'cairn_backup_logical_bytes_total')).toBe(backup.logicalBytes);
    expect(sampleValue(text, 'cairn_restore_bytes_total')).toBe(0);
    expect(text).toMatch(/^# TYPE cairn_s3_request_errors_total counter$/m);
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
    // Nothing but /metrics is served there.
    const other = await fetch(workerMetricsUrl.replace(/\/metrics$/, '/admin'));
    expect(other.status).toBe(404);
    expect(await other.json()).toEqual({ error: { code: 'not-found', message: 'only GET /metrics is served here' } });
  });

  it('exposes every metric the alert rules and the dashboard read', async () => {
    const exposed = new Set([...exposedNames(await scrape(`${cairn.url}/metrics`)), ...exposedNames(await scrape(workerMetricsUrl))]);
    const rules = alertRules(fs.readFileSync('infra/prometheus/cairn-rules.yml', 'utf8'));
    expect(rules.map((r) => r.alert)).toEqual(['CairnBackupOverdue', 'CairnNodeOffline', 'CairnJobsFailing', 'CairnS3Errors', 'CairnMetricsSourceDown']);
    // The tokenizer reads the block expression of the overdue rule right.
    expect(metricNames(rules[0]!.expr)).toEqual([
      'cairn_instance_backup_interval_seconds',
      'cairn_instance_last_successful_backup_timestamp_seconds',
      'cairn_instance_scheduled_since_timestamp_seconds',
    ]);
    for (const rule of rules) {
      const names = metricNames(rule.expr);
      expect(names.length, rule.alert).toBeGreaterThan(0);
      for (const name of names) expect(exposed.has(name), `${rule.alert} reads ${name}`).toBe(true);
      expect(rule.text, rule.alert).toMatch(/^\s+severity: (critical|warning)$/m);
      expect(rule.text, rule.alert).toMatch(/^\s+summary: /m);
    }

    const dashboard = JSON.parse(fs.readFileSync('infra/grafana/cairn-dashboard.json', 'utf8'));
    const exprs: string[] = dashboard.panels.flatMap((p: { targets: { expr: string }[] }) => p.targets.map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(10);
    const read = new Set(exprs.flatMap(metricNames));
    // The dashboard shows the rules' alerts (Prometheus' own ALERTS series) and every metric the rules read.
    expect(read.has('ALERTS')).toBe(true);
    for (const rule of rules) for (const name of metricNames(rule.expr)) expect(read.has(name), `dashboard shows ${name}`).toBe(true);
    for (const name of read) if (name !== 'ALERTS') expect(exposed.has(name), `dashboard reads ${name}`).toBe(true);
  });

  it('shows in coverage what the node saw: the directory of ghost does not exist', async () => {
    const coverage = await until(
      "the node's report on ghost",
      async () => {
        const res = await cairn.api('GET', `/v1/instances/${instanceId}/coverage`);
        return res.body.volumes.find((v: { name: string }) => v.name === 'ghost')?.state ? res.body : undefined;
      },
      // The node reports with its heartbeat, every 10 s.
      60_000,
    );
    expect(coverage.covered).toEqual(['data']);
    expect(coverage.skipped).toEqual([{ name: 'ghost', reason: expect.stringMatching(/^node .* reports that .*\/m\/ghost does not exist \(checked /) }]);
    expect(coverage.volumes.find((v: { name: string }) => v.name === 'data')).toMatchObject({ covered: true, state: 'exists' });
    // Created on the host, the next beat makes it covered.
    fs.mkdirSync(path.join(cairn.volumeRoot, 'm', 'ghost'));
    await until(
      'ghost covered',
      async () => ((await cairn.api('GET', `/v1/instances/${instanceId}/coverage`)).body.covered.includes('ghost') ? true : undefined),
      60_000,
    );
  }, 150_000);
});
