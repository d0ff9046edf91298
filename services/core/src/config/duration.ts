/**
 * Durations in configuration: a whole number with a unit, `90s`, `30m`, `24h`, `7d` (several may
 * follow each other: `1h30m`), or plain milliseconds. Used by VERIFY_EVERY (issue 14).
 */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds of a duration, or null when it does not parse. */
export function parseDuration(text: string): number | null {
  const v = text.trim().toLowerCase();
  if (/^\d+$/.test(v)) return Number(v);
  if (!/^(\d+(ms|s|m|h|d))+$/.test(v)) return null;
  let ms = 0;
  for (const m of v.matchAll(/(\d+)(ms|s|m|h|d)/g)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  return Number.isSafeInteger(ms) ? ms : null;
}
