import type { Logger } from 'pino';
import type { UpstreamHeaders } from '../proxy/headers.js';
import { upstreamKeyId, upstreamKeyListProblems, UpstreamKeysError, type UpstreamKeyConfig } from './poolConfig.js';

/** Response headers, as node:http or undici give them (lower-case names). */
type Headers = Readonly<UpstreamHeaders>;

/**
 * healthy: in rotation. cooling: rate-limited until coolUntil. exhausted: out of quota (billing).
 * invalid: OpenAI refused the key (401). Only healthy keys, and cooling ones whose time is up, are picked.
 */
export type UpstreamKeyState = 'healthy' | 'cooling' | 'exhausted' | 'invalid';

/** One upstream key as the rest of the gateway sees it: read-only; the pool changes it via report(). */
export interface UpstreamKey {
  /** Label, or `key_` + 12 hex of the key's SHA-256: what usage rows and logs name. Never the key. */
  readonly id: string;
  /** `sk-…abcd`: enough to recognise the key in the OpenAI dashboard, never more than its last 4 characters. */
  readonly masked: string;
  /** What to send upstream for this key: authorization, plus openai-organization / openai-project if configured. */
  readonly headers: Readonly<Record<string, string>>;
  readonly state: UpstreamKeyState;
  /** Epoch ms until which a cooling key rests; 0 when not cooling. */
  readonly coolUntil: number;
  /** Successful (2xx) answers. */
  readonly served: number;
  /** Answers that were the key's or OpenAI's trouble: 429, 401, 5xx. */
  readonly failures: number;
  /** e.g. `429 rate_limit_exceeded`; never the key. */
  readonly lastError: string | undefined;
  readonly lastErrorAt: number | undefined;
}

/** What an upstream answer said about the key that carried it. */
export interface UpstreamResult {
  status: number;
  /** OpenAI's `error.code` (or `error.type`), when the body had one. */
  code?: string | null;
  /** From UpstreamPool.retryAfterMs(response headers). */
  retryAfterMs?: number;
  /**
   * When the request was sent (the pool's clock, Date.now()): an answer to a request sent before
   * the key was found out of quota or refused says nothing about it now.
   */
  sentAt?: number;
}

export interface UpstreamKeyStatus {
  id: string;
  masked: string;
  state: UpstreamKeyState;
  served: number;
  failures: number;
  last_error: string | null;
  last_error_at: string | null;
  cool_until: string | null;
}

export interface UpstreamPoolOptions {
  now?: () => number;
  log?: Logger;
}

/** A 429 without a usable retry hint: OpenAI's per-minute windows mostly clear within this. */
export const DEFAULT_COOL_MS = 20_000;
/** A longer hint (daily limits) still gets a look every 10 minutes rather than a day-long exile. */
export const MAX_COOL_MS = 600_000;
/** Probing an exhausted key costs a request; billing changes are rare. */
export const EXHAUSTED_PROBE_MS = 5 * 60_000;
/** A revoked key rarely comes back; probe it seldom, but do notice a key that was fixed in the dashboard. */
export const INVALID_PROBE_MS = 15 * 60_000;

function maskKey(key: string): string {
  const prefix = key.startsWith('sk-') ? key.slice(0, key.indexOf('-') + 1) : '';
  return `${prefix}…${key.slice(-4)}`;
}

class PoolKey implements UpstreamKey {
  readonly id: string;
  readonly masked: string;
  state: UpstreamKeyState = 'healthy';
  coolUntil = 0;
  served = 0;
  failures = 0;
  lastError: string | undefined;
  lastErrorAt: number | undefined;
  /** When the state last changed or a probe last ran: paces revival probes. */
  lastCheckAt: number;
  /** When the key last went into a state other than healthy (0: never). */
  downSince = 0;
  probing = false;
  // Private fields and a prototype getter keep the key out of JSON.stringify, pino and util.inspect.
  readonly #secret: string;
  readonly #headers: Readonly<Record<string, string>>;

  constructor(cfg: UpstreamKeyConfig, now: number) {
    this.#secret = cfg.key;
    this.id = upstreamKeyId(cfg);
    this.masked = maskKey(cfg.key);
    const headers: Record<string, string> = { authorization: `Bearer ${cfg.key}` };
    if (cfg.organization) headers['openai-organization'] = cfg.organization;
    if (cfg.project) headers['openai-project'] = cfg.project;
    this.#headers = Object.freeze(headers);
    this.lastCheckAt = now;
  }

  get headers(): Readonly<Record<string, string>> {
    return this.#headers;
  }

  /** OpenAI error codes are identifiers; anything else (or anything holding the key) is dropped. */
  safeCode(code: string | null | undefined): string | undefined {
    if (!code || code.includes(this.#secret)) return undefined;
    const clean = code.replace(/[^A-Za-z0-9_.:-]/g, '').slice(0, 64);
    // Checked again once cleaned: "sk-…1 2" becomes the key itself when the space goes.
    if (!clean || clean.includes(this.#secret)) return undefined;
    return clean;
  }

  toJSON(): { id: string; masked: string; state: UpstreamKeyState } {
    return { id: this.id, masked: this.masked, state: this.state };
  }
}

const DURATION_UNITS: Record<string, number> = {
  h: 3_600_000,
  m: 60_000,
  s: 1000,
  ms: 1,
  us: 1e-3,
  µs: 1e-3,
  ns: 1e-6,
};

/** A Go-style duration as OpenAI sends in x-ratelimit-reset-*: `6m0s`, `1s`, `20ms`, `1h2m3.5s`. */
function parseDuration(text: string): number | undefined {
  if (text === '0') return 0;
  if (!/^(?:\d+(?:\.\d+)?(?:ms|us|µs|ns|h|m|s))+$/.test(text)) return undefined;
  let ms = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)/g)) ms += Number(m[1]) * DURATION_UNITS[m[2]!]!;
  return ms;
}

function headerText(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined ? undefined : s.trim();
}

const NUMBER_RE = /^\d+(?:\.\d+)?$/;
/** An HTTP date in its preferred form (RFC 9110 §5.6.7). */
const HTTP_DATE_RE = /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/;

/**
 * Several real OpenAI keys that requests are spread over, round-robin, skipping keys that are
 * rate-limited, out of quota or refused until they are usable again.
 */
export class UpstreamPool {
  readonly #keys: PoolKey[];
  readonly #byId = new Map<string, PoolKey>();
  readonly #now: () => number;
  readonly #log: Logger | undefined;
  #cursor = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(keys: UpstreamKeyConfig[], opts: UpstreamPoolOptions = {}) {
    const problems = upstreamKeyListProblems(keys);
    if (problems.length) throw new UpstreamKeysError(`upstream keys: ${problems.join('; ')}`);
    this.#now = opts.now ?? Date.now;
    this.#log = opts.log;
    const t = this.#now();
    this.#keys = keys.map((cfg) => new PoolKey(cfg, t));
    for (const k of this.#keys) this.#byId.set(k.id, k);
  }

  get size(): number {
    return this.#keys.length;
  }

  /** The keys in configured order (read-only views). */
  keys(): readonly UpstreamKey[] {
    return this.#keys;
  }

  /**
   * The next usable key after the last one handed out, skipping ids in `exclude` (keys this
   * request already tried). undefined when none is left.
   */
  pick(exclude?: ReadonlySet<string>): UpstreamKey | undefined {
    const n = this.#keys.length;
    let now: number | undefined; // read the clock only if a cooling key needs it
    for (let i = 0; i < n; i++) {
      const idx = (this.#cursor + i) % n;
      const k = this.#keys[idx]!;
      if (exclude?.has(k.id)) continue;
      if (k.state === 'cooling') {
        now ??= this.#now();
        if (!this.#cooledDown(k, now)) continue;
      } else if (k.state !== 'healthy') continue;
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
  fallback(exclude?: ReadonlySet<string>): UpstreamKey | undefined {
    const rank = { healthy: 0, cooling: 1, exhausted: 2, invalid: 3 } as const;
    const n = this.#keys.length;
    let best: PoolKey | undefined;
    let bestIdx = 0;
    // From the round-robin cursor, so that equally bad keys (all out of quota) take turns: in
    // configured order the first took every request, and a key whose quota came back waited for
    // its next probe.
    for (let i = 0; i < n; i++) {
      const idx = (this.#cursor + i) % n;
      const k = this.#keys[idx]!;
      if (exclude?.has(k.id)) continue;
      if (!best || rank[k.state] < rank[best.state] || (k.state === 'cooling' && best.state === 'cooling' && k.coolUntil < best.coolUntil)) {
        best = k;
        bestIdx = idx;
      }
    }
    if (best) this.#cursor = (bestIdx + 1) % n;
    return best;
  }

  /** Whether pick(exclude) would find a key, without moving the round robin. */
  hasUsable(exclude?: ReadonlySet<string>): boolean {
    const now = this.#now();
    return this.#keys.some(
      (k) => !exclude?.has(k.id) && (k.state === 'healthy' || (k.state === 'cooling' && k.coolUntil <= now)),
    );
  }

  /** Records what an upstream answer says about the key that carried it. */
  report(key: UpstreamKey, result: UpstreamResult): void {
    const k = this.#own(key);
    const now = this.#now();
    const { status } = result;
    if (status === 429) {
      this.#fail(k, result, now);
      if (result.code === 'insufficient_quota') {
        this.#setState(k, 'exhausted', now, result);
      } else if (k.state === 'healthy' || k.state === 'cooling') {
        // A plain rate limit says nothing new about a key already out of quota or refused.
        const hint = result.retryAfterMs;
        const valid = hint !== undefined && Number.isFinite(hint) && hint >= 0;
        const wait = Math.min(valid ? hint : DEFAULT_COOL_MS, MAX_COOL_MS);
        k.coolUntil = Math.max(k.state === 'cooling' ? k.coolUntil : 0, now + wait);
        this.#setState(k, 'cooling', now, result);
      }
    } else if (status === 401) {
      this.#fail(k, result, now);
      this.#setState(k, 'invalid', now, result);
    } else if (status >= 500 || status < 100) {
      // OpenAI's own trouble (or no answer at all): not the key's fault, so it stays in rotation.
      this.#fail(k, result, now);
    } else {
      if ((status >= 200 && status < 300) || status === 101) k.served++; // 101: a WebSocket session opened
      // An answer from a request sent before the 429 must not cut the rest short.
      if (k.state === 'cooling' && k.coolUntil > now) return;
      // Nor one sent before the key ran out of quota or was refused bring it back.
      if (k.state !== 'healthy' && result.sentAt !== undefined && result.sentAt < k.downSince) return;
      // A 4xx only proves that the key authenticates, not that its quota is back.
      if (k.state === 'exhausted' && status >= 400) return;
      if (k.state !== 'healthy') this.#setState(k, 'healthy', now, result);
    }
  }

  /**
   * Whether a request that got this answer may be sent again with another key. Only 429 and 401:
   * they are about this key (its limit, quota or validity), so another key can succeed. A 5xx is
   * OpenAI's own trouble, as likely on any key, and the failed request may already have done
   * (and billed) work; retrying it across the pool would multiply load during an outage.
   */
  shouldRetry(status: number, _code?: string | null): boolean {
    return status === 429 || status === 401;
  }

  /**
   * How long OpenAI asks us to wait, from a 429's headers: `retry-after-ms`, `retry-after`
   * (seconds or HTTP date), else the larger of `x-ratelimit-reset-requests` / `-tokens`.
   */
  static retryAfterMs(headers: Headers, now: number = Date.now()): number | undefined {
    const ms = headerText(headers, 'retry-after-ms');
    if (ms !== undefined && NUMBER_RE.test(ms)) return Number(ms);
    const ra = headerText(headers, 'retry-after');
    if (ra !== undefined && ra !== '') {
      if (NUMBER_RE.test(ra)) return Number(ra) * 1000;
      // Only an HTTP date (RFC 9110: "Sun, 06 Nov 1994 08:49:37 GMT"): Date.parse also takes "-5"
      // or "May 5" (2001), which would end a cool-down at once.
      const at = HTTP_DATE_RE.test(ra) ? Date.parse(ra) : Number.NaN;
      if (!Number.isNaN(at)) return Math.max(0, at - now);
    }
    let best: number | undefined;
    for (const name of ['x-ratelimit-reset-requests', 'x-ratelimit-reset-tokens']) {
      const text = headerText(headers, name);
      const d = text === undefined ? undefined : parseDuration(text);
      if (d !== undefined && (best === undefined || d > best)) best = d;
    }
    return best;
  }

  /** JSON-safe rows for a status page. */
  status(): UpstreamKeyStatus[] {
    const now = this.#now();
    return this.#keys.map((k) => {
      if (k.state === 'cooling') this.#cooledDown(k, now);
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
  startRevival(probe: (key: UpstreamKey) => Promise<boolean>, intervalMs = 60_000): void {
    this.stop();
    this.#timer = setInterval(() => void this.reviveNow(probe), intervalMs);
    this.#timer.unref(); // never what keeps the process alive
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One revival pass (what the timer runs; tests call it directly). Resolves when its probes have. */
  async reviveNow(probe: (key: UpstreamKey) => Promise<boolean>): Promise<void> {
    const now = this.#now();
    const due = this.#keys.filter((k) => !k.probing && this.#probeDue(k, now));
    await Promise.all(due.map((k) => this.#probeOne(k, probe)));
  }

  #probeDue(k: PoolKey, now: number): boolean {
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

  async #probeOne(k: PoolKey, probe: (key: UpstreamKey) => Promise<boolean>): Promise<void> {
    const before = k.state;
    k.probing = true;
    let ok = false;
    try {
      ok = await probe(k);
    } catch {
      ok = false; // the error text is the prober's business and might quote a request; not kept here
    } finally {
      k.probing = false;
    }
    const now = this.#now();
    k.lastCheckAt = now;
    // A report() that arrived meanwhile is fresher news than this probe.
    if (k.state !== before) return;
    if (ok) this.#setState(k, 'healthy', now, undefined, 'probe');
    else if (k.state === 'cooling') k.coolUntil = now + DEFAULT_COOL_MS; // still limited: not yet back
  }

  /** A cooling key whose time is up becomes healthy on the spot. */
  #cooledDown(k: PoolKey, now: number): boolean {
    if (k.coolUntil > now) return false;
    this.#setState(k, 'healthy', now, undefined, 'cooled down');
    return true;
  }

  #fail(k: PoolKey, result: UpstreamResult, now: number): void {
    k.failures++;
    const code = k.safeCode(result.code);
    k.lastError = code ? `${result.status} ${code}` : String(result.status);
    k.lastErrorAt = now;
  }

  #setState(k: PoolKey, state: UpstreamKeyState, now: number, result?: UpstreamResult, why?: string): void {
    if (k.state === state) return;
    const from = k.state;
    k.state = state;
    k.lastCheckAt = now;
    if (state !== 'healthy') k.downSince = now;
    if (state !== 'cooling') k.coolUntil = 0;
    // Field names avoid "key": the logger redacts that path (src/logging/logger.ts).
    const fields = {
      upstream: k.id,
      from,
      to: state,
      ...(result ? { status: result.status, code: k.safeCode(result.code) } : {}),
      ...(state === 'cooling' ? { cool_until: new Date(k.coolUntil).toISOString() } : {}),
      ...(why ? { reason: why } : {}),
    };
    if (state === 'healthy') this.#log?.info(fields, 'upstream key back in rotation');
    else this.#log?.warn(fields, `upstream key ${state}`);
  }

  #own(key: UpstreamKey): PoolKey {
    const k = this.#byId.get(key.id);
    if (!k || k !== key) throw new Error(`upstream key ${key.id} is not from this pool`);
    return k;
  }
}
