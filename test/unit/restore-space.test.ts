import fs from 'node:fs';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { checkFreeSpace } from '@cairn/worker/node/restore.pipeline.ts';

describe('restore free-space check', () => {
  it('passes when the filesystem has room', async () => {
    await expect(checkFreeSpace(os.tmpdir(), 1024)).resolves.toBeUndefined();
  });

  it('fails early naming what is needed and what is available', async () => {
    const st = fs.statfsSync(os.tmpdir());
    const available = st.bavail * st.bsize;
    await expect(checkFreeSpace(os.tmpdir(), available + 1)).rejects.toMatchObject({
      code: 'insufficient-space',
      message: expect.stringMatching(/need [\d.]+ \w+, available [\d.]+ \w+/),
    });
  });
});
