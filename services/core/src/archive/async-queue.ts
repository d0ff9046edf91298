/** A FIFO between a producer (message handlers) and one async consumer loop. */
export class AsyncQueue<T> {
  private readonly items: T[] = [];
  private waiter: ((v: IteratorResult<T>) => void) | undefined;
  private failWaiter: ((e: unknown) => void) | undefined;
  private ended = false;
  private error: unknown;

  get length(): number {
    return this.items.length;
  }

  push(item: T): void {
    if (this.ended) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      this.failWaiter = undefined;
      w({ value: item, done: false });
    } else {
      this.items.push(item);
    }
  }

  end(): void {
    this.ended = true;
    if (this.waiter && this.items.length === 0) {
      const w = this.waiter;
      this.waiter = undefined;
      this.failWaiter = undefined;
      w({ value: undefined, done: true });
    }
  }

  fail(err: unknown): void {
    if (this.error !== undefined) return;
    this.error = err ?? new Error('queue failed');
    this.ended = true;
    this.items.length = 0;
    if (this.failWaiter) {
      const f = this.failWaiter;
      this.waiter = undefined;
      this.failWaiter = undefined;
      f(this.error);
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.error !== undefined) return Promise.reject(this.error);
    const item = this.items.shift();
    if (item !== undefined) return Promise.resolve({ value: item, done: false });
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = resolve;
      this.failWaiter = reject;
    });
  }
}

/**
 * Wakes one waiting loop (a sender held to a credit window): until() re-checks its condition
 * each time notify() is called, from a message handler or a failure.
 */
export class Wakeup {
  private wake: (() => void) | undefined;

  notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Resolves once `ready()` is true; rejects with what it throws. */
  async until(ready: () => boolean): Promise<void> {
    while (!ready()) await new Promise<void>((resolve) => (this.wake = resolve));
  }
}
