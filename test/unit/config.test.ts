import { describe, expect, it } from 'vitest';
import { CairnError, loadConfig } from '@cairn/core';

describe('configuration', () => {
  it('loads the local defaults', () => {
    const config = loadConfig({});
    expect(config.COMPRESSION).toBe('zstd');
    expect(config.WORKER_CONCURRENCY).toBe(2);
  });

  it('refuses CAIRN_MASTER_KEY while encryption at rest is not implemented (nothing would be encrypted)', () => {
    const err = (() => {
      try {
        loadConfig({ CAIRN_MASTER_KEY: Buffer.alloc(32, 7).toString('base64') });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(CairnError);
    expect((err as CairnError).message).toMatch(/CAIRN_MASTER_KEY: encryption at rest is not implemented yet/);
  });

  it('reports every bad variable at once', () => {
    expect(() => loadConfig({ PORT: 'x', COMPRESSION: 'lz4' })).toThrow(/PORT: [\s\S]*COMPRESSION: /);
  });
});
