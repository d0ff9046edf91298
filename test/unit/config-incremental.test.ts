import { describe, expect, it } from 'vitest';
import { loadConfig } from '@cairn/core';

describe('incremental backup settings', () => {
  it('default to a full backup every 7 and a 1% re-hash share', () => {
    const config = loadConfig({});
    expect(config.FULL_BACKUP_EVERY).toBe(7);
    expect(config.INCREMENTAL_REHASH_SHARE).toBe(0.01);
  });

  it('accept whole numbers from 1 and shares from 0 to 1', () => {
    expect(loadConfig({ FULL_BACKUP_EVERY: '1', INCREMENTAL_REHASH_SHARE: '0' })).toMatchObject({ FULL_BACKUP_EVERY: 1, INCREMENTAL_REHASH_SHARE: 0 });
    expect(loadConfig({ FULL_BACKUP_EVERY: '30', INCREMENTAL_REHASH_SHARE: '1' })).toMatchObject({ FULL_BACKUP_EVERY: 30, INCREMENTAL_REHASH_SHARE: 1 });
    expect(loadConfig({ INCREMENTAL_REHASH_SHARE: '0.25' }).INCREMENTAL_REHASH_SHARE).toBe(0.25);
    expect(loadConfig({ INCREMENTAL_REHASH_SHARE: '.5' }).INCREMENTAL_REHASH_SHARE).toBe(0.5);
  });

  it.each([
    ['FULL_BACKUP_EVERY', '0', /FULL_BACKUP_EVERY: must be between 1/],
    ['FULL_BACKUP_EVERY', '2.5', /FULL_BACKUP_EVERY: must be a whole number/],
    ['INCREMENTAL_REHASH_SHARE', '1.5', /INCREMENTAL_REHASH_SHARE: must be a number between 0 and 1/],
    ['INCREMENTAL_REHASH_SHARE', '-0.1', /INCREMENTAL_REHASH_SHARE: must be a number between 0 and 1/],
    ['INCREMENTAL_REHASH_SHARE', '1%', /INCREMENTAL_REHASH_SHARE: must be a number between 0 and 1/],
  ])('refuse %s=%s', (name, value, message) => {
    expect(() => loadConfig({ [name]: value })).toThrow(message);
  });
});
