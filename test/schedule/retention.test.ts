import { describe, expect, it } from 'vitest';
import { bucketOf, isoWeek, planRetention, retentionPolicyProblems, type RetentionCandidate, type RetentionPolicy } from '@cairn/core';

const HOUR = 3600_000;
const DAY = 24 * HOUR;

/** Backups named by their UTC creation time, so expectations read as times. */
function at(...isos: string[]): RetentionCandidate[] {
  return isos.map((s) => ({ id: new Date(s).toISOString(), createdAt: new Date(s) }));
}

function series(startIso: string, count: number, stepMs: number): RetentionCandidate[] {
  const start = Date.parse(startIso);
  return Array.from({ length: count }, (_, i) => {
    const d = new Date(start + i * stepMs);
    return { id: d.toISOString(), createdAt: d };
  });
}

const iso = (s: string) => new Date(s).toISOString();

interface Case {
  name: string;
  backups: RetentionCandidate[];
  policy: RetentionPolicy;
  timezone: string;
  now: string;
  keep: string[];
}

const cases: Case[] = [
  {
    name: 'keepLast keeps the n newest',
    backups: series('2024-05-01T00:00:00Z', 10, HOUR),
    policy: { keepLast: 3 },
    timezone: 'UTC',
    now: '2024-05-02T00:00:00Z',
    keep: ['2024-05-01T09:00:00Z', '2024-05-01T08:00:00Z', '2024-05-01T07:00:00Z'],
  },
  {
    name: 'keepHourly keeps the newest of each of the n latest hours',
    backups: series('2024-05-01T10:00:00Z', 9, 20 * 60_000), // 10:00 … 12:40
    policy: { keepHourly: 2 },
    timezone: 'UTC',
    now: '2024-05-01T13:00:00Z',
    keep: ['2024-05-01T12:40:00Z', '2024-05-01T11:40:00Z'],
  },
  {
    name: 'keepDaily counts days that have a backup (gaps are skipped, as in restic)',
    backups: at('2024-05-10T12:00:00Z', '2024-05-08T12:00:00Z', '2024-05-08T06:00:00Z', '2024-05-01T12:00:00Z', '2024-04-20T12:00:00Z'),
    policy: { keepDaily: 3 },
    timezone: 'UTC',
    now: '2024-05-11T00:00:00Z',
    keep: ['2024-05-10T12:00:00Z', '2024-05-08T12:00:00Z', '2024-05-01T12:00:00Z'],
  },
  {
    // Backups at 12:00 and 23:30 New York time around the start of DST (2024-03-10). In New York
    // the 23:30 backup is the newest of its local day; in UTC it belongs to the next day.
    name: 'keepDaily uses the local day of the schedule time zone across spring-forward',
    backups: at(
      '2024-03-08T17:00:00Z', // 03-08 12:00 EST
      '2024-03-09T04:30:00Z', // 03-08 23:30 EST
      '2024-03-09T17:00:00Z', // 03-09 12:00 EST
      '2024-03-10T04:30:00Z', // 03-09 23:30 EST
      '2024-03-10T16:00:00Z', // 03-10 12:00 EDT
      '2024-03-11T03:30:00Z', // 03-10 23:30 EDT
      '2024-03-11T16:00:00Z', // 03-11 12:00 EDT
      '2024-03-12T03:30:00Z', // 03-11 23:30 EDT
    ),
    policy: { keepDaily: 3 },
    timezone: 'America/New_York',
    now: '2024-03-12T12:00:00Z',
    keep: ['2024-03-12T03:30:00Z', '2024-03-11T03:30:00Z', '2024-03-10T04:30:00Z'],
  },
  {
    name: 'the same history bucketed in UTC keeps other backups',
    backups: at('2024-03-10T04:30:00Z', '2024-03-10T16:00:00Z', '2024-03-11T03:30:00Z', '2024-03-11T16:00:00Z', '2024-03-12T03:30:00Z'),
    policy: { keepDaily: 3 },
    timezone: 'UTC',
    now: '2024-03-12T12:00:00Z',
    keep: ['2024-03-12T03:30:00Z', '2024-03-11T16:00:00Z', '2024-03-10T16:00:00Z'],
  },
  {
    // Europe/Berlin falls back on 2024-10-27 at 03:00 CEST → 02:00 CET: 02:xx local happens twice.
    name: 'keepHourly counts the repeated fall-back hour as two hours',
    backups: series('2024-10-26T23:00:00Z', 8, 30 * 60_000), // 01:00 CEST … 03:30 CET
    policy: { keepHourly: 3 },
    timezone: 'Europe/Berlin',
    now: '2024-10-27T06:00:00Z',
    keep: ['2024-10-27T02:30:00Z', '2024-10-27T01:30:00Z', '2024-10-27T00:30:00Z'],
  },
  {
    // Europe/Berlin springs forward on 2024-03-31: that local day has 23 hours.
    name: 'keepDaily across the 23-hour day of spring-forward',
    backups: series('2024-03-29T23:00:00Z', 71, HOUR), // local 03-30 00:00 CET … 04-01 23:00 CEST
    policy: { keepDaily: 3 },
    timezone: 'Europe/Berlin',
    now: '2024-04-02T00:00:00Z',
    keep: ['2024-04-01T21:00:00Z' /* 04-01 23:00 CEST */, '2024-03-31T21:00:00Z' /* 03-31 23:00 CEST */, '2024-03-30T22:00:00Z' /* 03-30 23:00 CET */],
  },
  {
    name: 'keepWeekly uses ISO weeks (Monday first; 2024-12-30 is in 2025-W01)',
    backups: series('2024-12-20T12:00:00Z', 17, DAY), // 12-20 … 01-05
    policy: { keepWeekly: 3 },
    timezone: 'UTC',
    now: '2025-01-06T00:00:00Z',
    keep: ['2025-01-05T12:00:00Z', '2024-12-29T12:00:00Z', '2024-12-22T12:00:00Z'],
  },
  {
    name: 'keepMonthly and keepYearly together',
    backups: Array.from({ length: 18 }, (_, m) => [1, 15].map((d) => new Date(Date.UTC(2023, m, d, 12))))
      .flat()
      .map((d) => ({ id: d.toISOString(), createdAt: d })),
    policy: { keepMonthly: 2, keepYearly: 2 },
    timezone: 'UTC',
    now: '2024-06-20T00:00:00Z',
    keep: ['2024-06-15T12:00:00Z', '2024-05-15T12:00:00Z', '2023-12-15T12:00:00Z'],
  },
  {
    name: 'maxAgeDays alone keeps what is younger; exactly maxAgeDays old is expired',
    backups: series('2024-05-01T00:00:00Z', 10, DAY),
    policy: { maxAgeDays: 7 },
    timezone: 'UTC',
    now: '2024-05-10T00:00:00Z',
    keep: [
      '2024-05-10T00:00:00Z',
      '2024-05-09T00:00:00Z',
      '2024-05-08T00:00:00Z',
      '2024-05-07T00:00:00Z',
      '2024-05-06T00:00:00Z',
      '2024-05-05T00:00:00Z',
      '2024-05-04T00:00:00Z',
    ],
  },
  {
    name: 'maxAgeDays is a hard limit over keep rules',
    backups: series('2024-05-01T12:00:00Z', 10, DAY),
    policy: { keepDaily: 30, maxAgeDays: 3 },
    timezone: 'UTC',
    now: '2024-05-11T00:00:00Z',
    keep: ['2024-05-10T12:00:00Z', '2024-05-09T12:00:00Z', '2024-05-08T12:00:00Z'],
  },
  {
    name: 'rules are a union: keepLast plus keepDaily',
    backups: series('2024-05-01T00:00:00Z', 72, HOUR),
    policy: { keepLast: 2, keepDaily: 3 },
    timezone: 'UTC',
    now: '2024-05-04T00:00:00Z',
    keep: ['2024-05-03T23:00:00Z', '2024-05-03T22:00:00Z', '2024-05-02T23:00:00Z', '2024-05-01T23:00:00Z'],
  },
  {
    name: 'nothing to do for an empty history',
    backups: [],
    policy: { keepLast: 3 },
    timezone: 'UTC',
    now: '2024-05-04T00:00:00Z',
    keep: [],
  },
];

describe('planRetention (table)', () => {
  it.each(cases)('$name', ({ backups, policy, timezone, now, keep }) => {
    // Input order must not matter.
    const shuffled = [...backups].sort((a, b) => ((a.id.length * 7 + a.id.charCodeAt(18)) % 5) - ((b.id.length * 7 + b.id.charCodeAt(18)) % 5));
    const plan = planRetention(shuffled, policy, { timezone, clock: () => new Date(now) });
    expect(plan.keep.map((k) => k.id)).toEqual(keep.map(iso));
    expect(plan.keep.length + plan.drop.length).toBe(backups.length);
    expect(new Set([...plan.keep, ...plan.drop].map((b) => b.id)).size).toBe(backups.length);
  });
});

describe('planRetention reasons and expiry', () => {
  it('lists every rule that keeps a backup, with its bucket', () => {
    const plan = planRetention(
      series('2024-05-01T00:00:00Z', 72, HOUR),
      { keepLast: 2, keepDaily: 3, keepWeekly: 1 },
      { timezone: 'UTC', clock: () => new Date('2024-05-04T00:00:00Z') },
    );
    expect(plan.keep[0]).toMatchObject({
      id: iso('2024-05-03T23:00:00Z'),
      reasons: [
        { rule: 'last', bucket: '#1' },
        { rule: 'daily', bucket: '2024-05-03' },
        { rule: 'weekly', bucket: '2024-W18' },
      ],
      expiresAt: null,
    });
    expect(plan.keep[1]!.reasons).toEqual([{ rule: 'last', bucket: '#2' }]);
    expect(plan.drop[0]).toMatchObject({ id: iso('2024-05-03T21:00:00Z'), reason: expect.stringMatching(/not kept by any rule/) });
  });

  it('sets expiresAt from maxAgeDays and says why old ones are dropped', () => {
    const plan = planRetention(
      at('2024-05-09T00:00:00Z', '2024-05-01T00:00:00Z'),
      { keepLast: 5, maxAgeDays: 7 },
      { timezone: 'UTC', clock: () => new Date('2024-05-10T00:00:00Z') },
    );
    expect(plan.keep).toEqual([
      {
        id: iso('2024-05-09T00:00:00Z'),
        createdAt: new Date('2024-05-09T00:00:00Z'),
        reasons: [{ rule: 'last', bucket: '#1' }],
        expiresAt: new Date('2024-05-16T00:00:00Z'),
      },
    ]);
    expect(plan.drop).toEqual([
      {
        id: iso('2024-05-01T00:00:00Z'),
        createdAt: new Date('2024-05-01T00:00:00Z'),
        reason: expect.stringMatching(/older than maxAgeDays \(7 days; expired 2024-05-08T00:00:00.000Z\)/),
      },
    ]);
  });

  it('names the max-age rule when it is the only one', () => {
    const plan = planRetention(at('2024-05-09T00:00:00Z'), { maxAgeDays: 7 }, { timezone: 'UTC', clock: () => new Date('2024-05-10T00:00:00Z') });
    expect(plan.keep[0]!.reasons).toEqual([{ rule: 'max-age', bucket: 'younger than 7 days' }]);
  });
});

describe('calendar buckets in a time zone', () => {
  it('the spring-forward day in Berlin holds 23 hourly backups', () => {
    const days = series('2024-03-29T23:00:00Z', 71, HOUR).map((b) => bucketOf('daily', b.createdAt, 'Europe/Berlin'));
    expect(days.filter((d) => d === '2024-03-31')).toHaveLength(23);
    expect(days.filter((d) => d === '2024-03-30')).toHaveLength(24);
  });

  it('hour buckets carry the offset, so the repeated hour is two buckets', () => {
    expect(bucketOf('hourly', new Date('2024-10-27T00:30:00Z'), 'Europe/Berlin')).toBe('2024-10-27T02+02:00');
    expect(bucketOf('hourly', new Date('2024-10-27T01:30:00Z'), 'Europe/Berlin')).toBe('2024-10-27T02+01:00');
    expect(bucketOf('hourly', new Date('2024-03-10T10:00:00Z'), 'Asia/Kolkata')).toBe('2024-03-10T15+05:30');
  });

  it.each([
    [2024, 12, 30, 2025, 1],
    [2021, 1, 3, 2020, 53],
    [2024, 5, 6, 2024, 19],
    [2026, 12, 31, 2026, 53],
  ])('ISO week of %i-%i-%i is %i-W%i', (y, m, d, wy, w) => expect(isoWeek(y, m, d)).toEqual({ year: wy, week: w }));
});

describe('retention policy validation', () => {
  it.each([
    [{}, ['']],
    [{ keepLast: 0, keepDaily: 0 }, ['']],
    [{ keepDaily: -1 }, ['keepDaily']],
    [{ keepDaily: 1.5, maxAgeDays: 0 }, ['keepDaily', 'maxAgeDays']],
  ] as [RetentionPolicy, string[]][])('%j → problems at %j', (policy, paths) => {
    expect(retentionPolicyProblems(policy).map((p) => p.path)).toEqual(paths);
  });

  it.each([{ keepLast: 1 }, { maxAgeDays: 1 }, { keepYearly: 10, keepLast: 0 }])('%j is valid', (policy) => {
    expect(retentionPolicyProblems(policy)).toEqual([]);
  });
});
