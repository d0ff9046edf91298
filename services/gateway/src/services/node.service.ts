import { CairnError, type Records } from '@cairn/core';
import type { NodeList, NodeView } from '@cairn/core/api/index.ts';
import { nodeView } from './presenters.ts';

export interface NodeServiceOptions {
  records: Pick<Records, 'nodes' | 'jobs'>;
  now?: () => Date;
}

type JobLoad = { running: number; queued: number };

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

  async get(id: string): Promise<NodeView> {
    const node = await this.records.nodes.get(id);
    if (!node) throw new CairnError('not-found', `node ${id} not found`);
    const counts = await this.jobCounts(id);
    return nodeView(node, counts.get(id) ?? { running: 0, queued: 0 }, this.now());
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
