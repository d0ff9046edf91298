import { ACTIVE_JOB_STATUSES, CairnError, TERMINAL_JOB_STATUSES, scheduleView, type Records } from '@cairn/core';
import { NODE_RECENT_JOBS, type NodeDetail, type NodeList } from '@cairn/core/api/index.ts';
import { scopeOf, type Actor } from './actor.ts';
import { jobVisibility } from './job.service.ts';
import { jobView, nodeView } from './presenters.ts';

export interface NodeServiceOptions {
  records: Pick<Records, 'nodes' | 'jobs' | 'schedules' | 'instances'>;
  now?: () => Date;
}

type JobLoad = { running: number; queued: number };

/** The detail view lists at most this many active jobs and schedules (`GET /v1/jobs?node=`, `GET /v1/schedules?node=` page them all). */
export const NODE_DETAIL_MAX = 100;

/** Nodes with heartbeat age, online/offline and their job load (SPEC §11). */
export class NodeService {
  private readonly records: NodeServiceOptions['records'];
  private readonly now: () => Date;

  constructor(options: NodeServiceOptions) {
    this.records = options.records;
    this.now = options.now ?? (() => new Date());
  }

  async list(): Promise<NodeList> {
    const [nodes, counts] = await Promise.all([this.records.nodes.list(), this.jobCounts()]);
    const now = this.now();
    return { items: nodes.map((n) => nodeView(n, counts.get(n.id) ?? { running: 0, queued: 0 }, now)), nextCursor: null };
  }

  /** One node with its active and recent jobs and its instances' schedules, as far as the actor may see them (issue 15). */
  async get(actor: Actor, id: string): Promise<NodeDetail> {
    const node = await this.records.nodes.get(id);
    if (!node) throw new CairnError('not-found', `node ${id} not found`);
    const visible = jobVisibility(actor);
    const [counts, active, recent, schedules] = await Promise.all([
      this.jobCounts(id),
      this.records.jobs.find({ ...visible, onNode: id, status: ACTIVE_JOB_STATUSES }, { order: 'desc', take: NODE_DETAIL_MAX }),
      this.records.jobs.find({ ...visible, onNode: id, status: TERMINAL_JOB_STATUSES }, { order: 'desc', take: NODE_RECENT_JOBS }),
      this.records.schedules.find({ ...scopeOf(actor), nodeId: id }, { take: NODE_DETAIL_MAX }),
    ]);
    return {
      ...nodeView(node, counts.get(id) ?? { running: 0, queued: 0 }, this.now()),
      activeJobs: active.map(jobView),
      recentJobs: recent.map(jobView),
      schedules: schedules.map(scheduleView),
    };
  }

  async ids(): Promise<string[]> {
    return (await this.records.nodes.list()).map((n) => n.id);
  }

  /** Running and queued jobs per node (of one node when given). */
  private async jobCounts(nodeId?: string): Promise<Map<string, JobLoad>> {
    const [running, queued] = await Promise.all([
      this.records.jobs.countByNode({ status: 'running', nodeId }),
      this.records.jobs.countByNode({ status: 'queued', nodeId }),
    ]);
    const out = new Map<string, JobLoad>();
    const entry = (id: string) => out.get(id) ?? out.set(id, { running: 0, queued: 0 }).get(id)!;
    for (const g of running) entry(g.nodeId).running += g.count;
    for (const g of queued) entry(g.nodeId).queued += g.count;
    return out;
  }
}
