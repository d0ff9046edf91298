import { describe, expect, it } from 'vitest';
import { newId } from '@cairn/core';
import { MetricsService } from '@cairn/gateway/services/metrics.service.ts';
import { admin, gatewayFixture } from './gateway-fixture.ts';

async function fleet() {
  const f = gatewayFixture();
  f.node('n1', ['/srv/a'], 2_000);
  f.node('n2', ['/srv/b'], 300_000);
  const inst = await f.instance({ nodeId: 'n1' });
  const done = await f.backups.start(admin, inst.id, {});
  await f.complete(done.backup.id, done.job.id);
  await f.records.backups.updateWhere({ id: done.backup.id }, { sizeBytes: 1234n });
  await f.backups.start(admin, inst.id, {});
  f.queues.queueCounts = { control: { waiting: 2 }, 'node.n1': { waiting: 1, active: 3 } };
  // Two schedules: the more frequent one (every 6 h) sets the interval the overdue alert uses.
  const schedule = (cron: string, enabled = true) =>
    f.records.schedules.create({ id: newId(), instanceId: inst.id, cron, timezone: 'UTC', volumes: [], retention: { keepLast: 1 }, enabled });
  await schedule('0 3 * * *');
  await schedule('0 */6 * * *');
  await schedule('*/5 * * * *', false);
  const never = await f.instance({ nodeId: 'n2', volumes: [{ name: 'd', hostPath: '/srv/b/never' }] });
  await f.records.schedules.create({
    id: newId(),
    instanceId: never.id,
    cron: '0 2 * * 1,3',
    timezone: 'UTC',
    volumes: [],
    retention: { keepLast: 1 },
    enabled: true,
  });
  const metrics = new MetricsService({ records: f.records, queues: f.queues, logger: f.logger, now: () => f.clock.now });
  return { f, metrics, inst, never };
}

describe('MetricsService', () => {
  it('reports jobs, backups, stored bytes, node heartbeats and queue depths read at scrape time', async () => {
    const { metrics, inst, never } = await fleet();
    const { body, contentType } = await metrics.render();
    expect(contentType).toContain('text/plain');
    const lines = body.split('\n');
    expect(lines).toEqual(
      expect.arrayContaining([
        'cairn_metrics_source_up{source="postgres"} 1',
        'cairn_metrics_source_up{source="redis"} 1',
        'cairn_jobs{type="backup",status="succeeded"} 1',
        'cairn_jobs{type="backup",status="queued"} 1',
        'cairn_backups{status="completed"} 1',
        'cairn_backups{status="pending"} 1',
        'cairn_backup_stored_bytes 1234',
        'cairn_node_heartbeat_age_seconds{node="n1"} 2',
        'cairn_node_online{node="n1"} 1',
        'cairn_node_online{node="n2"} 0',
        'cairn_queue_jobs{queue="control",state="waiting"} 2',
        'cairn_queue_jobs{queue="node.n1",state="active"} 3',
        'cairn_queue_jobs{queue="node.n2",state="waiting"} 0',
        // 2026-12-01T12:00:00Z, when the fixture's backup completed.
        `cairn_instance_last_successful_backup_timestamp_seconds{instance_id="${inst.id}"} 1796126400`,
        `cairn_instance_backup_interval_seconds{instance_id="${inst.id}"} 21600`,
        `cairn_instance_scheduled_since_timestamp_seconds{instance_id="${inst.id}"} 1796126400`,
        // Mondays and Wednesdays at 02:00: judged by its longest gap, Wednesday to Monday.
        `cairn_instance_backup_interval_seconds{instance_id="${never.id}"} 432000`,
      ]),
    );
    // Never backed up: no last-success sample (the alert counts from when its schedule was made).
    expect(body).not.toContain(`cairn_instance_last_successful_backup_timestamp_seconds{instance_id="${never.id}"}`);
  });

  it('appends the registries of the other roles of the process (the all-in-one workers)', async () => {
    const { f } = await fleet();
    const extra = { metrics: async () => '# TYPE cairn_job_duration_seconds histogram\n' };
    const metrics = new MetricsService({ records: f.records, queues: f.queues, logger: f.logger, now: () => f.clock.now, extra: [extra] });
    const { body } = await metrics.render();
    expect(body).toContain('cairn_metrics_source_up{source="postgres"} 1');
    expect(body).toContain('# TYPE cairn_job_duration_seconds histogram');
  });

  it('shows an unreadable database or Redis as source_up 0 instead of failing the scrape', async () => {
    const { f, metrics } = await fleet();
    f.records.failNext('jobs.countByTypeAndStatus');
    f.queues.down = true;
    const { body } = await metrics.render();
    expect(body).toContain('cairn_metrics_source_up{source="postgres"} 0');
    expect(body).toContain('cairn_metrics_source_up{source="redis"} 0');
    expect(body).not.toMatch(/^cairn_jobs\{/m);
  });
});
