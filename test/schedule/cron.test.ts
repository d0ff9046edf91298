import { describe, expect, it } from 'vitest';
import { CairnError, assertCron, canonicalTimeZone, nextRunAt, nextRunTimes, parseCron } from '@cairn/core';
import { CreateScheduleBody, UpdateScheduleBody } from '@cairn/core/api/schedules.schemas.ts';

describe('parseCron: accepted expressions', () => {
  const cases: [string, string, Partial<Record<string, number[]>>?][] = [
    ['* * * * *', '* * * * *'],
    ['0 2 * * *', '0 2 * * *', { minute: [0], hour: [2] }],
    ['*/15 * * * *', '*/15 * * * *', { minute: [0, 15, 30, 45] }],
    ['0 9-17/2 * * 1-5', '0 9-17/2 * * 1-5', { hour: [9, 11, 13, 15, 17], dayOfWeek: [1, 2, 3, 4, 5] }],
    ['5,35 0 1,15 * *', '5,35 0 1,15 * *', { minute: [5, 35], dayOfMonth: [1, 15] }],
    ['5/20 * * * *', '5/20 * * * *', { minute: [5, 25, 45] }],
    ['0 0 * JAN,jul Mon-FRI', '0 0 * 1,7 1-5', { month: [1, 7], dayOfWeek: [1, 2, 3, 4, 5] }],
    ['0 0 * * 7', '0 0 * * 7', { dayOfWeek: [0] }],
    ['0 0 * * 5-7', '0 0 * * 5-7', { dayOfWeek: [0, 5, 6] }],
    ['  0   3  *  *  * ', '0 3 * * *'],
    ['0 0 29 2 *', '0 0 29 2 *'],
    ['@hourly', '0 * * * *'],
    ['@daily', '0 0 * * *'],
    ['@WEEKLY', '0 0 * * 0'],
    ['@monthly', '0 0 1 * *'],
  ];
  it.each(cases)('%s → %s', (expr, pattern, values) => {
    const r = parseCron(expr);
    expect(r.ok, JSON.stringify(r)).toBe(true);
    if (!r.ok) return;
    expect(r.cron.pattern).toBe(pattern);
    expect(r.cron.hasSeconds).toBe(false);
    for (const [field, v] of Object.entries(values ?? {})) expect(r.cron.values[field as 'minute']).toEqual(v);
  });

  it('accepts a leading seconds field only when allowed', () => {
    expect(parseCron('*/2 * * * * *').ok).toBe(false);
    const r = parseCron('*/2 * * * * *', { allowSeconds: true });
    expect(r.ok && r.cron.hasSeconds && r.cron.pattern).toBe('*/2 * * * * *');
  });
});

describe('parseCron: each error names the wrong field', () => {
  const cases: [string, string, RegExp][] = [
    ['60 * * * *', 'minute', /minute field "60": 60 is out of range 0-59/],
    ['0 24 * * *', 'hour', /hour field "24": 24 is out of range 0-23/],
    ['0 0 0 * *', 'dayOfMonth', /day-of-month field "0": 0 is out of range 1-31/],
    ['0 0 32 * *', 'dayOfMonth', /day-of-month field "32"/],
    ['0 0 * 13 *', 'month', /month field "13": 13 is out of range 1-12/],
    ['0 0 * foo *', 'month', /month field "foo": "foo" is not a number or a name such as jan/],
    ['0 0 * * 8', 'dayOfWeek', /day-of-week field "8": 8 is out of range 0-7/],
    ['0 0 * * sunday', 'dayOfWeek', /day-of-week field "sunday"/],
    ['*/0 * * * *', 'minute', /step 0 in "\*\/0" must be between 1 and 60/],
    ['*/x * * * *', 'minute', /step "x" in "\*\/x" is not a whole number/],
    ['5-1 * * * *', 'minute', /range 5-1 goes backwards/],
    ['1-2-3 * * * *', 'minute', /"1-2-3" is not a range/],
    ['1,,2 * * * *', 'minute', /empty list item/],
    ['1/2/3 * * * *', 'minute', /more than one "\/"/],
    ['0 0 L * *', 'dayOfMonth', /L, W, # or \?, which are not supported/],
    ['0 0 ? * *', 'dayOfMonth', /not supported/],
    ['0 0 * * 1#2', 'dayOfWeek', /not supported/],
    ['0 0 31 4,6 *', 'dayOfMonth', /no chosen month has such a day/],
    ['0 0 30 2 *', 'dayOfMonth', /never fire/],
    ['* * * *', 'expression', /expected 5 fields \(minute hour day-of-month month day-of-week\), got 4/],
    ['* * * * * *', 'expression', /got 6/],
    ['', 'expression', /is empty/],
    ['@yearly', 'expression', /unknown preset @yearly \(use @hourly, @daily, @weekly, @monthly\)/],
  ];
  it.each(cases)('%j → %s', (expr, field, message) => {
    const r = parseCron(expr);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors[0]!.field).toBe(field);
    expect(r.errors[0]!.message).toMatch(message);
  });

  it('reports every bad field at once', () => {
    const r = parseCron('61 25 * 13 *');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map((e) => e.field)).toEqual(['minute', 'hour', 'month']);
  });

  it('assertCron throws a validation CairnError naming the cron path and the field', () => {
    try {
      assertCron('0 0 * * 9');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(CairnError);
      expect((err as CairnError).code).toBe('validation');
      expect((err as CairnError).message).toMatch(/day-of-week field "9"/);
      expect((err as CairnError).details).toEqual([{ path: 'cron', field: 'dayOfWeek', message: expect.stringMatching(/out of range 0-7/) }]);
    }
  });
});

describe('next run times', () => {
  it('is strictly after the given instant', () => {
    expect(nextRunAt('0 * * * *', 'UTC', new Date('2024-03-30T12:00:00Z'))?.toISOString()).toBe('2024-03-30T13:00:00.000Z');
  });

  it('reads the expression in the schedule time zone, across a DST change', () => {
    // Europe/Berlin switches to CEST (UTC+2) on 2024-03-31 at 02:00 local.
    const runs = nextRunTimes('0 3 * * *', 'Europe/Berlin', new Date('2024-03-29T12:00:00Z'), 3).map((d) => d.toISOString());
    expect(runs).toEqual(['2024-03-30T02:00:00.000Z', '2024-03-31T01:00:00.000Z', '2024-04-01T01:00:00.000Z']);
  });

  it('expands presets and names', () => {
    expect(nextRunAt('@weekly', 'America/New_York', new Date('2024-03-06T00:00:00Z'))?.toISOString()).toBe('2024-03-10T05:00:00.000Z');
    expect(nextRunAt('30 6 * * sat', 'UTC', new Date('2024-03-06T00:00:00Z'))?.toISOString()).toBe('2024-03-09T06:30:00.000Z');
  });
});

describe('time zones', () => {
  it.each([
    ['Europe/Berlin', 'Europe/Berlin'],
    ['europe/berlin', 'Europe/Berlin'],
    ['UTC', 'UTC'],
    ['US/Eastern', 'US/Eastern'],
    ['America/Argentina/Buenos_Aires', 'America/Argentina/Buenos_Aires'],
  ])('%s is canonical %s', (tz, canonical) => expect(canonicalTimeZone(tz)).toBe(canonical));

  it.each(['Mars/Olympus', '+01:00', 'UTC+1', '', 'Europe/Berlin; drop'])('%j is refused', (tz) => expect(canonicalTimeZone(tz)).toBeNull());
});

describe('request schemas', () => {
  const good = { cron: '0 2 * * *', timezone: 'Europe/Berlin', retention: { keepDaily: 7, keepWeekly: 4 } };

  it('accept a valid create body', () => {
    expect(CreateScheduleBody.safeParse({ ...good, volumes: ['data'], enabled: false }).success).toBe(true);
  });

  it('name every bad field, with the cron field in the message', () => {
    const r = CreateScheduleBody.safeParse({
      cron: '0 2 * * 9',
      timezone: 'Nowhere/City',
      retention: { keepDaily: -1, maxAgeDays: 0 },
      volumes: ['a', 'a'],
      extra: 1,
    });
    expect(r.success).toBe(false);
    const issues = r.error!.issues.map((i) => ({ path: i.path.join('.'), message: i.message, code: i.code }));
    expect(issues).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: 'cron', message: expect.stringMatching(/day-of-week field "9"/) }),
        expect.objectContaining({ path: 'timezone' }),
        expect.objectContaining({ path: 'retention.keepDaily' }),
        expect.objectContaining({ path: 'retention.maxAgeDays' }),
        expect.objectContaining({ path: 'volumes.1', message: 'duplicate volume a' }),
        expect.objectContaining({ code: 'unrecognized_keys' }),
      ]),
    );
  });

  it('refuse seconds fields through the API', () => {
    expect(CreateScheduleBody.safeParse({ ...good, cron: '*/5 * * * * *' }).success).toBe(false);
  });

  it('require at least one retention rule', () => {
    for (const retention of [{}, { keepLast: 0 }, { keepDaily: 0, keepWeekly: 0 }]) {
      const r = CreateScheduleBody.safeParse({ ...good, retention });
      expect(r.success, JSON.stringify(retention)).toBe(false);
      expect(r.error!.issues[0]!.message).toMatch(/at least one rule/);
    }
    expect(CreateScheduleBody.safeParse({ ...good, retention: { maxAgeDays: 30 } }).success).toBe(true);
    expect(CreateScheduleBody.safeParse({ ...good, retention: { keepLast: 1 } }).success).toBe(true);
  });

  it('update: all fields optional but at least one; volumes may be reset with null', () => {
    expect(UpdateScheduleBody.safeParse({}).success).toBe(false);
    expect(UpdateScheduleBody.safeParse({ enabled: false }).success).toBe(true);
    expect(UpdateScheduleBody.safeParse({ volumes: null }).success).toBe(true);
    expect(UpdateScheduleBody.safeParse({ cron: '99 * * * *' }).error!.issues[0]!.message).toMatch(/minute field "99"/);
  });
});
