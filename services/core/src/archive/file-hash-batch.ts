/**
 * Small files' sha256, hashed per block instead of per file: the reader reads a file into the
 * block without hashing it and notes where it lies; when the block is complete (before it is
 * shipped) the native helper hashes all its files two at a time (cairn_native.c, sha256Spans:
 * two interleaved SHA-extension round chains cost ~0.6× two separate passes). The entries get
 * their digests then, before they leave with the block.
 */
import type { ArchiveEntry } from './archive-types.ts';
import type { NativeReads } from './native-reads.ts';

type SpanHasher = NonNullable<NativeReads['sha256Spans']>;

export class FileHashBatch {
  private entries: ArchiveEntry[] = [];
  private spans = new Float64Array(512);
  private digests = Buffer.alloc(32 * 256);

  private constructor(private readonly hashSpans: SpanHasher) {}

  /** Where the helper has the SHA extensions; otherwise files are hashed as they are read. */
  static create(native: NativeReads | undefined): FileHashBatch | undefined {
    return native?.sha256Dual === 1 && native.sha256Spans ? new FileHashBatch(native.sha256Spans) : undefined;
  }

  /** A file whose content is `length` bytes at `offset` of the current block. */
  add(entry: ArchiveEntry, offset: number, length: number): void {
    // Set now so the key keeps its place in the entry's JSON; the digest follows in settle().
    entry.sha256 = '';
    const i = this.entries.length;
    if (2 * i + 2 > this.spans.length) {
      const spans = new Float64Array(this.spans.length * 2);
      spans.set(this.spans);
      this.spans = spans;
    }
    this.spans[2 * i] = offset;
    this.spans[2 * i + 1] = length;
    this.entries.push(entry);
  }

  /** Hashes the noted files of `block` (before it is shipped or dropped) and fills in their entries. */
  settle(block: Uint8Array): void {
    const n = this.entries.length;
    if (n === 0) return;
    if (this.digests.length < 32 * n) this.digests = Buffer.alloc(64 * n);
    this.hashSpans(block, this.spans, n, this.digests);
    for (let i = 0; i < n; i++) this.entries[i]!.sha256 = this.digests.toString('hex', 32 * i, 32 * i + 32);
    this.entries = [];
  }
}
