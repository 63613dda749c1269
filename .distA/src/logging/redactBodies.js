/** A base64 payload is kept as its first 16 characters and its length, never whole. */
const KEEP = 16;
const DATA_URL = /^data:[^;,]*;base64,/i;
const LONG_BASE64 = /^[A-Za-z0-9+/_-]{64,}={0,2}$/;
const B64_KEYS = new Set(['b64_json', 'b64', 'partial_image_b64', 'audio', 'data', 'delta']);
function shorten(s) {
    return `${s.slice(0, KEEP)}…[base64, ${s.length} chars]`;
}
/**
 * A copy of a JSON body fit for a log: every data URL, every `b64_json` and every long base64 string
 * (audio, image, embedding payloads) is cut to its first 16 characters plus its length.
 */
export function redactBase64(value, key) {
    if (typeof value === 'string') {
        if (DATA_URL.test(value))
            return shorten(value);
        if (key === 'b64_json' && value.length > KEEP)
            return shorten(value);
        if ((B64_KEYS.has(key ?? '') || value.length >= 64) && LONG_BASE64.test(value))
            return shorten(value);
        return value;
    }
    if (Array.isArray(value))
        return value.map((v) => redactBase64(v));
    if (value && typeof value === 'object') {
        const out = {};
        for (const [k, v] of Object.entries(value))
            out[k] = redactBase64(v, k);
        return out;
    }
    return value;
}
//# sourceMappingURL=redactBodies.js.map