import { HOOK_OUTPUT_TAIL_CHARS } from '@cairn/core/domain/hooks.ts';

/** The last bytes of a hook's output (a command's stdout and stderr, a webhook's response body), bounded. */
export class OutputTail {
  private chunks: Buffer[] = [];
  private bytes = 0;

  constructor(private readonly maxBytes = HOOK_OUTPUT_TAIL_CHARS * 2) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    while (this.chunks.length > 1 && this.bytes - this.chunks[0]!.length >= this.maxBytes) this.bytes -= this.chunks.shift()!.length;
  }

  /** The tail as text (invalid UTF-8 replaced), at most HOOK_OUTPUT_TAIL_CHARS characters. */
  text(): string {
    const all = Buffer.concat(this.chunks);
    return all
      .subarray(Math.max(0, all.length - this.maxBytes))
      .toString('utf8')
      .slice(-HOOK_OUTPUT_TAIL_CHARS);
  }
}
