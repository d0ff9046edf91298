/**
 * What a node worker sees at a registered volume's host path (issue 15): reported with each
 * heartbeat and stored on the Node row (`volumeStates`, keyed by host path), so that coverage
 * tells the truth about a directory the gateway itself never touches.
 */
export const VOLUME_STATES = ['exists', 'missing', 'not-a-directory', 'unreadable'] as const;
export type VolumeState = (typeof VOLUME_STATES)[number];

export interface VolumeStateReport {
  state: VolumeState;
  /** ISO time of the node's check. */
  checkedAt: string;
  /** The error the node met (unreadable), without the path. */
  error?: string;
}

/** hostPath -> report, as stored in `Node.volumeStates`. */
export type VolumeStateReports = Record<string, VolumeStateReport>;

/** The node's report on one host path, or null when it has not checked it yet (or the stored value is not one). */
export function volumeStateOf(stored: unknown, hostPath: string): VolumeStateReport | null {
  if (typeof stored !== 'object' || stored === null) return null;
  const r = (stored as Record<string, unknown>)[hostPath] as Partial<VolumeStateReport> | undefined;
  if (!r || typeof r !== 'object' || !VOLUME_STATES.includes(r.state as VolumeState) || typeof r.checkedAt !== 'string') return null;
  return { state: r.state as VolumeState, checkedAt: r.checkedAt, ...(typeof r.error === 'string' ? { error: r.error } : {}) };
}

/** Why a volume in this state cannot be backed up; null when it can. */
export function volumeStateProblem(nodeId: string, hostPath: string, report: VolumeStateReport): string | null {
  switch (report.state) {
    case 'exists':
      return null;
    case 'missing':
      return `node ${nodeId} reports that ${hostPath} does not exist (checked ${report.checkedAt})`;
    case 'not-a-directory':
      return `node ${nodeId} reports that ${hostPath} is not a directory (checked ${report.checkedAt})`;
    case 'unreadable':
      return `node ${nodeId} cannot read ${hostPath}${report.error ? `: ${report.error}` : ''} (checked ${report.checkedAt})`;
  }
}
