import { describe, expect, it } from 'vitest';
import { type CairnError, loadConfig } from '@cairn/core';

describe('configuration', () => {
  it('loads the local defaults', () => {
    const config = loadConfig({});
    expect(config.COMPRESSION).toBe('zstd');
    expect(config.WORKER_CONCURRENCY).toBe(2);
    expect(config.WORKER_OPTIMIZE_FOR_SIZE).toBe(true);
  });

  it('reads WORKER_HEAP_GROWING_PERCENT as a whole number of percent, 100 by default, naming it when it is not one', () => {
    expect(loadConfig({}).WORKER_HEAP_GROWING_PERCENT).toBe(100);
    expect(loadConfig({ WORKER_HEAP_GROWING_PERCENT: '0' }).WORKER_HEAP_GROWING_PERCENT).toBe(0);
    expect(loadConfig({ WORKER_HEAP_GROWING_PERCENT: '100' }).WORKER_HEAP_GROWING_PERCENT).toBe(100);
    expect(() => loadConfig({ WORKER_HEAP_GROWING_PERCENT: '-5' })).toThrow(/WORKER_HEAP_GROWING_PERCENT/);
    expect(() => loadConfig({ WORKER_HEAP_GROWING_PERCENT: 'lots' })).toThrow(/WORKER_HEAP_GROWING_PERCENT/);
  });

  it('reads WORKER_OPTIMIZE_FOR_SIZE as a boolean, naming it when it is not one', () => {
    expect(loadConfig({ WORKER_OPTIMIZE_FOR_SIZE: 'false' }).WORKER_OPTIMIZE_FOR_SIZE).toBe(false);
    expect(() => loadConfig({ WORKER_OPTIMIZE_FOR_SIZE: 'maybe' })).toThrow(/WORKER_OPTIMIZE_FOR_SIZE/);
  });

  it('refuses CAIRN_MASTER_KEY (replaced by the CAIRN_MASTER_KEYS keyring) and names what is wrong in a keyring, never a key', () => {
    const err = (env: Record<string, string>): unknown => {
      try {
        loadConfig(env);
      } catch (e) {
        return e;
      }
      return undefined;
    };
    expect((err({ CAIRN_MASTER_KEY: Buffer.alloc(32, 7).toString('base64') }) as CairnError).message).toMatch(
      /CAIRN_MASTER_KEY is replaced by CAIRN_MASTER_KEYS/,
    );
    const short = Buffer.alloc(16, 9).toString('base64');
    const bad = err({ CAIRN_MASTER_KEYS: `k1:${short}` }) as CairnError;
    expect(bad.message).toMatch(/key k1 must be 32 bytes/);
    expect(bad.message).not.toContain(short);
    expect((err({ CAIRN_MASTER_KEYS: 'no-colon' }) as CairnError).message).toMatch(/entry 1 must be <id>:<base64 key>/);
    const good = loadConfig({ CAIRN_MASTER_KEYS: `a:${Buffer.alloc(32, 1).toString('base64')},b:${Buffer.alloc(32, 2).toString('base64')}` });
    expect(good.CAIRN_MASTER_KEYS).toContain('a:');
  });

  it('reports every bad variable at once', () => {
    expect(() => loadConfig({ PORT: 'x', COMPRESSION: 'lz4' })).toThrow(/PORT: [\s\S]*COMPRESSION: /);
  });
});
