import { brotliDecompressSync, constants, gunzipSync, inflateSync } from 'node:zlib';
import type { ResponseTap } from './taps.js';
import type { Extracted } from './types.js';

type Inflate = (buf: Buffer) => Buffer;

const FLUSH = { finishFlush: constants.Z_SYNC_FLUSH };
const DECODERS: Record<string, Inflate> = {
  gzip: (b) => gunzipSync(b, FLUSH),
  'x-gzip': (b) => gunzipSync(b, FLUSH),
  deflate: (b) => inflateSync(b, FLUSH),
  br: (b) => brotliDecompressSync(b, { finishFlush: constants.BROTLI_OPERATION_FLUSH }),
};

/**
 * A response the client asked to be compressed: the client gets the compressed bytes untouched;
 * the tap keeps a copy and decompresses it once at the end (a truncated stream yields what it can).
 */
export class CompressedTap implements ResponseTap {
  private chunks: Buffer[] = [];
  private size = 0;

  private constructor(
    private readonly inner: ResponseTap,
    private readonly inflate: Inflate,
    private readonly maxBytes: number,
  ) {}

  /** undefined when the encoding is one Keyward cannot read. */
  static wrap(inner: ResponseTap, encoding: string, maxBytes: number): ResponseTap | undefined {
    const inflate = DECODERS[encoding.trim().toLowerCase()];
    return inflate ? new CompressedTap(inner, inflate, maxBytes) : undefined;
  }

  push(chunk: Buffer): void {
    if (this.size > this.maxBytes) return;
    this.size += chunk.length;
    if (this.size > this.maxBytes) this.chunks = [];
    else this.chunks.push(chunk);
  }

  end(): Extracted & { json?: unknown } {
    if (this.size === 0 || this.size > this.maxBytes) return this.inner.end();
    try {
      this.inner.push(this.inflate(Buffer.concat(this.chunks, this.size)));
    } catch {
      // Unreadable compressed data: the row keeps null counts rather than guessing.
    }
    this.chunks = [];
    return this.inner.end();
  }
}
