import { CronExpressionParser } from 'cron-parser';
import { CairnError } from '../errors.ts';

/**
 * Cron expressions of schedules (SPEC §9): five fields (minute hour day-of-month month
 * day-of-week) with numbers, ranges `1-5`, steps `*\/6` `1-5/2` `5/15`, lists `1,3,5`, month and
 * weekday names (`jan`, `mon-fri`), and the presets @hourly @daily @weekly @monthly. A leading
 * seconds field is accepted only with `allowSeconds` (tests fire every few seconds).
 *
 * Validation is our own so that each error names its field; the next run is computed by
 * cron-parser, the library BullMQ fires schedules with, so `nextRunAt` agrees with BullMQ.
 */

export type CronFieldName = 'second' | 'minute' | 'hour' | 'dayOfMonth' | 'month' | 'dayOfWeek';

export interface CronFieldError {
  /** The field at fault, or 'expression' for problems with the whole expression. */
  field: CronFieldName | 'expression';
  /** The field's text as given ('' for whole-expression problems). */
  value: string;
  message: string;
}

export interface ParsedCron {
  /** The expression as given, whitespace collapsed. */
  source: string;
  /** What BullMQ's job scheduler is given: presets expanded, names turned into numbers. */
  pattern: string;
  hasSeconds: boolean;
  /** The values each field allows (day-of-week 7 folded into 0). */
  values: Record<CronFieldName, number[]>;
}

export type CronParseResult = { ok: true; cron: ParsedCron } | { ok: false; errors: CronFieldError[] };

export interface CronOptions {
  /** Accept a 6-field expression whose first field is seconds (internal use and tests only). */
  allowSeconds?: boolean;
}

export const CRON_PRESETS: Readonly<Record<string, string>> = {
  '@hourly': '0 * * * *',
  '@daily': '0 0 * * *',
  '@weekly': '0 0 * * 0',
  '@monthly': '0 0 1 * *',
};

interface FieldSpec {
  name: CronFieldName;
  label: string;
  min: number;
  max: number;
  names?: readonly string[];
  /** Index of names[0]. */
  nameBase?: number;
}

const MONTH_NAMES = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'] as const;
const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;

const SECOND: FieldSpec = { name: 'second', label: 'second', min: 0, max: 59 };
const FIELDS: readonly FieldSpec[] = [
  { name: 'minute', label: 'minute', min: 0, max: 59 },
  { name: 'hour', label: 'hour', min: 0, max: 23 },
  { name: 'dayOfMonth', label: 'day-of-month', min: 1, max: 31 },
  { name: 'month', label: 'month', min: 1, max: 12, names: MONTH_NAMES, nameBase: 1 },
  // 7 is Sunday too, as in Vixie cron.
  { name: 'dayOfWeek', label: 'day-of-week', min: 0, max: 7, names: DAY_NAMES, nameBase: 0 },
];

export const CRON_FIELD_LABELS: Readonly<Record<CronFieldName, string>> = {
  second: 'second',
  minute: 'minute',
  hour: 'hour',
  dayOfMonth: 'day-of-month',
  month: 'month',
  dayOfWeek: 'day-of-week',
};

/** Days in each month, February counted as 29 (a leap year makes it reachable). */
const MONTH_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;

class FieldProblem extends Error {}

/** One list item's value: a number or (for month/day-of-week) a name. */
function parseValue(text: string, spec: FieldSpec): number {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n < spec.min || n > spec.max) throw new FieldProblem(`${n} is out of range ${spec.min}-${spec.max}`);
    return n;
  }
  if (spec.names && /^[a-z]{3}$/i.test(text)) {
    const i = spec.names.indexOf(text.toLowerCase() as never);
    if (i >= 0) return i + (spec.nameBase ?? 0);
  }
  if (/^\?$|^\d*L$|^\d+W$|^LW$|#/i.test(text)) {
    throw new FieldProblem(`"${text}" uses L, W, # or ?, which are not supported (use numbers, ranges, steps and lists)`);
  }
  const hint = spec.names ? ` or a name such as ${spec.names[0]}` : '';
  throw new FieldProblem(`"${text}" is not a number${hint}`);
}

/** Parses one field into its allowed values and its normalised text (names → numbers). */
function parseField(text: string, spec: FieldSpec): { values: Set<number>; normalised: string } {
  if (text === '') throw new FieldProblem('is empty');
  const values = new Set<number>();
  const parts: string[] = [];
  for (const item of text.split(',')) {
    if (item === '') throw new FieldProblem('has an empty list item');
    const slash = item.split('/');
    if (slash.length > 2) throw new FieldProblem(`"${item}" has more than one "/"`);
    const [base, stepText] = slash as [string, string | undefined];
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText)) throw new FieldProblem(`step "${stepText}" in "${item}" is not a whole number`);
      step = Number(stepText);
      const span = spec.max - spec.min + 1;
      if (step < 1 || step > span) throw new FieldProblem(`step ${step} in "${item}" must be between 1 and ${span}`);
    }
    let from: number;
    let to: number;
    let normalisedBase: string;
    if (base === '*') {
      [from, to] = [spec.min, spec.max];
      normalisedBase = '*';
    } else if (base.includes('-')) {
      const range = base.split('-');
      if (range.length !== 2 || range[0] === '' || range[1] === '') throw new FieldProblem(`"${base}" is not a range such as 1-5`);
      from = parseValue(range[0]!, spec);
      to = parseValue(range[1]!, spec);
      if (from > to) throw new FieldProblem(`range ${base} goes backwards (${from} > ${to})`);
      normalisedBase = `${from}-${to}`;
    } else {
      from = parseValue(base, spec);
      // `5/15` means "from 5 every 15" (Vixie cron); a plain value is just itself.
      to = stepText !== undefined ? spec.max : from;
      normalisedBase = String(from);
    }
    for (let v = from; v <= to; v += step) values.add(spec.name === 'dayOfWeek' && v === 7 ? 0 : v);
    parts.push(stepText !== undefined ? `${normalisedBase}/${step}` : normalisedBase);
  }
  return { values, normalised: parts.join(',') };
}

/** Parses and validates a cron expression; every bad field is reported, each naming its field. */
export function parseCron(expression: string, options: CronOptions = {}): CronParseResult {
  if (typeof expression !== 'string') return { ok: false, errors: [{ field: 'expression', value: '', message: 'must be a string' }] };
  const source = expression.trim().replace(/\s+/g, ' ');
  if (source === '') return { ok: false, errors: [{ field: 'expression', value: '', message: 'is empty' }] };
  if (source.startsWith('@')) {
    const pattern = CRON_PRESETS[source.toLowerCase()];
    if (!pattern) {
      return { ok: false, errors: [{ field: 'expression', value: source, message: `unknown preset ${source} (use ${Object.keys(CRON_PRESETS).join(', ')})` }] };
    }
    const parsed = parseCron(pattern);
    return parsed.ok ? { ok: true, cron: { ...parsed.cron, source: source.toLowerCase() } } : parsed;
  }

  const texts = source.split(' ');
  const hasSeconds = options.allowSeconds === true && texts.length === 6;
  const specs = hasSeconds ? [SECOND, ...FIELDS] : FIELDS;
  if (texts.length !== specs.length) {
    const expected = `5 fields (${FIELDS.map((f) => f.label).join(' ')})${options.allowSeconds ? ' or 6 with a leading second' : ''}`;
    return { ok: false, errors: [{ field: 'expression', value: source, message: `expected ${expected}, got ${texts.length}` }] };
  }

  const errors: CronFieldError[] = [];
  const values = { second: [0] } as Record<CronFieldName, number[]>;
  const normalised: string[] = [];
  specs.forEach((spec, i) => {
    const text = texts[i]!;
    try {
      const field = parseField(text, spec);
      values[spec.name] = [...field.values].sort((a, b) => a - b);
      normalised.push(field.normalised);
    } catch (err) {
      if (!(err instanceof FieldProblem)) throw err;
      errors.push({ field: spec.name, value: text, message: `${spec.label} field "${text}": ${err.message}` });
    }
  });
  if (errors.length) return { ok: false, errors };

  // Day-of-month alone restricting the day (day-of-week `*`): a day no chosen month has never
  // comes (`0 0 31 4 *`). With both restricted cron fires on either, so it always fires.
  const domText = texts[hasSeconds ? 3 : 2]!;
  const dowText = texts[hasSeconds ? 5 : 4]!;
  if (!domText.startsWith('*') && dowText.startsWith('*')) {
    const reachable = values.month.some((m) => values.dayOfMonth.some((d) => d <= MONTH_DAYS[m - 1]!));
    if (!reachable) {
      errors.push({
        field: 'dayOfMonth',
        value: domText,
        message: `day-of-month field "${domText}": no chosen month has such a day, so the schedule would never fire`,
      });
      return { ok: false, errors };
    }
  }

  const pattern = normalised.join(' ');
  // Last line of defence: the library BullMQ uses must accept it and find a next run.
  try {
    CronExpressionParser.parse(pattern, { currentDate: new Date(), tz: 'UTC' }).next();
  } catch (err) {
    return { ok: false, errors: [{ field: 'expression', value: source, message: `cannot be scheduled: ${(err as Error).message}` }] };
  }
  return { ok: true, cron: { source, pattern, hasSeconds, values } };
}

/** One line naming every bad field. */
export function describeCronErrors(errors: readonly CronFieldError[]): string {
  return errors.map((e) => (e.field === 'expression' ? `cron expression ${e.message}` : e.message)).join('; ');
}

/** Parses or throws CairnError('validation') whose details name the `cron` field (`path`). */
export function assertCron(expression: string, options: CronOptions & { path?: string } = {}): ParsedCron {
  const result = parseCron(expression, options);
  if (result.ok) return result.cron;
  const path = options.path ?? 'cron';
  throw new CairnError('validation', `invalid cron: ${describeCronErrors(result.errors)}`, {
    details: result.errors.map((e) => ({ path, message: e.field === 'expression' ? `cron expression ${e.message}` : e.message, field: e.field })),
  });
}

/**
 * The name of an IANA time zone as stored (`europe/berlin` → `Europe/Berlin`; other valid names,
 * aliases included, as given), or null when the runtime's time zone database does not know it. Fixed offsets such as `+01:00`
 * are refused: they have no DST rules, so "daily in this zone" would drift.
 */
export function canonicalTimeZone(tz: string): string | null {
  if (typeof tz !== 'string' || tz.length === 0 || tz.length > 64 || !/^[A-Za-z][A-Za-z0-9_+\-/]*$/.test(tz)) return null;
  try {
    const resolved = new Intl.DateTimeFormat('en-US', { timeZone: tz }).resolvedOptions().timeZone;
    // Fix the case only: ICU maps some current names to older aliases, which would surprise users.
    return resolved.toLowerCase() === tz.toLowerCase() ? resolved : tz;
  } catch {
    return null;
  }
}

export function isValidTimeZone(tz: string): boolean {
  return canonicalTimeZone(tz) !== null;
}

export function assertTimeZone(tz: string, path = 'timezone'): string {
  const canonical = canonicalTimeZone(tz);
  if (canonical) return canonical;
  throw new CairnError('validation', `invalid timezone: ${JSON.stringify(tz)} is not an IANA time zone such as Europe/Berlin or UTC`, {
    details: [{ path, message: `${JSON.stringify(tz)} is not an IANA time zone such as Europe/Berlin or UTC` }],
  });
}

/** The next `count` fire times strictly after `from`, in the given zone. */
export function nextRunTimes(cron: string | ParsedCron, timezone: string, from: Date, count = 1): Date[] {
  const pattern = typeof cron === 'string' ? assertCron(cron, { allowSeconds: true }).pattern : cron.pattern;
  const it = CronExpressionParser.parse(pattern, { currentDate: from, tz: timezone });
  const out: Date[] = [];
  for (let i = 0; i < count; i++) out.push(new Date(it.next().getTime()));
  return out;
}

/** The next fire time strictly after `from`, or null when there is none. */
export function nextRunAt(cron: string | ParsedCron, timezone: string, from: Date): Date | null {
  try {
    return nextRunTimes(cron, timezone, from, 1)[0] ?? null;
  } catch {
    return null;
  }
}

/**
 * The longest gap, in seconds, between the next `runs` fire times after `from`: how long a
 * schedule may go without firing (alerting: "no successful backup within 1.5 × the interval").
 * The longest, not the first, so that `0 2 * * 1,3` is judged by its 5-day gap. Null when the
 * expression has fewer than two future runs or cannot be read.
 */
export function cronIntervalSeconds(cron: string | ParsedCron, timezone: string, from: Date, runs = 8): number | null {
  let times: Date[];
  try {
    times = nextRunTimes(cron, timezone, from, runs);
  } catch {
    return null;
  }
  let longest = 0;
  for (let i = 1; i < times.length; i++) longest = Math.max(longest, times[i]!.getTime() - times[i - 1]!.getTime());
  return longest > 0 ? longest / 1000 : null;
}
