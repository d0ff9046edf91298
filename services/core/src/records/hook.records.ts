import type { HookRunStatus, HookStage, HookWindow, HookWindowStatus, InstanceHooks } from '../generated/prisma/client.ts';
import type { JsonInput, OneOrMany, Page } from './records.ts';

/**
 * Records of instance hooks (issue 13): each instance's hook definitions and webhook secret, the
 * quiesced windows of jobs (one per run that had hooks: opened before the pre hook starts,
 * closed once the post hook has run), and the summary shown on the Job. PrismaRecords and
 * MemoryRecords implement it alike (test/contract/hook-records.contract.ts).
 */

export type { HookRunStatus, HookStage, HookWindow, HookWindowStatus, InstanceHooks };

export interface NewHookWindow {
  id: string;
  jobId: string;
  instanceId: string;
  nodeId: string;
  stage: HookStage;
  attempt: number;
  /** The pre and post hooks as they are when the window opens (a thaw runs this post hook). */
  specs: JsonInput;
  pre?: JsonInput | null;
  preStatus?: HookRunStatus | null;
}

export interface HookWindowChanges {
  pre?: JsonInput | null;
  post?: JsonInput | null;
  preStatus?: HookRunStatus | null;
  postStatus?: HookRunStatus | null;
  outcome?: string | null;
  quiescedMs?: number | null;
  thawedBy?: string | null;
  closedAt?: Date | null;
}

export interface HookWindowFilter {
  id?: string;
  jobId?: string;
  nodeId?: string;
  status?: OneOrMany<HookWindowStatus>;
  openedBefore?: Date;
}

export interface HookFailureCount {
  stage: HookStage;
  phase: 'pre' | 'post';
  status: HookRunStatus;
  count: number;
}

export interface HookRecords {
  /** An instance's hooks and secret (null: it never had any). */
  getConfig(instanceId: string): Promise<InstanceHooks | null>;
  /** The hooks of several instances (those that have some), by instance id ascending. */
  configs(instanceIds: readonly string[]): Promise<InstanceHooks[]>;
  /**
   * Sets an instance's hooks, creating the row when new; `secret` undefined keeps the stored one.
   * An instance that does not exist is a foreign key error (P2003).
   */
  setConfig(instanceId: string, config: { hooks: JsonInput; secret?: string | null }): Promise<InstanceHooks>;
  /** Writes a new `open` window; a job that does not exist is a foreign key error (P2003). */
  openWindow(window: NewHookWindow): Promise<HookWindow>;
  /**
   * Conditional change of a window (the claim of its post hook: open → thawing, then → closed):
   * only when its status is one of `from`. Returns whether it changed.
   */
  transitionWindow(id: string, from: readonly HookWindowStatus[], to: HookWindowStatus, changes?: HookWindowChanges): Promise<boolean>;
  /** Sets fields of a window without a status condition (the pre hook's report). */
  updateWindow(id: string, changes: HookWindowChanges): Promise<void>;
  getWindow(id: string): Promise<HookWindow | null>;
  /** Windows matching, by id (ULIDs: opening order). */
  windows(filter: HookWindowFilter, page?: Page): Promise<HookWindow[]>;
  /** The summary of the job's hooks shown on the Job (`Job.hooks`); no status condition. */
  setJobHooks(jobId: string, summary: JsonInput): Promise<void>;
  /** Hook runs that failed or timed out, by stage, phase (pre/post) and status: the hook failure counter. */
  countFailures(): Promise<HookFailureCount[]>;
}

/** Statuses of a hook run that count as failures. */
export const FAILED_HOOK_RUN_STATUSES: HookRunStatus[] = ['failed', 'timeout'];
