const MINUTE = 60_000;
export class RateLimiter {
    now;
    requests = new Map();
    tokens = new Map();
    constructor(now = Date.now) {
        this.now = now;
    }
    level(map, id, limit, t) {
        let b = map.get(id);
        if (!b) {
            b = { level: limit, at: t };
            map.set(id, b);
        }
        else {
            b.level = Math.min(limit, b.level + ((t - b.at) * limit) / MINUTE);
            b.at = t;
        }
        return b;
    }
    state(b, limit) {
        return { limit, remaining: Math.max(0, Math.floor(b.level)), resetMs: Math.ceil(((limit - b.level) * MINUTE) / limit) };
    }
    /**
     * Takes one request and `estTokens` tokens, or neither. A request larger than the whole token
     * limit can never pass and is refused with retryAfterMs = Infinity.
     */
    take(id, rpm, tpm, estTokens) {
        const t = this.now();
        const r = rpm ? this.level(this.requests, id, rpm, t) : undefined;
        const k = tpm ? this.level(this.tokens, id, tpm, t) : undefined;
        const states = () => ({ requests: r && this.state(r, rpm), tokens: k && this.state(k, tpm) });
        if (r && r.level < 1) {
            return { kind: 'requests', limit: rpm, requested: 1, retryAfterMs: Math.ceil(((1 - r.level) * MINUTE) / rpm), ...states() };
        }
        if (k && k.level < estTokens) {
            const retryAfterMs = estTokens > tpm ? Infinity : Math.ceil(((estTokens - k.level) * MINUTE) / tpm);
            return { kind: 'tokens', limit: tpm, requested: estTokens, retryAfterMs, ...states() };
        }
        if (r)
            r.level -= 1;
        if (k)
            k.level -= estTokens;
        return undefined;
    }
    /** Gives back what take() took, for a request that was refused later and never ran. */
    refund(id, rpm, tpm, estTokens) {
        const t = this.now();
        if (rpm)
            this.level(this.requests, id, rpm, t).level += 1;
        if (tpm)
            this.level(this.tokens, id, tpm, t).level += estTokens;
    }
    /** Replaces a token estimate by the real count (either way). */
    settle(id, tpm, estTokens, actualTokens) {
        if (!tpm)
            return;
        const b = this.level(this.tokens, id, tpm, this.now());
        b.level -= actualTokens - estTokens;
    }
}
/** OpenAI's duration format for x-ratelimit-reset-*: "1s", "6m0s", "20ms". */
export function formatReset(ms) {
    if (!Number.isFinite(ms) || ms <= 0)
        return '0s';
    if (ms < 1000)
        return `${Math.ceil(ms)}ms`;
    const s = Math.ceil(ms / 1000);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${sec}s`;
}
//# sourceMappingURL=rateLimiter.js.map