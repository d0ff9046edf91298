import { z } from 'zod';
import { NodeDetail, NodeId, NodeList } from '@cairn/core/api/index.ts';
import type { ApiRegistry } from '../http/api-routes.ts';
import type { NodeService } from '../services/node.service.ts';

const NodeParams = z.object({ id: NodeId }).strict();

export function nodeRoutes(api: ApiRegistry, nodes: NodeService): void {
  api.add({
    method: 'get',
    path: '/v1/nodes',
    operationId: 'listNodes',
    summary: 'Nodes with heartbeat age, status and job counts',
    tag: 'nodes',
    access: 'member',
    responses: { 200: { description: 'every node', schema: NodeList } },
    async handler(ctx) {
      ctx.body = await nodes.list();
    },
  });
  api.add({
    method: 'get',
    path: '/v1/nodes/:id',
    operationId: 'getNode',
    summary: 'Show a node with its active and recent jobs and the schedules of its instances',
    description: 'A member sees only the jobs and schedules of its tenant.',
    tag: 'nodes',
    access: 'member',
    params: NodeParams,
    responses: { 200: { description: 'the node', schema: NodeDetail } },
    async handler(ctx, { actor, params }) {
      ctx.body = await nodes.get(actor, params.id);
    },
  });
}
