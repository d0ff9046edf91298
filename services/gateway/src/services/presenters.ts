import type { ApiToken, Backup, Instance, InstanceHooks, Job, Node, Tenant, Volume } from '@cairn/core';
import { hasHooks, hooksOf } from '@cairn/core/domain/hooks.ts';
import {
  NODE_ONLINE_WITHIN_SECONDS,
  type BackupView,
  type InstanceView,
  type JobProgress,
  type JobView,
  type NodeView,
  type TokenView,
} from '@cairn/core/api/index.ts';

/** Rows → API views (SPEC §11 shapes): ISO timestamps, numbers for BigInt sizes, no secrets. */

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);
const num = (n: bigint | number | null): number | null => (n === null ? null : Number(n));

export function tokenView(t: ApiToken & { tenant: Tenant | null }): TokenView {
  return {
    id: t.id,
    name: t.name,
    role: t.role,
    tenant: t.tenant?.name ?? null,
    createdAt: t.createdAt.toISOString(),
    lastUsedAt: iso(t.lastUsedAt),
    revokedAt: iso(t.revokedAt),
  };
}

export type InstanceRow = Instance & { tenant: Tenant; volumes: Volume[] };

/** `hooks`: the instance's hook row (its secret is never shown here). */
export function instanceView(i: InstanceRow, hooks: InstanceHooks | null = null): InstanceView {
  return {
    id: i.id,
    name: i.name,
    tenantId: i.tenantId,
    tenant: i.tenant.name,
    nodeId: i.nodeId,
    volumes: [...i.volumes].sort((a, b) => a.name.localeCompare(b.name)).map((v) => ({ name: v.name, hostPath: v.hostPath, excludes: v.excludes })),
    hooks: hooks && hasHooks(hooksOf(hooks.hooks)) ? hooksOf(hooks.hooks) : null,
    createdAt: i.createdAt.toISOString(),
    updatedAt: i.updatedAt.toISOString(),
  };
}

export function backupView(b: Backup): BackupView {
  const enc = (b.encryption ?? {}) as { mode?: unknown; keyId?: unknown };
  return {
    id: b.id,
    instanceId: b.instanceId,
    status: b.status,
    trigger: b.trigger,
    scheduleId: b.scheduleId,
    kind: b.kind,
    parentId: b.parentId,
    volumes: b.volumes,
    storageKey: b.storageKey,
    indexKey: b.indexKey,
    format: b.format,
    compression: b.compression,
    // The wrapped data key stays in the database.
    encryption: { mode: typeof enc.mode === 'string' ? enc.mode : 'none', ...(typeof enc.keyId === 'string' ? { keyId: enc.keyId } : {}) },
    sizeBytes: num(b.sizeBytes),
    storedBytes: num(b.sizeBytes),
    logicalBytes: num(b.logicalBytes),
    reusedBytes: num(b.reusedBytes),
    fileCount: b.fileCount,
    sha256: b.sha256,
    warnings: Array.isArray(b.warnings) ? (b.warnings as unknown[]) : [],
    expiresAt: iso(b.expiresAt),
    createdAt: b.createdAt.toISOString(),
    startedAt: iso(b.startedAt),
    completedAt: iso(b.completedAt),
    deletedAt: iso(b.deletedAt),
    error: b.error,
    requestedBy: b.requestedBy,
    name: b.name,
    note: b.note,
    pinned: b.pinned,
    verifiedAt: iso(b.verifiedAt),
    verifyLevel: (b.verifyLevel as BackupView['verifyLevel']) ?? null,
    verifyStatus: b.verifyStatus ?? null,
    verifyError: b.verifyError ?? null,
  };
}

export function jobView(j: Job): JobView {
  return {
    id: j.id,
    type: j.type,
    status: j.status,
    instanceId: j.instanceId,
    backupId: j.backupId,
    targetInstanceId: j.targetInstanceId,
    nodeId: j.nodeId,
    queue: j.queue,
    params: j.params && typeof j.params === 'object' && !Array.isArray(j.params) ? (j.params as Record<string, unknown>) : {},
    requestedBy: j.requestedBy,
    progress: progressOf(j.progress),
    result: j.result ?? null,
    hooks: (j.hooks ?? null) as JobView['hooks'],
    attempts: j.attempts,
    error: j.error,
    errorCode: j.errorCode,
    createdAt: j.createdAt.toISOString(),
    startedAt: iso(j.startedAt),
    finishedAt: iso(j.finishedAt),
    parentJobId: j.parentJobId,
  };
}

function progressOf(p: unknown): JobProgress | null {
  if (!p || typeof p !== 'object') return null;
  const o = p as Record<string, unknown>;
  const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  return {
    stage: typeof o.stage === 'string' ? o.stage : 'unknown',
    bytesDone: n(o.bytesDone),
    bytesTotal: n(o.bytesTotal),
    filesDone: n(o.filesDone),
    filesTotal: n(o.filesTotal),
    percent: n(o.percent),
    etaSeconds: typeof o.etaSeconds === 'number' ? o.etaSeconds : null,
  };
}

export function heartbeatAgeSeconds(node: Pick<Node, 'lastHeartbeatAt'>, now: Date): number | null {
  return node.lastHeartbeatAt ? Math.max(0, Math.round((now.getTime() - node.lastHeartbeatAt.getTime()) / 100) / 10) : null;
}

export function isOnline(node: Pick<Node, 'lastHeartbeatAt'>, now: Date): boolean {
  const age = heartbeatAgeSeconds(node, now);
  return age !== null && age <= NODE_ONLINE_WITHIN_SECONDS;
}

export function nodeView(n: Node, counts: { running: number; queued: number }, now: Date): NodeView {
  return {
    id: n.id,
    status: isOnline(n, now) ? 'online' : 'offline',
    labels: n.labels && typeof n.labels === 'object' && !Array.isArray(n.labels) ? (n.labels as Record<string, unknown>) : {},
    volumeRoots: n.volumeRoots,
    version: n.version,
    lastHeartbeatAt: iso(n.lastHeartbeatAt),
    heartbeatAgeSeconds: heartbeatAgeSeconds(n, now),
    runningJobs: counts.running,
    queuedJobs: counts.queued,
    capacity: n.capacity ?? null,
    hookCommands: n.hookCommands ?? [],
    createdAt: n.createdAt.toISOString(),
  };
}
