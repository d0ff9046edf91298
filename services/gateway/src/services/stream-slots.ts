import { CairnError } from '@cairn/core';

/**
 * Open progress streams per token (issue 17): one token cannot hold more than `limit` at once in
 * this gateway; the next one is refused (`limit`, 429) until one closes.
 */
export class StreamSlots {
  private readonly open = new Map<string, number>();

  constructor(readonly limit: number) {}

  /** Takes a slot for `tokenId`; the returned release gives it back (once, however often called). */
  acquire(tokenId: string): () => void {
    const held = this.open.get(tokenId) ?? 0;
    if (held >= this.limit) {
      throw new CairnError('limit', `this token already has ${held} progress streams open (limit ${this.limit}); close one first`, {
        details: { limit: this.limit, open: held },
      });
    }
    this.open.set(tokenId, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const now = (this.open.get(tokenId) ?? 1) - 1;
      if (now > 0) this.open.set(tokenId, now);
      else this.open.delete(tokenId);
    };
  }

  held(tokenId: string): number {
    return this.open.get(tokenId) ?? 0;
  }
}
