/** Keyring and sealing (issue 14): pure crypto logic. */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { Keyring, openFrame, openIndexStream, sealFrame, sealIndexStream, TAG_BYTES } from '@cairn/core';

const keyB64 = () => randomBytes(32).toString('base64');

describe('keyring', () => {
  it('wraps under the active (first) key and unwraps with whichever key the wrap names', () => {
    const ring = Keyring.parse(`old:${keyB64()}`)!;
    const { key, encryption } = ring.newDataKey('b1');
    expect(encryption).toMatchObject({ mode: 'aes-256-gcm', keyId: 'old' });
    expect(encryption.wrappedKey).not.toContain(key.toString('base64'));
    expect(ring.unwrap(encryption, 'b1')).toEqual(key);
    // Bound to the backup: another backup's row cannot borrow it.
    expect(() => ring.unwrap(encryption, 'b2')).toThrow(/does not unwrap/);
  });

  it('a key missing from the ring fails naming its id; a rotation re-wraps without touching the data key', () => {
    const oldKey = keyB64();
    const a = Keyring.parse(`old:${oldKey}`)!;
    const { key, encryption } = a.newDataKey('b1');
    const b = Keyring.parse(`new:${keyB64()},old:${oldKey}`)!;
    expect(b.activeId).toBe('new');
    const rewrapped = b.wrap(b.unwrap(encryption, 'b1'), 'b1');
    expect(rewrapped.keyId).toBe('new');
    const onlyNew = Keyring.parse(`new:${(b as unknown as { keys: Map<string, Buffer> }).keys.get('new')!.toString('base64')}`)!;
    expect(onlyNew.unwrap(rewrapped, 'b1')).toEqual(key);
    expect(() => onlyNew.unwrap(encryption, 'b1')).toThrow(/master key old, which is not in CAIRN_MASTER_KEYS/);
  });
});

describe('sealed frames', () => {
  const key = randomBytes(32);
  const plain = randomBytes(1000);

  it('open only at their own offset, object and last flag', () => {
    const sealed = sealFrame(key, 'b1', 4096, plain, false);
    expect(sealed.length).toBe(plain.length + TAG_BYTES);
    expect(openFrame(key, 'b1', 4096, sealed, false)).toEqual(plain);
    expect(() => openFrame(key, 'b1', 8192, sealed, false)).toThrow(/fails authentication/); // moved
    expect(() => openFrame(key, 'b2', 4096, sealed, false)).toThrow(/fails authentication/); // another backup's
    expect(() => openFrame(key, 'b1', 4096, sealed, true)).toThrow(/fails authentication/); // presented as the last
    const flipped = Buffer.from(sealed);
    flipped[10]! ^= 1;
    expect(() => openFrame(key, 'b1', 4096, flipped, false)).toThrow(/fails authentication/);
  });

  it('a sealed index opens whole, and fails when truncated or altered', async () => {
    const index = randomBytes(3 * 1024 * 1024 + 17);
    const sealed = await buffer(Readable.from([index]).pipe(sealIndexStream(key, 'b1')));
    expect((await buffer(Readable.from([sealed]).pipe(openIndexStream(key, 'b1')))).equals(index)).toBe(true);
    const firstChunk = 4 + sealed.readUInt32BE(0);
    await expect(buffer(Readable.from([sealed.subarray(0, firstChunk)]).pipe(openIndexStream(key, 'b1')))).rejects.toThrow(/is truncated/);
    const altered = Buffer.from(sealed);
    altered[100]! ^= 1;
    await expect(buffer(Readable.from([altered]).pipe(openIndexStream(key, 'b1')))).rejects.toThrow(/fails authentication/);
    await expect(buffer(Readable.from([sealed]).pipe(openIndexStream(key, 'b2')))).rejects.toThrow(/fails authentication/);
  });
});
