const USAGE_NULL = Buffer.from(',"usage":null');
const MAX_PENDING = 1024 * 1024;
const USAGE_NULL_FIRST = Buffer.from('"usage":null,');
/** Removes every `needle` from `bytes`, copying only when there is something to remove. */
function without(bytes, needle) {
    let at = bytes.indexOf(needle);
    if (at === -1)
        return bytes;
    const parts = [];
    let from = 0;
    while (at !== -1) {
        parts.push(bytes.subarray(from, at));
        from = at + needle.length;
        at = bytes.indexOf(needle, from);
    }
    parts.push(bytes.subarray(from));
    return Buffer.concat(parts);
}
/** Index just past the next blank line (LF or CRLF) at or after `from`, or -1. */
function eventEnd(bytes, from) {
    const lf = bytes.indexOf('\n\n', from);
    const crlf = bytes.indexOf('\r\n\r\n', from);
    if (lf === -1)
        return crlf === -1 ? -1 : crlf + 4;
    return crlf === -1 || lf + 2 <= crlf + 4 ? lf + 2 : crlf + 4;
}
function isUsageOnlyChunk(event) {
    return event.indexOf('"choices":[]') !== -1 && event.indexOf('"usage":{') !== -1;
}
/**
 * For a client that did not ask for stream usage (Keyward asked on its behalf): drops the extra
 * usage-only chunk (`"choices":[]` with a usage object) and the `"usage":null` field the option adds
 * to every other chunk, so the client receives exactly what OpenAI would have sent it. Works event by
 * event on the bytes (no decoding): each complete event is passed on at once, nothing is delayed or
 * coalesced beyond the chunk it arrived in.
 */
export class UsageChunkFilter {
    pending;
    /** The bytes to pass on for this chunk (undefined: nothing yet, an event is still incomplete). */
    push(chunk) {
        const bytes = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
        const out = [];
        let from = 0;
        for (let next = eventEnd(bytes, 0); next !== -1; next = eventEnd(bytes, from)) {
            const event = bytes.subarray(from, next);
            from = next;
            if (isUsageOnlyChunk(event))
                continue;
            out.push(without(without(event, USAGE_NULL), USAGE_NULL_FIRST));
        }
        this.pending = from < bytes.length ? bytes.subarray(from) : undefined;
        if (this.pending && this.pending.length > MAX_PENDING) {
            // No real event is this long (or the stream is not framed as expected): pass it on unedited.
            out.push(this.pending);
            this.pending = undefined;
        }
        return out.length === 0 ? undefined : out.length === 1 ? out[0] : Buffer.concat(out);
    }
    /** What is left at the end of the stream (a last event without its blank line). */
    end() {
        const rest = this.pending;
        this.pending = undefined;
        return rest;
    }
}
//# sourceMappingURL=usageChunkFilter.js.map