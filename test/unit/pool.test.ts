import { describe, it, expect, vi, afterEach } from 'vitest';
import { createHash } from 'node:crypto';
import { inspect } from 'node:util';
import pino from 'pino';
import {
  DEFAULT_COOL_MS,
  EXHAUSTED_PROBE_MS,
  INVALID_PROBE_MS,
  MAX_COOL_MS,
  UpstreamPool,
  type UpstreamKey,
} from '../../src/upstream/pool.js';
import {
  parseUpstreamKeysEnv,
  UpstreamKeyListSchema,
  UpstreamKeysError,
  type UpstreamKeyConfig,
} from '../../src/upstream/poolConfig.js';

const sha = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

const KEY_A = 'sk-proj-AAAAaaaa1111bbbbCCCC2222wxyz';
const KEY_B = 'sk-proj-BBBBbbbb3333ccccDDDD4444lmno';
const KEY_C = 'sk-CCCCcccc5555ddddEEEE6666qrst';

const ABC: UpstreamKeyConfig[] = [
  { key: KEY_A, label: 'a' },
  { key: KEY_B, label: 'b' },
  { key: KEY_C, label: 'c' },
];

/** A pool with a clock the test moves by hand. */
function setup(keys: UpstreamKeyConfig[] = ABC) {
  const clock = { t: 1_700_000_000_000 };
  const pool = new UpstreamPool(keys, { now: () => clock.t });
  return { pool, clock };
}

const ids = (pool: UpstreamPool, n: number, exclude?: ReadonlySet<string>) =>
  Array.from({ length: n }, () => pool.pick(exclude)?.id);

function keyOf(pool: UpstreamPool, id: string): UpstreamKey {
  const k = pool.keys().find((x) => x.id === id);
  if (!k) throw new Error(`no key ${id}`);
  return k;
}

/** The message of the UpstreamKeysError parseUpstreamKeysEnv throws (fails if it throws none). */
function envProblem(value: string): string {
  try {
    parseUpstreamKeysEnv(value);
  } catch (err) {
    expect(err).toBeInstanceOf(UpstreamKeysError);
    return (err as Error).message;
  }
  throw new Error(`parseUpstreamKeysEnv accepted: ${value}`);
}

afterEach(() => {
  vi.useRealTimers();
});

describe('UpstreamPool: picking', () => {
  it('goes round-robin over three keys', () => {
    const { pool } = setup();
    expect(ids(pool, 7)).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'a']);
    expect(pool.size).toBe(3);
  });

  it('skips keys the request already tried', () => {
    const { pool } = setup();
    expect(ids(pool, 3, new Set(['b']))).toEqual(['a', 'c', 'a']);
    expect(pool.pick(new Set(['a', 'b', 'c']))).toBeUndefined();
  });

  it('refuses an empty pool and repeated keys', () => {
    expect(() => new UpstreamPool([])).toThrow(UpstreamKeysError);
    expect(() => new UpstreamPool([{ key: KEY_A }, { key: KEY_A, label: 'x' }])).toThrow(/repeats the key/);
  });

  it('builds the upstream headers, with organization and project when configured', () => {
    const { pool } = setup([{ key: KEY_A, label: 'a', organization: 'org-1', project: 'proj_1' }, { key: KEY_B }]);
    expect(pool.pick()?.headers).toEqual({
      authorization: `Bearer ${KEY_A}`,
      'openai-organization': 'org-1',
      'openai-project': 'proj_1',
    });
    expect(pool.pick()?.headers).toEqual({ authorization: `Bearer ${KEY_B}` });
  });
});

describe('UpstreamPool: reports', () => {
  it('counts 2xx as served and leaves a 400 (the caller\'s mistake) alone', () => {
    const { pool } = setup();
    const a = keyOf(pool, 'a');
    pool.report(a, { status: 200 });
    pool.report(a, { status: 201 });
    pool.report(a, { status: 400, code: 'invalid_request_error' });
    expect(a).toMatchObject({ served: 2, failures: 0, state: 'healthy', lastError: undefined });
  });

  it('cools a key on 429 for retry-after, and brings it back once the time has passed', () => {
    const { pool, clock } = setup();
    const b = keyOf(pool, 'b');
    pool.report(b, { status: 429, code: 'rate_limit_exceeded', retryAfterMs: 5_000 });
    expect(b.state).toBe('cooling');
    expect(b.coolUntil).toBe(clock.t + 5_000);
    expect(b.lastError).toBe('429 rate_limit_exceeded');
    expect(b.lastErrorAt).toBe(clock.t);
    expect(b.failures).toBe(1);
    expect(ids(pool, 4)).toEqual(['a', 'c', 'a', 'c']);

    clock.t += 4_999;
    expect(ids(pool, 2)).toEqual(['a', 'c']);
    clock.t += 1;
    expect(ids(pool, 3)).toEqual(['a', 'b', 'c']);
    expect(b.state).toBe('healthy');
    expect(b.coolUntil).toBe(0);
  });

  it('cools for 20 s without a hint and at most 10 minutes with one', () => {
    const { pool, clock } = setup();
    pool.report(keyOf(pool, 'a'), { status: 429 });
    pool.report(keyOf(pool, 'b'), { status: 429, retryAfterMs: 86_400_000 });
    expect(keyOf(pool, 'a').coolUntil).toBe(clock.t + DEFAULT_COOL_MS);
    expect(keyOf(pool, 'b').coolUntil).toBe(clock.t + MAX_COOL_MS);
  });

  it('keeps the cool time when a request sent before the 429 succeeds late', () => {
    const { pool, clock } = setup();
    const a = keyOf(pool, 'a');
    pool.report(a, { status: 429, retryAfterMs: 10_000 });
    pool.report(a, { status: 200 });
    expect(a.state).toBe('cooling');
    expect(a.served).toBe(1);
    clock.t += 10_000;
    pool.report(a, { status: 200 });
    expect(a.state).toBe('healthy');
  });

  it('hasUsable is false while every key is cooling, true again when one cools down', () => {
    const { pool, clock } = setup();
    pool.report(keyOf(pool, 'a'), { status: 429, retryAfterMs: 30_000 });
    pool.report(keyOf(pool, 'b'), { status: 429, retryAfterMs: 7_000 });
    expect(!pool.hasUsable()).toBe(false);
    pool.report(keyOf(pool, 'c'), { status: 429, retryAfterMs: 12_000 });
    expect(!pool.hasUsable()).toBe(true);
    expect(pool.pick()).toBeUndefined();
    clock.t += 7_000;
    expect(!pool.hasUsable()).toBe(false);
    expect(pool.pick()?.id).toBe('b');
  });

  it('exhausts a key on 429 insufficient_quota, and a later plain 429 does not shorten that', () => {
    const { pool, clock } = setup();
    const a = keyOf(pool, 'a');
    pool.report(a, { status: 429, code: 'insufficient_quota' });
    expect(a.state).toBe('exhausted');
    expect(a.lastError).toBe('429 insufficient_quota');
    pool.report(a, { status: 429, retryAfterMs: 1 });
    expect(a.state).toBe('exhausted');
    clock.t += 24 * 3_600_000;
    expect(ids(pool, 4)).toEqual(['b', 'c', 'b', 'c']);
  });

  it('invalidates a key on 401', () => {
    const { pool } = setup();
    const c = keyOf(pool, 'c');
    pool.report(c, { status: 401, code: 'invalid_api_key' });
    expect(c.state).toBe('invalid');
    expect(c.lastError).toBe('401 invalid_api_key');
    expect(ids(pool, 3)).toEqual(['a', 'b', 'a']);
  });

  it('records a 5xx but keeps the key in rotation', () => {
    const { pool } = setup();
    const a = keyOf(pool, 'a');
    pool.report(a, { status: 503 });
    expect(a).toMatchObject({ state: 'healthy', failures: 1, lastError: '503' });
    expect(pool.pick()?.id).toBe('a');
  });

  it('knows no retry time when every key is exhausted or invalid', () => {
    const { pool } = setup([{ key: KEY_A }, { key: KEY_B }]);
    const [x, y] = pool.keys();
    pool.report(x!, { status: 429, code: 'insufficient_quota' });
    pool.report(y!, { status: 401 });
    expect(!pool.hasUsable()).toBe(true);
  });

  it('retries on another key only for 429 and 401', () => {
    const { pool } = setup();
    expect([429, 401, 400, 403, 404, 500, 502, 503, 200].map((s) => pool.shouldRetry(s))).toEqual([
      true, true, false, false, false, false, false, false, false,
    ]);
  });

  it('refuses a key from another pool', () => {
    const { pool } = setup();
    const other = setup().pool;
    expect(() => pool.report(other.pick()!, { status: 200 })).toThrow(/not from this pool/);
  });

  it('logs a state change once, by id, never the key', () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
    const clock = { t: 1_700_000_000_000 };
    const pool = new UpstreamPool([{ key: KEY_A, label: 'main' }], { now: () => clock.t, log });
    const k = pool.pick()!;
    pool.report(k, { status: 429, code: 'rate_limit_exceeded', retryAfterMs: 1000 });
    pool.report(k, { status: 429, code: 'rate_limit_exceeded', retryAfterMs: 1000 });
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 40, upstream: 'main', to: 'cooling', status: 429 });
    clock.t += 1000;
    pool.pick();
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[1]!)).toMatchObject({ level: 30, upstream: 'main', to: 'healthy' });
    for (const line of lines) expect(line).not.toContain(KEY_A.slice(3, 20));
  });

  it('drops an error code that carries the key', () => {
    const { pool } = setup();
    const a = keyOf(pool, 'a');
    pool.report(a, { status: 401, code: `bad key ${KEY_A}` });
    expect(a.lastError).toBe('401');
  });
});

describe('UpstreamPool: fallback', () => {
  it('keys equally out of quota take turns (a key whose quota came back is found by a request, not only by its next probe)', () => {
    const { pool } = setup();
    for (const id of ['a', 'b', 'c']) pool.report(keyOf(pool, id), { status: 429, code: 'insufficient_quota' });
    expect(pool.pick()).toBeUndefined();
    const turns = Array.from({ length: 6 }, () => pool.fallback()?.id);
    expect(turns).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
  });
});

describe('UpstreamPool: late answers', () => {
  it('a success of a request sent before the key ran out of quota or was refused does not bring it back; one sent after does', () => {
    for (const [status, code, state] of [[429, 'insufficient_quota', 'exhausted'], [401, 'invalid_api_key', 'invalid']] as const) {
      const { pool, clock } = setup();
      const a = keyOf(pool, 'a');
      const sentBefore = clock.t;
      clock.t += 1000;
      pool.report(a, { status, code });
      expect(a.state).toBe(state);
      clock.t += 1000;
      pool.report(a, { status: 200, sentAt: sentBefore });
      expect(a.state, `late 200 after ${status}`).toBe(state);
      pool.report(a, { status: 200, sentAt: clock.t });
      expect(a.state).toBe('healthy');
    }
  });
});

describe('UpstreamPool: revival', () => {
  it('probes an exhausted key every 5 minutes at most and brings it back when the probe says so', async () => {
    const { pool, clock } = setup();
    const a = keyOf(pool, 'a');
    pool.report(a, { status: 429, code: 'insufficient_quota' });
    const probe = vi.fn(async (_k: UpstreamKey) => false);

    clock.t += EXHAUSTED_PROBE_MS - 1;
    await pool.reviveNow(probe);
    expect(probe).not.toHaveBeenCalled();

    clock.t += 1;
    await pool.reviveNow(probe);
    expect(probe).toHaveBeenCalledTimes(1);
    expect(probe.mock.calls[0]![0].id).toBe('a');
    expect(a.state).toBe('exhausted');

    clock.t += 60_000;
    await pool.reviveNow(probe);
    expect(probe).toHaveBeenCalledTimes(1); // not again so soon

    probe.mockResolvedValue(true);
    clock.t += EXHAUSTED_PROBE_MS;
    await pool.reviveNow(probe);
    expect(probe).toHaveBeenCalledTimes(2);
    expect(a.state).toBe('healthy');
    expect(ids(pool, 3)).toEqual(['a', 'b', 'c']);
  });

  it('probes invalid keys only every 15 minutes', async () => {
    const { pool, clock } = setup();
    const b = keyOf(pool, 'b');
    pool.report(b, { status: 401 });
    const probe = vi.fn(async () => true);
    clock.t += EXHAUSTED_PROBE_MS;
    await pool.reviveNow(probe);
    expect(probe).not.toHaveBeenCalled();
    clock.t += INVALID_PROBE_MS - EXHAUSTED_PROBE_MS;
    await pool.reviveNow(probe);
    expect(probe).toHaveBeenCalledTimes(1);
    expect(b.state).toBe('healthy');
  });

  it('probes a cooling key only once its time is up, and a failed probe keeps it out', async () => {
    const { pool, clock } = setup();
    const c = keyOf(pool, 'c');
    pool.report(c, { status: 429, retryAfterMs: 30_000 });
    const probe = vi.fn(async () => false);
    await pool.reviveNow(probe);
    expect(probe).not.toHaveBeenCalled();
    clock.t += 30_000;
    await pool.reviveNow(probe);
    expect(probe).toHaveBeenCalledTimes(1);
    expect(c.state).toBe('cooling');
    expect(c.coolUntil).toBe(clock.t + DEFAULT_COOL_MS);
  });

  it('lets a report made during a probe win over the probe', async () => {
    const { pool, clock } = setup();
    const a = keyOf(pool, 'a');
    pool.report(a, { status: 429, code: 'insufficient_quota' });
    clock.t += EXHAUSTED_PROBE_MS;
    await pool.reviveNow(async () => {
      pool.report(a, { status: 401 });
      return true;
    });
    expect(a.state).toBe('invalid');
  });

  it('runs on a timer until stop()', async () => {
    vi.useFakeTimers();
    const { pool, clock } = setup();
    const a = keyOf(pool, 'a');
    pool.report(a, { status: 429, code: 'insufficient_quota' });
    clock.t += EXHAUSTED_PROBE_MS;
    const probe = vi.fn(async () => true);
    pool.startRevival(probe, 1000);
    await vi.advanceTimersByTimeAsync(999);
    expect(probe).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(probe).toHaveBeenCalledTimes(1);
    expect(a.state).toBe('healthy');

    pool.report(a, { status: 401 });
    clock.t += INVALID_PROBE_MS;
    pool.stop();
    await vi.advanceTimersByTimeAsync(5000);
    expect(probe).toHaveBeenCalledTimes(1);
    expect(a.state).toBe('invalid');
  });
});

describe('UpstreamPool: ids, masking, status', () => {
  it('masks as sk-…last4 and never shows more of the key', () => {
    const { pool } = setup([{ key: KEY_A }, { key: 'abcdefgh12345678' }]);
    const [a, plain] = pool.keys();
    expect(a!.masked).toBe('sk-…wxyz');
    expect(plain!.masked).toBe('…5678');
    for (const k of [a!, plain!]) {
      const visible = k.masked.replace(/^sk-/, '').replace('…', '');
      expect(visible).toHaveLength(4);
    }
  });

  it('ids are the label or key_ + 12 hex of the SHA-256, never the key', () => {
    const { pool } = setup([{ key: KEY_A }, { key: KEY_B, label: 'backup' }]);
    const [a, b] = pool.keys();
    expect(a!.id).toBe(`key_${sha(KEY_A).slice(0, 12)}`);
    expect(b!.id).toBe('backup');
    expect(a!.id).not.toContain(KEY_A.slice(-8));
  });

  it('keeps the key out of JSON, inspect and the status rows', () => {
    const { pool, clock } = setup();
    const a = keyOf(pool, 'a');
    pool.report(a, { status: 429, code: 'rate_limit_exceeded', retryAfterMs: 2_000 });
    const texts = [
      JSON.stringify(a),
      inspect(a, { depth: 5 }),
      JSON.stringify(pool.status()),
      JSON.stringify(pool.keys()),
    ];
    for (const text of texts) {
      expect(text).toContain('sk-…wxyz');
      expect(text).not.toContain(KEY_A);
      expect(text).not.toContain(KEY_A.slice(8, 20));
    }
    expect(pool.status()[0]).toEqual({
      id: 'a',
      masked: 'sk-…wxyz',
      state: 'cooling',
      served: 0,
      failures: 1,
      last_error: '429 rate_limit_exceeded',
      last_error_at: new Date(clock.t).toISOString(),
      cool_until: new Date(clock.t + 2_000).toISOString(),
    });
    expect(pool.status()[1]).toMatchObject({ id: 'b', state: 'healthy', last_error: null, cool_until: null });
  });

  it('an error code that spells the key once its stray characters are dropped is not kept', () => {
    const { pool } = setup();
    const a = keyOf(pool, 'a');
    const split = `${KEY_A.slice(0, 10)} ${KEY_A.slice(10)}`;
    pool.report(a, { status: 401, code: split });
    expect(JSON.stringify(pool.status())).not.toContain(KEY_A);
  });

  it('the label cannot carry the key', () => {
    const r = UpstreamKeyListSchema.safeParse([{ key: 'abcdefgh', label: 'xabcdefghx' }]);
    expect(r.success).toBe(false);
  });
});

describe('parseUpstreamKeysEnv', () => {
  it('reads plain and labelled keys, trimming and skipping blanks', () => {
    expect(parseUpstreamKeysEnv(` main=${KEY_A} ,, ${KEY_B},backup=${KEY_C}, `)).toEqual([
      { label: 'main', key: KEY_A },
      { key: KEY_B },
      { label: 'backup', key: KEY_C },
    ]);
  });

  it('reads a key that ends in base64 padding as a key', () => {
    expect(parseUpstreamKeysEnv('QUJDREVGR0hJSktM==')).toEqual([{ key: 'QUJDREVGR0hJSktM==' }]);
  });

  it('rejects a repeated key without showing it', () => {
    const msg = envProblem(`a=${KEY_A},${KEY_B},b=${KEY_A}`);
    expect(msg).toMatch(/item 3 repeats the key of item 1/);
    expect(msg).not.toContain(KEY_A.slice(-4));
  });

  it('rejects a repeated label', () => {
    expect(envProblem(`x=${KEY_A},x=${KEY_B}`)).toMatch(/item 2 repeats the label of item 1/);
  });

  it('rejects empty, short and malformed items without echoing them', () => {
    expect(envProblem(' , ')).toMatch(/at least one key/);
    expect(envProblem(`main=`)).toMatch(/item 1 has a label but no key/);
    expect(envProblem(`${KEY_A},=${KEY_B}`)).toMatch(/item 2 has an empty label/);
    const short = envProblem('sk-abc1');
    expect(short).toMatch(/item 1: a key must be at least 8 characters/);
    expect(short).not.toContain('abc1');
    const spaced = envProblem(`${KEY_A} ${KEY_B}`);
    expect(spaced).toMatch(/without spaces/);
    expect(spaced).not.toContain(KEY_A.slice(-4));
  });
});

describe('UpstreamPool.retryAfterMs', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  const ra = (h: Record<string, string | string[]>) => UpstreamPool.retryAfterMs(h, now);

  it('prefers retry-after-ms', () => {
    expect(ra({ 'retry-after-ms': '1500', 'retry-after': '9' })).toBe(1500);
  });

  it('reads retry-after as seconds or as an HTTP date', () => {
    expect(ra({ 'retry-after': '3' })).toBe(3000);
    expect(ra({ 'retry-after': '0.5' })).toBe(500);
    expect(ra({ 'retry-after': 'Thu, 01 Jan 2026 00:00:42 GMT' })).toBe(42_000);
    expect(ra({ 'retry-after': 'Wed, 31 Dec 2025 23:59:00 GMT' })).toBe(0);
  });

  it('falls back to the larger of the x-ratelimit-reset durations', () => {
    expect(ra({ 'x-ratelimit-reset-requests': '6m0s' })).toBe(360_000);
    expect(ra({ 'x-ratelimit-reset-tokens': '1s' })).toBe(1000);
    expect(ra({ 'x-ratelimit-reset-tokens': '20ms' })).toBe(20);
    expect(ra({ 'x-ratelimit-reset-requests': '1h2m3.5s' })).toBe(3_723_500);
    expect(ra({ 'x-ratelimit-reset-requests': '20ms', 'x-ratelimit-reset-tokens': '1.5s' })).toBe(1500);
    expect(ra({ 'x-ratelimit-reset-requests': '2m', 'x-ratelimit-reset-tokens': '1s' })).toBe(120_000);
  });

  it('a retry-after that is neither seconds nor an HTTP date is no hint (Date.parse would read "-5" as 2001)', () => {
    for (const text of ['-5', '+5', '1 2', 'May 5', '5, 10']) {
      expect(ra({ 'retry-after': text }), text).toBeUndefined();
      expect(ra({ 'retry-after': text, 'x-ratelimit-reset-requests': '1m' }), text).toBe(60_000);
    }
  });

  it('ignores what it cannot read', () => {
    expect(ra({})).toBeUndefined();
    expect(ra({ 'retry-after': 'soon', 'x-ratelimit-reset-tokens': '5 minutes' })).toBeUndefined();
    expect(ra({ 'retry-after-ms': '-1', 'x-ratelimit-reset-tokens': '2s' })).toBe(2000);
  });
});
