import { brotliDecompressSync, constants, gunzipSync, inflateSync } from 'node:zlib';
import { CappedBuffer } from './cappedBuffer.js';
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

/** A body in a content coding, decoded when Keyward can (else returned as it is). */
export function decoded(body: Buffer, encoding: string | undefined): Buffer {
  const inflate = encoding === undefined ? undefined : DECODERS[encoding.trim().toLowerCase()];
  if (!inflate) return body;
  try {
    return inflate(body);
  } catch {
    return body;
  }
}

/**
 * A response the client asked to be compressed: the client gets the compressed bytes untouched;
 * the tap keeps a copy and decompresses it once at the end (a truncated stream yields what it can).
 */
export class CompressedTap implements ResponseTap {
  private readonly copy: CappedBuffer;

  private constructor(
    private readonly inner: ResponseTap,
    private readonly inflate: Inflate,
    maxBytes: number,
  ) {
    this.copy = new CappedBuffer(maxBytes);
  }

  /** undefined when the encoding is one Keyward cannot read. */
  static wrap(inner: ResponseTap, encoding: string, maxBytes: number): ResponseTap | undefined {
    const inflate = DECODERS[encoding.trim().toLowerCase()];
    return inflate ? new CompressedTap(inner, inflate, maxBytes) : undefined;
  }

  push(chunk: Buffer): void {
    this.copy.push(chunk);
  }

  end(): Extracted & { json?: unknown } {
    const bytes = this.copy.take();
    if (bytes) {
      try {
        this.inner.push(this.inflate(bytes));
      } catch {
        // Unreadable compressed data: the row keeps null counts rather than guessing.
      }
    }
    return this.inner.end();
  }
}
