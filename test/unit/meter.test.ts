import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { RequestContext } from '../../src/http/context.js';
import { SqliteUsageStore } from '../../src/storage/sqlite/sqliteUsageStore.js';
import { DEFAULT_POLICY } from '../../src/policy/policy.js';
import { Meter } from '../../src/usage/meter.js';
import { settle } from '../../src/policy/authorize.js';
import { BudgetTracker } from '../../src/policy/budget.js';
import { RateLimiter } from '../../src/policy/rateLimiter.js';
import { Pricing } from '../../src/usage/pricing.js';

function ctx(over: Partial<RequestContext> = {}): RequestContext {
  return {
    id: 'r1', startedAt: Date.UTC(2026, 10, 24, 12), t0: process.hrtime.bigint(), method: 'POST',
    path: '/v1/chat/completions', endpoint: 'chat.completions', stream: false, withholdUsage: false,
    forwarded: true, usage: {}, timedOut: false, bytesIn: 10, bytesOut: 20, status: 200,
    principal: { id: 'abc', digest: 'abc', name: 'Alice', email: 'alice@example.com', disabled: false, expiresAt: undefined, source: 'keys.json', policy: DEFAULT_POLICY },
    ...over,
  };
}

function setup() {
  const lines: any[] = [];
  const log = pino({ level: 'warn' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  const store = new SqliteUsageStore(':memory:');
  return { meter: new Meter(store, Pricing.bundled({ 'my-model': { input: 1, output: 2 } }), log), store, lines };
}

describe('Meter', () => {
  it('prices a row in nano-dollars and stores it once flushed', () => {
    const { meter, store } = setup();
    meter.record(ctx({ responseModel: 'gpt-4o-mini-2024-07-18', usage: { input_tokens: 1258, cached_input_tokens: 1024, output_tokens: 94, total_tokens: 1352 } }), true);
    store.flush();
    expect(store.rows()[0]).toMatchObject({ cost_nano_usd: 168300, cost_usd: 0.0001683, outcome: 'ok', key_id: 'abc', model: 'gpt-4o-mini-2024-07-18' });
  });

  it('an unknown model keeps its tokens, cost null, and is logged once', () => {
    const { meter, store, lines } = setup();
    for (let i = 0; i < 3; i++) meter.record(ctx({ responseModel: 'gpt-99-secret', usage: { input_tokens: 5, output_tokens: 1 } }), true);
    store.flush();
    expect(store.rows().map((r) => [r.input_tokens, r.cost_nano_usd])).toEqual([[5, null], [5, null], [5, null]]);
    expect(lines.filter((l) => l.model === 'gpt-99-secret')).toHaveLength(1);
  });

  it('config price overrides apply; the request model is used when the answer names none', () => {
    const { meter, store } = setup();
    meter.record(ctx({ requestModel: 'my-model', usage: { input_tokens: 1000, output_tokens: 500 } }), true);
    store.flush();
    expect(store.rows()[0]).toMatchObject({ model: 'my-model', cost_nano_usd: 2_000_000 });
  });

  it('outcomes: client abort, upstream error, preset stream_broken; nothing for unforwarded requests', () => {
    const { meter, store } = setup();
    meter.record(ctx({ id: 'a' }), false);
    meter.record(ctx({ id: 'b', status: 429 }), true);
    meter.record(ctx({ id: 'c', outcome: 'stream_broken' }), false);
    expect(meter.record(ctx({ id: 'd', forwarded: false }), true)).toBeUndefined();
    store.flush();
    expect(store.rows().map((r) => [r.request_id, r.outcome])).toEqual([['a', 'client_aborted'], ['b', 'upstream_error'], ['c', 'stream_broken']]);
  });

  it('speech without usage is billed by the input characters', () => {
    const { meter, store } = setup();
    meter.record(ctx({ endpoint: 'audio.speech', requestModel: 'tts-1', inputCharacters: 100 }), true);
    store.flush();
    expect(store.rows()[0]).toMatchObject({ input_characters: 100, cost_nano_usd: 1500000 });
  });

  it('settle: an answered request with unknown cost is charged its estimate; a refused one nothing', () => {
    const engine = { limiter: new RateLimiter(), budgets: new BudgetTracker([]), pricing: Pricing.bundled() };
    const base = ctx({ reservation: { tokens: 10, costNano: 5000 } });
    settle(engine, base, { status: 200, cost_nano_usd: null, total_tokens: null } as never);
    expect(engine.budgets.spendOf('abc').total).toBe(5000);
    settle(engine, ctx({ reservation: { tokens: 10, costNano: 5000 } }), { status: 429, cost_nano_usd: null } as never);
    expect(engine.budgets.spendOf('abc').total).toBe(5000);
    settle(engine, ctx({ reservation: { tokens: 10, costNano: 5000 } }), { status: 200, cost_nano_usd: 42 } as never);
    expect(engine.budgets.spendOf('abc').total).toBe(5042);
  });
});
