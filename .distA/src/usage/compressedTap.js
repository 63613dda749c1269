import { brotliDecompressSync, constants, gunzipSync, inflateSync } from 'node:zlib';
import { CappedBuffer } from './cappedBuffer.js';
const FLUSH = { finishFlush: constants.Z_SYNC_FLUSH };
const DECODERS = {
    gzip: (b) => gunzipSync(b, FLUSH),
    'x-gzip': (b) => gunzipSync(b, FLUSH),
    deflate: (b) => inflateSync(b, FLUSH),
    br: (b) => brotliDecompressSync(b, { finishFlush: constants.BROTLI_OPERATION_FLUSH }),
};
/** A body in a content coding, decoded when Keyward can (else returned as it is). */
export function decoded(body, encoding) {
    const inflate = encoding === undefined ? undefined : DECODERS[encoding.trim().toLowerCase()];
    if (!inflate)
        return body;
    try {
        return inflate(body);
    }
    catch {
        return body;
    }
}
/**
 * A response the client asked to be compressed: the client gets the compressed bytes untouched;
 * the tap keeps a copy and decompresses it once at the end (a truncated stream yields what it can).
 */
export class CompressedTap {
    inner;
    inflate;
    copy;
    constructor(inner, inflate, maxBytes) {
        this.inner = inner;
        this.inflate = inflate;
        this.copy = new CappedBuffer(maxBytes);
    }
    /** undefined when the encoding is one Keyward cannot read. */
    static wrap(inner, encoding, maxBytes) {
        const inflate = DECODERS[encoding.trim().toLowerCase()];
        return inflate ? new CompressedTap(inner, inflate, maxBytes) : undefined;
    }
    push(chunk) {
        this.copy.push(chunk);
    }
    end() {
        const bytes = this.copy.take();
        if (bytes) {
            try {
                this.inner.push(this.inflate(bytes));
            }
            catch {
                // Unreadable compressed data: the row keeps null counts rather than guessing.
            }
        }
        return this.inner.end();
    }
}
//# sourceMappingURL=compressedTap.js.map