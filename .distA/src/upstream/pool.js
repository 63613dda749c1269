import { upstreamKeyId, upstreamKeyListProblems, UpstreamKeysError } from './poolConfig.js';
/** A 429 without a usable retry hint: OpenAI's per-minute windows mostly clear within this. */
export const DEFAULT_COOL_MS = 20_000;
/** A longer hint (daily limits) still gets a look every 10 minutes rather than a day-long exile. */
export const MAX_COOL_MS = 600_000;
/** Probing an exhausted key costs a request; billing changes are rare. */
export const EXHAUSTED_PROBE_MS = 5 * 60_000;
/** A revoked key rarely comes back; probe it seldom, but do notice a key that was fixed in the dashboard. */
export const INVALID_PROBE_MS = 15 * 60_000;
function maskKey(key) {
    const prefix = key.startsWith('sk-') ? key.slice(0, key.indexOf('-') + 1) : '';
    return `${prefix}…${key.slice(-4)}`;
}
class PoolKey {
    id;
    masked;
    state = 'healthy';
    coolUntil = 0;
    served = 0;
    failures = 0;
    lastError;
    lastErrorAt;
    /** When the state last changed or a probe last ran: paces revival probes. */
    lastCheckAt;
    probing = false;
    // Private fields and a prototype getter keep the key out of JSON.stringify, pino and util.inspect.
    #secret;
    #headers;
    constructor(cfg, now) {
        this.#secret = cfg.key;
        this.id = upstreamKeyId(cfg);
        this.masked = maskKey(cfg.key);
        const headers = { authorization: `Bearer ${cfg.key}` };
        if (cfg.organization)
            headers['openai-organization'] = cfg.organization;
        if (cfg.project)
            headers['openai-project'] = cfg.project;
        this.#headers = Object.freeze(headers);
        this.lastCheckAt = now;
    }
    get headers() {
        return this.#headers;
    }
    /** OpenAI error codes are identifiers; anything else (or anything holding the key) is dropped. */
    safeCode(code) {
        if (!code || code.includes(this.#secret))
            return undefined;
        const clean = code.replace(/[^A-Za-z0-9_.:-]/g, '').slice(0, 64);
        return clean || undefined;
    }
    toJSON() {
        return { id: this.id, masked: this.masked, state: this.state };
    }
}
const DURATION_UNITS = {
    h: 3_600_000,
    m: 60_000,
    s: 1000,
    ms: 1,
    us: 1e-3,
    µs: 1e-3,
    ns: 1e-6,
};
/** A Go-style duration as OpenAI sends in x-ratelimit-reset-*: `6m0s`, `1s`, `20ms`, `1h2m3.5s`. */
function parseDuration(text) {
    if (text === '0')
        return 0;
    if (!/^(?:\d+(?:\.\d+)?(?:ms|us|µs|ns|h|m|s))+$/.test(text))
        return undefined;
    let ms = 0;
    for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)/g))
        ms += Number(m[1]) * DURATION_UNITS[m[2]];
    return ms;
}
function headerText(headers, name) {
    const v = headers[name];
    const s = Array.isArray(v) ? v[0] : v;
    return s === undefined ? undefined : s.trim();
}
const NUMBER_RE = /^\d+(?:\.\d+)?$/;
/**
 * Several real OpenAI keys that requests are spread over, round-robin, skipping keys that are
 * rate-limited, out of quota or refused until they are usable again.
 */
export class UpstreamPool {
    #keys;
    #byId = new Map();
    #now;
    #log;
    #cursor = 0;
    #timer;
    constructor(keys, opts = {}) {
        const problems = upstreamKeyListProblems(keys);
        if (problems.length)
            throw new UpstreamKeysError(`upstream keys: ${problems.join('; ')}`);
        this.#now = opts.now ?? Date.now;
        this.#log = opts.log;
        const t = this.#now();
        this.#keys = keys.map((cfg) => new PoolKey(cfg, t));
        for (const k of this.#keys)
            this.#byId.set(k.id, k);
    }
    get size() {
        return this.#keys.length;
    }
    /** The keys in configured order (read-only views). */
    keys() {
        return this.#keys;
    }
    /**
     * The next usable key after the last one handed out, skipping ids in `exclude` (keys this
     * request already tried). undefined when none is left.
     */
    pick(exclude) {
        const n = this.#keys.length;
        let now; // read the clock only if a cooling key needs it
        for (let i = 0; i < n; i++) {
            const idx = (this.#cursor + i) % n;
            const k = this.#keys[idx];
            if (exclude?.has(k.id))
                continue;
            if (k.state === 'cooling') {
                now ??= this.#now();
                if (!this.#cooledDown(k, now))
                    continue;
            }
            else if (k.state !== 'healthy')
                continue;
            this.#cursor = (idx + 1) % n;
            return k;
        }
        return undefined;
    }
    /**
     * When pick() finds no healthy key: the least bad one to try anyway (the soonest to cool down, then
     * an exhausted one, then a refused one) rather than refusing locally. OpenAI's limits are per model
     * and its own answer is the truth; a success revives the key at once instead of at the next probe.
     */
    fallback(exclude) {
        const rank = { healthy: 0, cooling: 1, exhausted: 2, invalid: 3 };
        let best;
        for (const k of this.#keys) {
            if (exclude?.has(k.id))
                continue;
            if (!best || rank[k.state] < rank[best.state] || (k.state === 'cooling' && best.state === 'cooling' && k.coolUntil < best.coolUntil))
                best = k;
        }
        return best;
    }
    /** Whether pick(exclude) would find a key, without moving the round robin. */
    hasUsable(exclude) {
        const now = this.#now();
        return this.#keys.some((k) => !exclude?.has(k.id) && (k.state === 'healthy' || (k.state === 'cooling' && k.coolUntil <= now)));
    }
    /** Records what an upstream answer says about the key that carried it. */
    report(key, result) {
        const k = this.#own(key);
        const now = this.#now();
        const { status } = result;
        if (status === 429) {
            this.#fail(k, result, now);
            if (result.code === 'insufficient_quota') {
                this.#setState(k, 'exhausted', now, result);
            }
            else if (k.state === 'healthy' || k.state === 'cooling') {
                // A plain rate limit says nothing new about a key already out of quota or refused.
                const hint = result.retryAfterMs;
                const valid = hint !== undefined && Number.isFinite(hint) && hint >= 0;
                const wait = Math.min(valid ? hint : DEFAULT_COOL_MS, MAX_COOL_MS);
                k.coolUntil = Math.max(k.state === 'cooling' ? k.coolUntil : 0, now + wait);
                this.#setState(k, 'cooling', now, result);
            }
        }
        else if (status === 401) {
            this.#fail(k, result, now);
            this.#setState(k, 'invalid', now, result);
        }
        else if (status >= 500 || status < 100) {
            // OpenAI's own trouble (or no answer at all): not the key's fault, so it stays in rotation.
            this.#fail(k, result, now);
        }
        else {
            if (status >= 200 && status < 300)
                k.served++;
            // An answer from a request sent before the 429 must not cut the rest short.
            if (k.state === 'cooling' && k.coolUntil > now)
                return;
            // A 4xx only proves that the key authenticates, not that its quota is back.
            if (k.state === 'exhausted' && status >= 400)
                return;
            if (k.state !== 'healthy')
                this.#setState(k, 'healthy', now, result);
        }
    }
    /**
     * Whether a request that got this answer may be sent again with another key. Only 429 and 401:
     * they are about this key (its limit, quota or validity), so another key can succeed. A 5xx is
     * OpenAI's own trouble, as likely on any key, and the failed request may already have done
     * (and billed) work; retrying it across the pool would multiply load during an outage.
     */
    shouldRetry(status, _code) {
        return status === 429 || status === 401;
    }
    /**
     * How long OpenAI asks us to wait, from a 429's headers: `retry-after-ms`, `retry-after`
     * (seconds or HTTP date), else the larger of `x-ratelimit-reset-requests` / `-tokens`.
     */
    static retryAfterMs(headers, now = Date.now()) {
        const ms = headerText(headers, 'retry-after-ms');
        if (ms !== undefined && NUMBER_RE.test(ms))
            return Number(ms);
        const ra = headerText(headers, 'retry-after');
        if (ra !== undefined && ra !== '') {
            if (NUMBER_RE.test(ra))
                return Number(ra) * 1000;
            const at = Date.parse(ra);
            if (!Number.isNaN(at))
                return Math.max(0, at - now);
        }
        let best;
        for (const name of ['x-ratelimit-reset-requests', 'x-ratelimit-reset-tokens']) {
            const text = headerText(headers, name);
            const d = text === undefined ? undefined : parseDuration(text);
            if (d !== undefined && (best === undefined || d > best))
                best = d;
        }
        return best;
    }
    /** JSON-safe rows for a status page. */
    status() {
        const now = this.#now();
        return this.#keys.map((k) => {
            if (k.state === 'cooling')
                this.#cooledDown(k, now);
            return {
                id: k.id,
                masked: k.masked,
                state: k.state,
                served: k.served,
                failures: k.failures,
                last_error: k.lastError ?? null,
                last_error_at: k.lastErrorAt === undefined ? null : new Date(k.lastErrorAt).toISOString(),
                cool_until: k.state === 'cooling' ? new Date(k.coolUntil).toISOString() : null,
            };
        });
    }
    /**
     * Every intervalMs, probes keys that are out of rotation and puts back those the probe vouches for.
     * The probe should make a request that exercises what failed (a tiny completion for quota; a
     * model list only proves the key authenticates).
     */
    startRevival(probe, intervalMs = 60_000) {
        this.stop();
        this.#timer = setInterval(() => void this.reviveNow(probe), intervalMs);
        this.#timer.unref(); // never what keeps the process alive
    }
    stop() {
        if (this.#timer)
            clearInterval(this.#timer);
        this.#timer = undefined;
    }
    /** One revival pass (what the timer runs; tests call it directly). Resolves when its probes have. */
    async reviveNow(probe) {
        const now = this.#now();
        const due = this.#keys.filter((k) => !k.probing && this.#probeDue(k, now));
        await Promise.all(due.map((k) => this.#probeOne(k, probe)));
    }
    #probeDue(k, now) {
        switch (k.state) {
            case 'healthy':
                return false;
            case 'cooling':
                return k.coolUntil <= now;
            case 'exhausted':
                return now - k.lastCheckAt >= EXHAUSTED_PROBE_MS;
            case 'invalid':
                return now - k.lastCheckAt >= INVALID_PROBE_MS;
        }
    }
    async #probeOne(k, probe) {
        const before = k.state;
        k.probing = true;
        let ok = false;
        try {
            ok = await probe(k);
        }
        catch {
            ok = false; // the error text is the prober's business and might quote a request; not kept here
        }
        finally {
            k.probing = false;
        }
        const now = this.#now();
        k.lastCheckAt = now;
        // A report() that arrived meanwhile is fresher news than this probe.
        if (k.state !== before)
            return;
        if (ok)
            this.#setState(k, 'healthy', now, undefined, 'probe');
        else if (k.state === 'cooling')
            k.coolUntil = now + DEFAULT_COOL_MS; // still limited: not yet back
    }
    /** A cooling key whose time is up becomes healthy on the spot. */
    #cooledDown(k, now) {
        if (k.coolUntil > now)
            return false;
        this.#setState(k, 'healthy', now, undefined, 'cooled down');
        return true;
    }
    #fail(k, result, now) {
        k.failures++;
        const code = k.safeCode(result.code);
        k.lastError = code ? `${result.status} ${code}` : String(result.status);
        k.lastErrorAt = now;
    }
    #setState(k, state, now, result, why) {
        if (k.state === state)
            return;
        const from = k.state;
        k.state = state;
        k.lastCheckAt = now;
        if (state !== 'cooling')
            k.coolUntil = 0;
        // Field names avoid "key": the logger redacts that path (src/logging/logger.ts).
        const fields = {
            upstream: k.id,
            from,
            to: state,
            ...(result ? { status: result.status, code: k.safeCode(result.code) } : {}),
            ...(state === 'cooling' ? { cool_until: new Date(k.coolUntil).toISOString() } : {}),
            ...(why ? { reason: why } : {}),
        };
        if (state === 'healthy')
            this.#log?.info(fields, 'upstream key back in rotation');
        else
            this.#log?.warn(fields, `upstream key ${state}`);
    }
    #own(key) {
        const k = this.#byId.get(key.id);
        if (!k || k !== key)
            throw new Error(`upstream key ${key.id} is not from this pool`);
        return k;
    }
}
//# sourceMappingURL=pool.js.map