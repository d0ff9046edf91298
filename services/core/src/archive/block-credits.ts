/**
 * The block credits of the packs of one process: how many frames each pack's reader may have in
 * flight (a block queued, compressing, or waiting for its turn to be written; a small block it
 * compressed itself; a run of an incremental pack's reused frames).
 *
 * Why a budget per process, shared: on two busy cores the reader, the codec threads and the main
 * thread each wait on the run queue for milliseconds at a time, and with few blocks in flight
 * those waits leave the codecs idle. 16 blocks (8 per codec thread) kept 1.9 of the 2 cores busy in
 * a small-file pack where 6 kept 1.75 (session 13). But two packs at once with 16 each pushed a node
 * worker past its RSS budget, so the packs running together split the budget, never below the
 * old floor of 2 per codec thread plus 2.
 */
const BLOCKS_PER_CODEC = 8;

let running = 0;

function share(concurrency: number): number {
  return Math.max(concurrency * 2 + 2, Math.floor((concurrency * BLOCKS_PER_CODEC) / Math.max(1, running)));
}

export class BlockCredits {
  /** Credits this pack owns: those its reader holds (blocks in flight) plus those left in the slot. */
  private held: number;
  private closed = false;

  /** Counts this pack as running and puts its first credits in `ctrl[slot]`. */
  constructor(
    private readonly ctrl: Int32Array,
    private readonly slot: number,
    private readonly concurrency: number,
  ) {
    running++;
    this.held = share(concurrency);
    Atomics.store(ctrl, slot, this.held);
  }

  /**
   * A block's frame was written: its credit goes back to the reader, unless this pack's share
   * shrank since (another pack started); a grown share (a pack ended) adds the difference.
   */
  giveBack(): void {
    const want = share(this.concurrency);
    let add = 1;
    if (this.held > want) {
      this.held--;
      add = 0;
    } else if (this.held < want) {
      add += want - this.held;
      this.held = want;
    }
    if (!add) return;
    Atomics.add(this.ctrl, this.slot, add);
    Atomics.notify(this.ctrl, this.slot);
  }

  /** The pack ended (or failed): its share goes to the others on their next giveBack(). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    running--;
  }
}
