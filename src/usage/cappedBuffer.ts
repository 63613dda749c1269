/** Collects a copy of a body up to a cap; past it, gives up and keeps nothing (no partial reads). */
export class CappedBuffer {
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly maxBytes: number) {}

  push(chunk: Buffer): void {
    if (this.size > this.maxBytes) return;
    this.size += chunk.length;
    if (this.size > this.maxBytes) this.chunks = [];
    else this.chunks.push(chunk);
  }

  /** The bytes, or undefined when there were none or too many; the copy is released either way. */
  take(): Buffer | undefined {
    const whole = this.size === 0 || this.size > this.maxBytes ? undefined : Buffer.concat(this.chunks, this.size);
    this.chunks = [];
    return whole;
  }
}
