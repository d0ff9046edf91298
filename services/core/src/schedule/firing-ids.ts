import { createHash } from 'node:crypto';

/**
 * Deterministic ids for one firing of a schedule (SPEC §4: "a schedule firing uses a
 * deterministic id so two control replicas can never start the same firing twice").
 *
 * Record ids are ULIDs whose time part is the fire time and whose random part is a hash of the
 * schedule id and the record's role, so duplicate firings (several control replicas, retries,
 * a stalled job run again) all compute the same Backup and Job ids, and the ids still sort by
 * time next to ordinary ULIDs.
 */

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const MAX_TIME = 2 ** 48 - 1;

function encodeTime(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0 || ms > MAX_TIME) throw new RangeError(`fire time ${ms} cannot be a ULID time`);
  let out = '';
  for (let i = 0, t = ms; i < 10; i++, t = Math.floor(t / 32)) out = CROCKFORD[t % 32]! + out;
  return out;
}

/** 80 bits of sha256(seed) as 16 Crockford base32 characters. */
function encodeHash(seed: string): string {
  const bytes = createHash('sha256').update(seed).digest();
  let bits = 0n;
  for (let i = 0; i < 10; i++) bits = (bits << 8n) | BigInt(bytes[i]!);
  let out = '';
  for (let i = 0; i < 16; i++, bits >>= 5n) out = CROCKFORD[Number(bits & 31n)]! + out;
  return out;
}

/** A ULID for `fireTimeMs` that is the same every time for the same (scheduleId, role). */
export function firingUlid(scheduleId: string, fireTimeMs: number, role: 'backup' | 'job' | 'skip'): string {
  return encodeTime(fireTimeMs) + encodeHash(`cairn:schedule:${scheduleId}:${role}`);
}

export interface FiringIds {
  backupId: string;
  jobId: string;
  skipJobId: string;
}

export function firingIds(scheduleId: string, fireTimeMs: number): FiringIds {
  return {
    backupId: firingUlid(scheduleId, fireTimeMs, 'backup'),
    jobId: firingUlid(scheduleId, fireTimeMs, 'job'),
    skipJobId: firingUlid(scheduleId, fireTimeMs, 'skip'),
  };
}

/**
 * BullMQ id of a firing enqueued by hand (`schedule:<id>:<fire time ms>`, SPEC §4). BullMQ 6.7
 * accepts ':' in a custom job id only when the id has exactly three ':'-separated parts, which
 * this form has (schedule ids are ULIDs, without ':').
 */
export function firingJobId(scheduleId: string, fireTimeMs: number): string {
  if (scheduleId.includes(':')) throw new RangeError(`schedule id ${scheduleId} must not contain ':'`);
  return `schedule:${scheduleId}:${fireTimeMs}`;
}

/** Job scheduler id of a schedule in the control queue; the prefix tells ours from other schedulers. */
export const SCHEDULER_ID_PREFIX = 'schedule-';

export function schedulerIdOf(scheduleId: string): string {
  return `${SCHEDULER_ID_PREFIX}${scheduleId}`;
}

export function scheduleIdOfScheduler(schedulerId: string): string | null {
  return schedulerId.startsWith(SCHEDULER_ID_PREFIX) ? schedulerId.slice(SCHEDULER_ID_PREFIX.length) : null;
}

/**
 * The fire time of a BullMQ job: scheduler-made jobs are `repeat:<schedulerId>:<millis>`, hand-made
 * ones `schedule:<scheduleId>:<millis>`. Null when the id carries none.
 */
export function fireTimeOfJobId(jobId: string | undefined): number | null {
  const m = /^(?:repeat|schedule):[^:]+:(\d+)$/.exec(jobId ?? '');
  return m ? Number(m[1]) : null;
}
