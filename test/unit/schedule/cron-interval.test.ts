import { describe, expect, it } from 'vitest';
import { cronIntervalSeconds } from '@cairn/core';

const from = new Date('2026-12-01T12:00:00Z');

describe('cronIntervalSeconds', () => {
  it('is the longest gap between the next runs', () => {
    expect(cronIntervalSeconds('0 * * * *', 'UTC', from)).toBe(3600);
    expect(cronIntervalSeconds('@daily', 'Europe/Berlin', from)).toBe(86_400);
    // Mondays and Wednesdays: 2 days, then 5.
    expect(cronIntervalSeconds('0 2 * * 1,3', 'UTC', from)).toBe(5 * 86_400);
    expect(cronIntervalSeconds('*/10 * * * * *', 'UTC', from)).toBe(10);
  });

  it('is null for an expression it cannot read', () => {
    expect(cronIntervalSeconds('not a cron', 'UTC', from)).toBeNull();
  });
});
