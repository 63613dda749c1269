import { CappedBuffer } from './cappedBuffer.js';
import { modelAndUsage } from './jsonFields.js';
import { usageFromJson, usageFromSseEvent } from './extract.js';
import { SseParser } from './sseParser.js';
const USAGE_OBJECT = /"usage"\s*:\s*\{/;
function merge(into, found) {
    if (!found)
        return;
    if (found.model)
        into.model = found.model;
    if (found.usage)
        into.usage = { ...into.usage, ...found.usage };
}
const LF = 0x0a;
/** Where the last complete event of a chunk ends (after its blank line), or -1. */
function lastEventEnd(chunk) {
    const n = chunk.length;
    // Upstreams write whole events: the chunk almost always ends with its blank line.
    if (n >= 2 && chunk[n - 1] === LF && chunk[n - 2] === LF)
        return n;
    const lf = chunk.lastIndexOf('\n\n');
    const crlf = chunk.lastIndexOf('\r\n\r\n');
    return Math.max(lf === -1 ? -1 : lf + 2, crlf === -1 ? -1 : crlf + 4);
}
const USAGE_KEY = [0x22, 0x75, 0x73, 0x61, 0x67, 0x65, 0x22]; // "usage"
const isSpace = (c) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
/**
 * Whether the bytes hold `"usage"` followed by `:` and an object (not `null`). A plain loop: with
 * one event per chunk, two native buffer searches per chunk cost more than this scan (measured).
 */
function mayHoldUsage(bytes) {
    const last = bytes.length - USAGE_KEY.length;
    outer: for (let i = 0; i <= last; i++) {
        if (bytes[i] !== 0x22)
            continue;
        for (let k = 1; k < USAGE_KEY.length; k++)
            if (bytes[i + k] !== USAGE_KEY[k])
                continue outer;
        let j = i + USAGE_KEY.length;
        while (isSpace(bytes[j]))
            j++;
        if (bytes[j] !== 0x3a /* : */)
            continue;
        j++;
        while (isSpace(bytes[j]))
            j++;
        if (bytes[j] === 0x7b /* { */)
            return true;
    }
    return false;
}
/** Largest run of bytes without an event boundary that is kept (no real event is this big). */
const MAX_PENDING = 16 * 1024 * 1024;
/**
 * SSE: a stream of many small events, of which one or two carry usage. Bytes are only scanned (a
 * native search for `"usage":{`) until a run of complete events holds one, or the model is still
 * unknown; only those runs are decoded and parsed. Most chunks cost two buffer searches.
 */
export class SseTap {
    found = {};
    parser;
    pending = [];
    pendingSize = 0;
    constructor(endpoint) {
        this.parser = new SseParser((event, data) => {
            if (this.found.model !== undefined && !USAGE_OBJECT.test(data))
                return;
            if (data === '[DONE]')
                return;
            let parsed;
            try {
                parsed = JSON.parse(data);
            }
            catch {
                return;
            }
            merge(this.found, usageFromSseEvent(endpoint, event, parsed));
        });
    }
    push(chunk) {
        const cut = lastEventEnd(chunk);
        if (cut === -1) {
            if (this.pendingSize + chunk.length <= MAX_PENDING) {
                this.pending.push(chunk);
                this.pendingSize += chunk.length;
            }
            return;
        }
        const complete = this.pending.length
            ? Buffer.concat([...this.pending, chunk.subarray(0, cut)], this.pendingSize + cut)
            : chunk.subarray(0, cut);
        this.pending = cut < chunk.length ? [chunk.subarray(cut)] : [];
        this.pendingSize = chunk.length - cut;
        if (this.found.model === undefined || mayHoldUsage(complete))
            this.parser.push(complete);
    }
    end() {
        const rest = Buffer.concat(this.pending, this.pendingSize);
        this.pending = [];
        if (this.found.model === undefined || mayHoldUsage(rest))
            this.parser.push(rest);
        this.parser.end();
        return this.found;
    }
}
/**
 * JSON: keeps the bytes (up to a cap) and reads `model` and `usage` from them at the end; the whole
 * body is parsed only when it is wanted (logBodies) or the quick read fails.
 */
export class JsonTap {
    endpoint;
    keepJson;
    copy;
    constructor(endpoint, maxBytes, keepJson = false) {
        this.endpoint = endpoint;
        this.keepJson = keepJson;
        this.copy = new CappedBuffer(maxBytes);
    }
    push(chunk) {
        this.copy.push(chunk);
    }
    end() {
        const bytes = this.copy.take();
        if (!bytes)
            return {};
        const fields = this.keepJson ? undefined : modelAndUsage(bytes);
        if (fields)
            return usageFromJson(this.endpoint, fields);
        let json;
        try {
            json = JSON.parse(bytes.toString('utf8'));
        }
        catch {
            return {};
        }
        const found = usageFromJson(this.endpoint, json);
        found.json = json;
        return found;
    }
}
/** Anything else (audio bytes, files): nothing to read. */
export const nullTap = { push() { }, end: () => ({}) };
//# sourceMappingURL=taps.js.map