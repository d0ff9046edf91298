import { CairnError, type PrismaClient } from '@cairn/core';
import type { NodeList, NodeView } from '@cairn/core/api/index.ts';
import { nodeView } from './presenters.ts';

export interface NodeServiceOptions {
  prisma: PrismaClient;
  now?: () => Date;
}

/** Nodes with heartbeat age, online/offline and their job load (SPEC §11). */
export class NodeService {
  private readonly prisma: PrismaClient;
  private readonly now: () => Date;

  constructor(options: NodeServiceOptions) {
    this.prisma = options.prisma;
    this.now = options.now ?? (() => new Date());
  }

  async list(): Promise<NodeList> {
    const [nodes, counts] = await Promise.all([this.prisma.node.findMany({ orderBy: { id: 'asc' } }), this.jobCounts()]);
    const now = this.now();
    return { items: nodes.map((n) => nodeView(n, counts.get(n.id) ?? { running: 0, queued: 0 }, now)), nextCursor: null };
  }

  async get(id: string): Promise<NodeView> {
    const node = await this.prisma.node.findUnique({ where: { id } });
    if (!node) throw new CairnError('not-found', `node ${id} not found`);
    const counts = await this.jobCounts(id);
    return nodeView(node, counts.get(id) ?? { running: 0, queued: 0 }, this.now());
  }

  async ids(): Promise<string[]> {
    return (await this.prisma.node.findMany({ select: { id: true }, orderBy: { id: 'asc' } })).map((n) => n.id);
  }

  private async jobCounts(nodeId?: string): Promise<Map<string, { running: number; queued: number }>> {
    const groups = await this.prisma.job.groupBy({
      by: ['nodeId', 'status'],
      where: { status: { in: ['queued', 'running'] }, ...(nodeId ? { nodeId } : { nodeId: { not: null } }) },
      _count: { _all: true },
    });
    const out = new Map<string, { running: number; queued: number }>();
    for (const g of groups) {
      if (!g.nodeId) continue;
      const entry = out.get(g.nodeId) ?? { running: 0, queued: 0 };
      if (g.status === 'running') entry.running += g._count._all;
      else entry.queued += g._count._all;
      out.set(g.nodeId, entry);
    }
    return out;
  }
}
