/**
 * Retention of a schedule's backups (SPEC §9), pure: given the completed backups of one schedule,
 * a policy, the schedule's time zone and a clock, decide which to keep (and which rule kept each)
 * and which to drop.
 *
 * Bucketing follows restic's `forget`: backups are walked newest first; `keepLast: n` keeps the n
 * newest; `keepDaily: n` keeps the newest backup of each of the n most recent days that have one
 * (likewise hourly, weekly (ISO weeks, Monday first), monthly, yearly). Calendar units are taken in
 * the schedule's time zone, so "daily" means the local day even across DST changes; an hour
 * repeated when clocks go back counts as two hours (its two occurrences are distinct real hours).
 *
 * `maxAgeDays` is a hard limit: a backup older than that many days (24 h each) is dropped even if a
 * keep rule would keep it, and every kept backup gets `expiresAt = createdAt + maxAgeDays`. With
 * no keep rule, everything younger than `maxAgeDays` is kept.
 */

export interface RetentionPolicy {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  maxAgeDays?: number;
}

export const KEEP_RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
export type KeepRule = (typeof KEEP_RULES)[number];

const POLICY_FIELD: Record<KeepRule, keyof RetentionPolicy> = {
  last: 'keepLast',
  hourly: 'keepHourly',
  daily: 'keepDaily',
  weekly: 'keepWeekly',
  monthly: 'keepMonthly',
  yearly: 'keepYearly',
};

export interface RetentionCandidate {
  id: string;
  createdAt: Date;
}

export interface KeepReason {
  rule: KeepRule | 'max-age';
  /** The bucket the backup represents: `2024-03-10` for daily, `2024-W10` for weekly, `#3` for last... */
  bucket: string;
}

export interface KeptBackup {
  id: string;
  createdAt: Date;
  reasons: KeepReason[];
  /** When maxAgeDays will expire it; null without maxAgeDays. */
  expiresAt: Date | null;
}

export interface DroppedBackup {
  id: string;
  createdAt: Date;
  reason: string;
}

export interface RetentionPlan {
  keep: KeptBackup[];
  drop: DroppedBackup[];
}

export interface RetentionOptions {
  /** IANA time zone of the schedule; calendar buckets are taken there. */
  timezone: string;
  /** Injectable clock (tests use a fixed one). */
  clock?: () => Date;
}

const DAY_MS = 86_400_000;

/** True when the policy has at least one rule (a keep count above 0, or maxAgeDays). */
export function hasRetentionRule(policy: RetentionPolicy): boolean {
  return KEEP_RULES.some((r) => (policy[POLICY_FIELD[r]] ?? 0) > 0) || policy.maxAgeDays !== undefined;
}

/** Problems with a policy, each naming its field; empty when valid. */
export function retentionPolicyProblems(policy: RetentionPolicy): { path: string; message: string }[] {
  const problems: { path: string; message: string }[] = [];
  for (const rule of KEEP_RULES) {
    const v = policy[POLICY_FIELD[rule]];
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) problems.push({ path: POLICY_FIELD[rule], message: 'must be a whole number ≥ 0' });
  }
  const age = policy.maxAgeDays;
  if (age !== undefined && (!Number.isInteger(age) || age < 1)) problems.push({ path: 'maxAgeDays', message: 'must be a whole number ≥ 1' });
  if (!problems.length && !hasRetentionRule(policy)) {
    problems.push({ path: '', message: 'needs at least one rule: a keepLast/keepHourly/keepDaily/keepWeekly/keepMonthly/keepYearly above 0, or maxAgeDays' });
  }
  return problems;
}

interface LocalTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  /** Minutes east of UTC at that instant. */
  offsetMinutes: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timezone: string): Intl.DateTimeFormat {
  let f = formatters.get(timezone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timezone, f);
  }
  return f;
}

/** Wall-clock fields of an instant in a time zone. */
export function localTime(at: Date, timezone: string): LocalTime {
  const parts: Record<string, number> = {};
  for (const p of formatter(timezone).formatToParts(at)) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  const [year, month, day, hour, minute, second] = [parts.year!, parts.month!, parts.day!, parts.hour!, parts.minute!, parts.second!];
  const asUtc = Date.UTC(year, month - 1, day, hour, minute, second);
  const offsetMinutes = Math.round((asUtc - Math.floor(at.getTime() / 1000) * 1000) / 60_000);
  return { year, month, day, hour, offsetMinutes };
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** ISO 8601 week-numbering year and week of a calendar date. */
export function isoWeek(year: number, month: number, day: number): { year: number; week: number } {
  const date = new Date(Date.UTC(year, month - 1, day));
  const weekday = date.getUTCDay() || 7;
  date.setUTCDate(date.getUTCDate() + 4 - weekday); // the Thursday of the same week decides the year
  const isoYear = date.getUTCFullYear();
  const week = Math.ceil(((date.getTime() - Date.UTC(isoYear, 0, 1)) / DAY_MS + 1) / 7);
  return { year: isoYear, week };
}

/** The bucket of an instant for a calendar rule, in the given zone. */
export function bucketOf(rule: Exclude<KeepRule, 'last'>, at: Date, timezone: string): string {
  const t = localTime(at, timezone);
  switch (rule) {
    case 'hourly': {
      const sign = t.offsetMinutes < 0 ? '-' : '+';
      const off = Math.abs(t.offsetMinutes);
      return `${t.year}-${pad(t.month)}-${pad(t.day)}T${pad(t.hour)}${sign}${pad(Math.floor(off / 60))}:${pad(off % 60)}`;
    }
    case 'daily':
      return `${t.year}-${pad(t.month)}-${pad(t.day)}`;
    case 'weekly': {
      const w = isoWeek(t.year, t.month, t.day);
      return `${w.year}-W${pad(w.week)}`;
    }
    case 'monthly':
      return `${t.year}-${pad(t.month)}`;
    case 'yearly':
      return String(t.year);
  }
}

/** Newest first; ids (ULIDs) break ties so the order is total and repeatable. */
function newestFirst(a: RetentionCandidate, b: RetentionCandidate): number {
  return b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

/**
 * Decides what the policy keeps and drops. Pass only the backups retention may act on (the
 * schedule's `completed` ones): anything not passed is neither kept nor dropped.
 */
export function planRetention(backups: readonly RetentionCandidate[], policy: RetentionPolicy, options: RetentionOptions): RetentionPlan {
  const now = (options.clock ?? (() => new Date()))();
  const sorted = [...backups].sort(newestFirst);
  const maxAgeMs = policy.maxAgeDays !== undefined ? policy.maxAgeDays * DAY_MS : null;
  const rules = KEEP_RULES.filter((r) => (policy[POLICY_FIELD[r]] ?? 0) > 0);
  const remaining = new Map(rules.map((r) => [r, policy[POLICY_FIELD[r]]!]));
  const lastBucket = new Map<KeepRule, string>();

  const plan: RetentionPlan = { keep: [], drop: [] };
  for (const backup of sorted) {
    const reasons: KeepReason[] = [];
    for (const rule of rules) {
      const left = remaining.get(rule)!;
      if (left <= 0) continue;
      const bucket = rule === 'last' ? `#${policy.keepLast! - left + 1}` : bucketOf(rule, backup.createdAt, options.timezone);
      // restic: a rule keeps the newest backup of each bucket it has not yet kept one for.
      if (rule !== 'last' && lastBucket.get(rule) === bucket) continue;
      reasons.push({ rule, bucket });
      lastBucket.set(rule, bucket);
      remaining.set(rule, left - 1);
    }
    const expiresAt = maxAgeMs !== null ? new Date(backup.createdAt.getTime() + maxAgeMs) : null;
    if (expiresAt && expiresAt.getTime() <= now.getTime()) {
      plan.drop.push({
        id: backup.id,
        createdAt: backup.createdAt,
        reason: `older than maxAgeDays (${policy.maxAgeDays} days; expired ${expiresAt.toISOString()})`,
      });
      continue;
    }
    if (rules.length === 0) reasons.push({ rule: 'max-age', bucket: `younger than ${policy.maxAgeDays} days` });
    if (reasons.length) plan.keep.push({ id: backup.id, createdAt: backup.createdAt, reasons, expiresAt });
    else
      plan.drop.push({
        id: backup.id,
        createdAt: backup.createdAt,
        reason: 'not kept by any rule (its buckets already have a newer backup, or the rules are used up)',
      });
  }
  return plan;
}
