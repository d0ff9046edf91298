/** relayRequestErrors: the jobs sharing the store thread's store relay its failed requests, each failure once. */
import { describe, expect, it } from 'vitest';
import type { ObjectStore } from '@cairn/core/storage/object-store.ts';
import { relayRequestErrors } from '@cairn/core/storage/store-spec.ts';

type E = { operation: string; kind: string };

/** A store whose client reports failures to the listeners added with onRequestError. */
function failingStore(): { store: ObjectStore; fail: (e: E) => void } {
  const listeners: ((e: E) => void)[] = [];
  const store = { onRequestError: (l: (e: E) => void) => listeners.push(l) } as unknown as ObjectStore;
  return {
    store,
    fail: (e) => {
      for (const l of listeners) l(e);
    },
  };
}

describe('relayRequestErrors', () => {
  it('gives each failure to one running job, the earliest, and to the next once that one is done', () => {
    const { store, fail } = failingStore();
    const a: E[] = [];
    const b: E[] = [];
    const stopA = relayRequestErrors(store, (e: E) => a.push(e));
    const stopB = relayRequestErrors(store, (e: E) => b.push(e));
    fail({ operation: 'UploadPart', kind: 'throttled' });
    expect(a).toEqual([{ operation: 'UploadPart', kind: 'throttled' }]);
    expect(b).toEqual([]);
    stopA();
    fail({ operation: 'GetObject', kind: 'network' });
    expect(a).toHaveLength(1);
    expect(b).toEqual([{ operation: 'GetObject', kind: 'network' }]);
    stopB();
    // Nobody relays: the failure is dropped, not thrown.
    expect(() => fail({ operation: 'GetObject', kind: 'server' })).not.toThrow();
  });

  it('a store without request errors (the filesystem one) needs no relay', () => {
    const stop = relayRequestErrors({} as ObjectStore, () => {
      throw new Error('never called');
    });
    expect(stop).toBeTypeOf('function');
    stop();
  });
});
