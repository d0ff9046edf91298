import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { KoaAdapter } from '@bull-board/koa';
import type { Middleware } from 'koa';
import { CONTROL_QUEUE, CairnError, nodeQueueName } from '@cairn/core';
import type { QueuePort } from '../queue/queue-client.ts';
import type { NodeService } from '../services/node.service.ts';
import type { TokenService } from '../services/token.service.ts';

export interface BullBoardOptions {
  basePath: string;
  tokens: TokenService;
  queues: QueuePort;
  nodes: NodeService;
  /** How long the list of node queues is reused before the Node table is read again. */
  refreshMs?: number;
}

/**
 * Bull Board at `basePath` (SPEC §12) behind HTTP Basic — user `admin`, password an admin API
 * token — so a browser can log in. Shows `control` and the `node.<id>` queue of every node.
 */
export function bullBoard(options: BullBoardOptions): Middleware {
  const { basePath, tokens, queues, nodes } = options;
  const refreshMs = options.refreshMs ?? 5000;
  const serverAdapter = new KoaAdapter();
  serverAdapter.setBasePath(basePath);
  const board = createBullBoard({ queues: [], serverAdapter, options: { uiConfig: { boardTitle: 'Cairn' } } });
  // @bull-board/koa ships its own copy of the koa typings; the runtime objects are the same.
  const plugin = serverAdapter.registerPlugin() as unknown as Middleware;

  let shown = '';
  let refreshedAt = 0;
  const refresh = async () => {
    if (Date.now() - refreshedAt < refreshMs) return;
    const names = [CONTROL_QUEUE, ...(await nodes.ids()).map(nodeQueueName)];
    refreshedAt = Date.now();
    if (names.join('\n') === shown) return;
    board.replaceQueues(names.map((name) => new BullMQAdapter(queues.queue(name), { readOnlyMode: false })));
    shown = names.join('\n');
  };

  return async (ctx, next) => {
    if (ctx.path !== basePath && !ctx.path.startsWith(`${basePath}/`)) return next();
    const credentials = parseBasic(ctx.get('authorization'));
    if (!credentials) {
      ctx.set('WWW-Authenticate', 'Basic realm="Cairn queues", charset="UTF-8"');
      throw new CairnError('unauthorized', 'log in with user admin and an admin API token as the password');
    }
    let role: string;
    try {
      if (credentials.user !== 'admin') throw new CairnError('unauthorized', 'unknown user: log in as admin');
      role = (await tokens.authenticate(credentials.password)).role;
    } catch (err) {
      if (err instanceof CairnError && err.code === 'unauthorized') ctx.set('WWW-Authenticate', 'Basic realm="Cairn queues", charset="UTF-8"');
      throw err;
    }
    if (role !== 'admin') throw new CairnError('forbidden', 'Bull Board needs an admin token');
    await refresh();
    return plugin(ctx, next);
  };
}

function parseBasic(header: string): { user: string; password: string } | null {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return null;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? null : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
