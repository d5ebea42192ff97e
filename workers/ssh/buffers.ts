// Bounded buffers for a remote command's output: what is kept for the caller, and the tail of
// stderr that explains a failure. Neither grows with the output.

/** Keeps the first `cap` bytes of a stream; the rest is counted and dropped, never buffered. */
export class CappedBuffer {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  dropped = 0;
  constructor(private readonly cap: number) {}
  push(chunk: Buffer): void {
    const room = this.cap - this.kept;
    if (room <= 0) {
      this.dropped += chunk.length;
      return;
    }
    const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
    this.chunks.push(part);
    this.kept += part.length;
    this.dropped += chunk.length - part.length;
  }
  toString(): string {
    return Buffer.concat(this.chunks, this.kept).toString('utf8');
  }
}

/** The last few KiB of a stream, for error messages. */
export class TailBuffer {
  private tail = Buffer.alloc(0);
  constructor(private readonly cap: number) {}
  push(chunk: Buffer): void {
    this.tail =
      chunk.length >= this.cap ? Buffer.from(chunk.subarray(chunk.length - this.cap)) : Buffer.concat([this.tail, chunk]).subarray(-this.cap);
  }
  lines(max = 20): string {
    return this.tail.toString('utf8').trimEnd().split('\n').slice(-max).join('\n');
  }
}
