import type { PrismaClient } from '../db/prisma.ts';
import { Prisma } from '../generated/prisma/client.ts';
import { FAILED_HOOK_RUN_STATUSES, type HookRecords, type HookWindowChanges, type HookWindowFilter } from './hook.records.ts';
import type { JsonInput, OneOrMany, Page } from './records.ts';

type Db = PrismaClient | Prisma.TransactionClient;

const nullableJson = (v: JsonInput | null | undefined): Prisma.InputJsonValue | typeof Prisma.DbNull | undefined =>
  v === undefined ? undefined : v === null ? Prisma.DbNull : (v as Prisma.InputJsonValue);

const list = <T>(v: OneOrMany<T>): T[] => (Array.isArray(v) ? [...v] : [v as T]);

function windowWhere(f: HookWindowFilter, page: Page = {}): Prisma.HookWindowWhereInput {
  const id =
    f.id !== undefined || page.after !== undefined || page.before !== undefined
      ? { ...(f.id !== undefined ? { equals: f.id } : {}), gt: page.after, lt: page.before }
      : undefined;
  return {
    id,
    jobId: f.jobId,
    nodeId: f.nodeId,
    status: f.status === undefined ? undefined : { in: list(f.status) },
    openedAt: f.openedBefore ? { lt: f.openedBefore } : undefined,
  };
}

function windowData(changes: HookWindowChanges): Prisma.HookWindowUpdateManyMutationInput {
  const { pre, post, ...rest } = changes;
  return { ...rest, ...(pre !== undefined ? { pre: nullableJson(pre) } : {}), ...(post !== undefined ? { post: nullableJson(post) } : {}) };
}

/** HookRecords in Postgres (see hook.records.ts). */
export function prismaHookRecords(db: Db): HookRecords {
  return {
    getConfig: (instanceId) => db.instanceHooks.findUnique({ where: { instanceId } }),
    configs: (instanceIds) => db.instanceHooks.findMany({ where: { instanceId: { in: [...instanceIds] } }, orderBy: { instanceId: 'asc' } }),
    setConfig(instanceId, { hooks, secret }) {
      const data = { hooks: hooks as Prisma.InputJsonValue, ...(secret !== undefined ? { secret } : {}) };
      return db.instanceHooks.upsert({ where: { instanceId }, create: { instanceId, ...data }, update: data });
    },
    openWindow: ({ specs, pre, ...window }) =>
      db.hookWindow.create({ data: { ...window, specs: specs as Prisma.InputJsonValue, ...(pre !== undefined ? { pre: nullableJson(pre) } : {}) } }),
    async transitionWindow(id, from, to, changes = {}) {
      const { count } = await db.hookWindow.updateMany({ where: { id, status: { in: [...from] } }, data: { ...windowData(changes), status: to } });
      return count === 1;
    },
    async updateWindow(id, changes) {
      await db.hookWindow.updateMany({ where: { id }, data: windowData(changes) });
    },
    getWindow: (id) => db.hookWindow.findUnique({ where: { id } }),
    windows: (filter, page = {}) => db.hookWindow.findMany({ where: windowWhere(filter, page), orderBy: { id: page.order ?? 'asc' }, take: page.take }),
    async setJobHooks(jobId, summary) {
      await db.job.updateMany({ where: { id: jobId }, data: { hooks: summary as Prisma.InputJsonValue } });
    },
    async countFailures() {
      const [pre, post] = await Promise.all([
        db.hookWindow.groupBy({ by: ['stage', 'preStatus'], where: { preStatus: { in: FAILED_HOOK_RUN_STATUSES } }, _count: { _all: true } }),
        db.hookWindow.groupBy({ by: ['stage', 'postStatus'], where: { postStatus: { in: FAILED_HOOK_RUN_STATUSES } }, _count: { _all: true } }),
      ]);
      return [
        ...pre.map((g) => ({ stage: g.stage, phase: 'pre' as const, status: g.preStatus!, count: g._count._all })),
        ...post.map((g) => ({ stage: g.stage, phase: 'post' as const, status: g.postStatus!, count: g._count._all })),
      ];
    },
  };
}
