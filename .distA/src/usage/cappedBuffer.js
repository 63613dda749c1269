/** Collects a copy of a body up to a cap; past it, gives up and keeps nothing (no partial reads). */
export class CappedBuffer {
    maxBytes;
    chunks = [];
    size = 0;
    constructor(maxBytes) {
        this.maxBytes = maxBytes;
    }
    push(chunk) {
        if (this.size > this.maxBytes)
            return;
        this.size += chunk.length;
        if (this.size > this.maxBytes)
            this.chunks = [];
        else
            this.chunks.push(chunk);
    }
    /** The bytes, or undefined when there were none or too many; the copy is released either way. */
    take() {
        const whole = this.size === 0 || this.size > this.maxBytes ? undefined : Buffer.concat(this.chunks, this.size);
        this.chunks = [];
        return whole;
    }
}
//# sourceMappingURL=cappedBuffer.js.map