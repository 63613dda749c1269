// Access policy building blocks: endpoint families, model globs, policy resolution, rate limiter,
// budgets and request estimates. Clocks are injected; nothing here touches the network.
import { describe, expect, it } from 'vitest';
import type { RequestContext } from '../../src/http/context.js';
import { BudgetTracker } from '../../src/policy/budget.js';
import { DEFAULT_OUTPUT_RESERVE, FALLBACK_RESERVE_NANO, estimateRequest, textTokens } from '../../src/policy/estimate.js';
import { FAMILIES, INFERENCE_FAMILIES, familyOf, type Family } from '../../src/policy/families.js';
import { compileModelGlobs } from '../../src/policy/modelMatch.js';
import { pathProblem } from '../../src/policy/plainPath.js';
import { DEFAULT_POLICY, resolvePolicy } from '../../src/policy/policy.js';
import { RateLimiter, formatReset } from '../../src/policy/rateLimiter.js';
import { DefaultsSchema, PolicyFieldsSchema } from '../../src/policy/schema.js';
import { endpointOf } from '../../src/usage/endpoint.js';
import { Pricing } from '../../src/usage/pricing.js';

describe('familyOf', () => {
  const cases: [string, string, Family][] = [
    ['POST', '/v1/chat/completions', 'chat'],
    ['POST', '/v1/chat/completions/', 'chat'],
    ['POST', '/v1/responses', 'responses'],
    ['GET', '/v1/responses/resp_123', 'responses'],
    ['POST', '/v1/completions', 'completions'],
    ['POST', '/v1/embeddings', 'embeddings'],
    ['POST', '/v1/images/generations', 'images'],
    ['POST', '/v1/images/edits', 'images'],
    ['POST', '/v1/audio/transcriptions', 'audio'],
    ['POST', '/v1/audio/speech', 'audio'],
    ['POST', '/v1/moderations', 'moderations'],
    ['GET', '/v1/models', 'models'],
    ['GET', '/v1/models/gpt-4o-mini', 'models'],
    ['POST', '/v1/realtime/sessions', 'realtime_direct'],
    ['POST', '/v1/realtime/client_secrets', 'realtime_direct'],
    ['POST', '/v1/realtime/calls', 'realtime_direct'],
    ['POST', '/v1/realtime', 'realtime_direct'],
    ['GET', '/v1/realtime', 'realtime'],
    ['POST', '/v1/conversations', 'conversations'],
    ['GET', '/v1/files', 'files'],
    ['DELETE', '/v1/files/file-abc', 'files'],
    ['GET', '/v1/files/file-abc/content', 'files'],
    ['POST', '/v1/uploads/upload_1/parts', 'uploads'],
    ['POST', '/v1/batches', 'batches'],
    ['POST', '/v1/vector_stores/vs_1/files', 'vector_stores'],
    ['POST', '/v1/assistants', 'assistants'],
    ['POST', '/v1/threads', 'assistants'],
    ['POST', '/v1/threads/thread_1/runs', 'assistants'],
    ['GET', '/v1/threads/thread_1/messages', 'assistants'],
    ['POST', '/v1/fine_tuning/jobs', 'fine_tuning'],
    ['GET', '/v1/fine_tunes', 'fine_tuning'],
    ['POST', '/v1/evals', 'evals'],
    ['POST', '/v1/containers/cntr_1/files', 'containers'],
    ['POST', '/v1/videos', 'videos'],
    ['GET', '/v1/organization/usage/completions', 'organization'],
    ['GET', '/v1/organization/projects', 'organization'],
  ];
  it.each(cases)('%s %s → %s', (method, path, family) => {
    expect(familyOf(method, path)).toBe(family);
  });

  it('every family but `other` is reachable by some path above', () => {
    const seen = new Set(cases.map((c) => c[2]));
    seen.add('stored_completions');
    expect(FAMILIES.filter((f) => !seen.has(f))).toEqual(['other']);
  });

  it('stored chat completions (list, read, update, delete, messages) are not `chat`', () => {
    expect(familyOf('GET', '/v1/chat/completions')).toBe('stored_completions');
    expect(familyOf('GET', '/v1/chat/completions/chatcmpl-1')).toBe('stored_completions');
    expect(familyOf('POST', '/v1/chat/completions/chatcmpl-1')).toBe('stored_completions');
    expect(familyOf('DELETE', '/v1/chat/completions/chatcmpl-1')).toBe('stored_completions');
    expect(familyOf('GET', '/v1/chat/completions/chatcmpl-1/messages')).toBe('stored_completions');
  });

  it('answers the same from its memo: per method, and after the memo was emptied', () => {
    expect(familyOf('POST', '/v1/chat/completions')).toBe('chat');
    expect(familyOf('GET', '/v1/chat/completions')).toBe('stored_completions');
    expect(familyOf('POST', '/v1/chat/completions')).toBe('chat');
    // More distinct paths than the memo holds, then the first ones again.
    for (let i = 0; i < 2500; i++) expect(familyOf('GET', `/v1/files/file-${i}`)).toBe('files');
    expect(familyOf('DELETE', '/v1/models/m')).toBe('fine_tuning');
    expect(familyOf('GET', '/v1/models/m')).toBe('models');
    expect(familyOf('GET', '/v1/files/file-0')).toBe('files');
    expect(familyOf('POST', '/v1/chat/completions')).toBe('chat');
    // Long paths are classified without the memo, the same way.
    expect(familyOf('GET', `/v1/files/${'f'.repeat(5000)}`)).toBe('files');
    expect(familyOf('POST', `/v1/chat/completions${'/x'.repeat(200)}`)).toBe('stored_completions');
  });

  it('deleting a model is fine_tuning; reading one is models', () => {
    expect(familyOf('DELETE', '/v1/models/ft:gpt-4o-mini:acme::abc123')).toBe('fine_tuning');
    expect(familyOf('GET', '/v1/models/ft:gpt-4o-mini:acme::abc123')).toBe('models');
  });

  it('unknown paths and anything outside /v1/ are `other`', () => {
    expect(familyOf('POST', '/v1/something_new')).toBe('other');
    expect(familyOf('POST', '/v1/chat')).toBe('other');
    expect(familyOf('POST', '/v1/chat/other')).toBe('other');
    expect(familyOf('GET', '/v1')).toBe('other');
    expect(familyOf('GET', '/v1/')).toBe('other');
    expect(familyOf('POST', '/v2/chat/completions')).toBe('other');
    expect(familyOf('POST', '/chat/completions')).toBe('other');
    expect(familyOf('GET', '/health')).toBe('other');
    expect(familyOf('GET', '/')).toBe('other');
  });

  it('a path with dot segments (plain or percent-encoded) has no family', () => {
    expect(familyOf('GET', '/v1/embeddings/../files')).toBe('other');
    expect(familyOf('GET', '/v1/embeddings/%2e%2e/files')).toBe('other');
    expect(familyOf('GET', '/v1/embeddings/%2E./files')).toBe('other');
    expect(familyOf('GET', '/v1/chat/completions/../../files')).toBe('other');
    expect(familyOf('POST', '/v1/./chat/completions')).toBe('other');
    expect(familyOf('GET', '/v1/models/gpt-4o-mini/../gpt-4.1')).toBe('other');
    expect(familyOf('GET', '/v1/../v1/files')).toBe('other');
    // Dots inside a segment are ordinary characters.
    expect(familyOf('GET', '/v1/models/gpt-4.1')).toBe('models');
    expect(familyOf('GET', '/v1/files/file...abc')).toBe('files');
  });

  it('Object.prototype names are unknown paths, not families', () => {
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
      expect(familyOf('GET', `/v1/${name}`), name).toBe('other');
    }
  });

  it('the inference set is exactly the eight named in the issue', () => {
    expect([...INFERENCE_FAMILIES].sort()).toEqual(
      ['audio', 'chat', 'completions', 'embeddings', 'images', 'models', 'moderations', 'responses'],
    );
  });
});

describe('model globs', () => {
  it('`*` is any run of characters, whole id', () => {
    const allows = compileModelGlobs(['gpt-4o*']);
    expect(allows('gpt-4o')).toBe(true);
    expect(allows('gpt-4o-mini')).toBe(true);
    expect(allows('gpt-4o-mini-2024-07-18')).toBe(true);
    expect(allows('gpt-4.1')).toBe(false);
    expect(allows('gpt-4.1-mini')).toBe(false);
    expect(allows('my-gpt-4o')).toBe(false); // anchored at the start
  });

  it('without a wildcard only the exact id matches, case-sensitively', () => {
    const allows = compileModelGlobs(['gpt-4o-mini']);
    expect(allows('gpt-4o-mini')).toBe(true);
    expect(allows('gpt-4o-mini-2024-07-18')).toBe(false);
    expect(allows('GPT-4o-mini')).toBe(false);
    expect(allows('gpt-4o-min')).toBe(false);
  });

  it('`?` is exactly one character', () => {
    const allows = compileModelGlobs(['o?-mini']);
    expect(allows('o4-mini')).toBe(true);
    expect(allows('o3-mini')).toBe(true);
    expect(allows('o-mini')).toBe(false);
    expect(allows('o10-mini')).toBe(false);
  });

  it('regex metacharacters in patterns are literal', () => {
    expect(compileModelGlobs(['gpt-4.1'])('gpt-4x1')).toBe(false);
    expect(compileModelGlobs(['gpt-4.1'])('gpt-4.1')).toBe(true);
    expect(compileModelGlobs(['a+b'])('aab')).toBe(false);
    expect(compileModelGlobs(['a+b'])('a+b')).toBe(true);
    expect(compileModelGlobs(['(a|b)'])('a')).toBe(false);
    expect(compileModelGlobs(['(a|b)'])('(a|b)')).toBe(true);
    expect(compileModelGlobs(['[ab]'])('a')).toBe(false);
    expect(compileModelGlobs(['[ab]'])('[ab]')).toBe(true);
    expect(compileModelGlobs(['x{2}'])('xx')).toBe(false);
    expect(compileModelGlobs(['^x$'])('x')).toBe(false);
    expect(compileModelGlobs(['^x$'])('^x$')).toBe(true);
    expect(compileModelGlobs(['a\\d'])('a1')).toBe(false);
    expect(compileModelGlobs(['a\\d'])('a\\d')).toBe(true);
    expect(compileModelGlobs(['ft:gpt-4o-mini:acme::*'])('ft:gpt-4o-mini:acme::abc')).toBe(true);
  });

  it('a model may match any of several patterns; `*` alone matches everything', () => {
    const allows = compileModelGlobs(['gpt-4o*', 'text-embedding-3-*']);
    expect(allows('text-embedding-3-small')).toBe(true);
    expect(allows('text-embedding-ada-002')).toBe(false);
    expect(compileModelGlobs(['*'])('anything-at-all')).toBe(true);
  });

  it('a model id with a newline cannot slip past a wildcard', () => {
    expect(compileModelGlobs(['gpt-4o*'])('gpt-4o\ngpt-4.1')).toBe(false);
    expect(compileModelGlobs(['gpt-4o-mini'])('gpt-4o-mini\n')).toBe(false);
  });
});

describe('policy schema', () => {
  it('accepts every field, and null for limits', () => {
    const ok = PolicyFieldsSchema.safeParse({
      endpoints: ['inference', 'files', '*'],
      models: ['gpt-4o*'],
      rpm: 60,
      tpm: null,
      budget: { daily_usd: 1.5, monthly_usd: null, total_usd: 0 },
    });
    expect(ok.success).toBe(true);
  });

  it.each([
    [{ rpm: -1 }, 'rpm'],
    [{ rpm: 0 }, 'rpm'],
    [{ rpm: 1.5 }, 'rpm'],
    [{ tpm: '1000' }, 'tpm'],
    [{ endpoints: ['chat', 'nope'] }, 'endpoints'],
    [{ endpoints: [] }, 'endpoints'],
    [{ models: [] }, 'models'],
    [{ models: [''] }, 'models'],
    [{ budget: { daily_usd: -1 } }, 'budget'],
    [{ budget: { weekly_usd: 1 } }, 'budget'],
  ])('refuses %j (field %s)', (fields, field) => {
    const r = PolicyFieldsSchema.safeParse(fields);
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path[0]).toBe(field);
  });

  it('defaults are strict: an unknown field is an error', () => {
    expect(DefaultsSchema.safeParse({ rpm: 10 }).success).toBe(true);
    expect(DefaultsSchema.safeParse({ rmp: 10 }).success).toBe(false);
  });
});

describe('resolvePolicy', () => {
  it('with nothing set: inference families only, any model, no limits', () => {
    const p = resolvePolicy();
    expect([...p.families].sort()).toEqual([...INFERENCE_FAMILIES].sort());
    expect(p.models).toBeUndefined();
    expect(p.rpm).toBeUndefined();
    expect(p.tpm).toBeUndefined();
    expect(p.budget).toEqual({ daily: undefined, monthly: undefined, total: undefined });
    expect(DEFAULT_POLICY.families.has('files')).toBe(false);
    expect(DEFAULT_POLICY.families.has('other')).toBe(false);
  });

  it('defaults apply when the key sets nothing', () => {
    const p = resolvePolicy({ endpoints: ['chat'], models: ['gpt-4o*'], rpm: 10, tpm: 1000, budget: { daily_usd: 2 } }, {});
    expect([...p.families]).toEqual(['chat']);
    expect(p.models!.patterns).toEqual(['gpt-4o*']);
    expect(p.models!.allows('gpt-4o-mini')).toBe(true);
    expect(p.models!.allows('gpt-4.1')).toBe(false);
    expect(p.rpm).toBe(10);
    expect(p.tpm).toBe(1000);
    expect(p.budget.daily).toBe(2_000_000_000);
  });

  it('the key\'s own fields replace the defaults (endpoints and models whole)', () => {
    const p = resolvePolicy(
      { endpoints: ['chat', 'embeddings'], models: ['gpt-4o*'], rpm: 10, tpm: 1000 },
      { endpoints: ['files'], models: ['gpt-4.1'], rpm: 99, tpm: 5000 },
    );
    expect([...p.families]).toEqual(['files']);
    expect(p.models!.allows('gpt-4o-mini')).toBe(false);
    expect(p.models!.allows('gpt-4.1')).toBe(true);
    expect(p.rpm).toBe(99);
    expect(p.tpm).toBe(5000);
  });

  it('budget is merged limit by limit; null removes a default', () => {
    const p = resolvePolicy(
      { budget: { daily_usd: 1, monthly_usd: 20, total_usd: 100 } },
      { budget: { monthly_usd: 50, total_usd: null } },
    );
    expect(p.budget).toEqual({ daily: 1e9, monthly: 50e9, total: undefined });
  });

  it('null removes a default rpm / tpm', () => {
    const p = resolvePolicy({ rpm: 10, tpm: 1000 }, { rpm: null, tpm: null });
    expect(p.rpm).toBeUndefined();
    expect(p.tpm).toBeUndefined();
  });

  it('budgets convert to integer nano-dollars', () => {
    const p = resolvePolicy({}, { budget: { daily_usd: 0.1, monthly_usd: 0.3, total_usd: 0 } });
    expect(p.budget).toEqual({ daily: 100_000_000, monthly: 300_000_000, total: 0 });
    expect(Number.isInteger(p.budget.monthly)).toBe(true);
  });

  it('"inference" stands for the default set and may be combined; "*" is every family', () => {
    const p = resolvePolicy({}, { endpoints: ['inference', 'files'] });
    expect([...p.families].sort()).toEqual([...INFERENCE_FAMILIES, 'files'].sort());
    const all = resolvePolicy({}, { endpoints: ['*'] });
    expect([...all.families].sort()).toEqual([...FAMILIES].sort());
    expect(all.families.has('other')).toBe(true);
    expect(all.families.has('organization')).toBe(true);
  });

  it('a key that names one family loses the rest of the inference set', () => {
    const p = resolvePolicy({}, { endpoints: ['embeddings'] });
    expect([...p.families]).toEqual(['embeddings']);
    expect(p.families.has('chat')).toBe(false);
  });
});

describe('RateLimiter', () => {
  const clock = (start = 1_000_000) => {
    let t = start;
    return { now: () => t, advance: (ms: number) => (t += ms) };
  };

  it('rpm: passes `rpm` requests, then refuses with the time until one request is back', () => {
    const c = clock();
    const rl = new RateLimiter(c.now);
    for (let i = 0; i < 3; i++) expect(rl.take('k', 3, undefined, 0)).toBeUndefined();
    const r = rl.take('k', 3, undefined, 0)!;
    expect(r).toMatchObject({ kind: 'requests', limit: 3, requested: 1 });
    expect(r.retryAfterMs).toBe(20_000); // 3 per minute: one every 20 s
    expect(r.requests).toEqual({ limit: 3, remaining: 0, resetMs: 60_000 });
    expect(r.tokens).toBeUndefined();
  });

  it('rpm: refills continuously; retryAfter shrinks as time passes', () => {
    const c = clock();
    const rl = new RateLimiter(c.now);
    for (let i = 0; i < 3; i++) rl.take('k', 3, undefined, 0);
    c.advance(5_000);
    expect(rl.take('k', 3, undefined, 0)!.retryAfterMs).toBe(15_000);
    c.advance(15_000);
    expect(rl.take('k', 3, undefined, 0)).toBeUndefined();
    expect(rl.take('k', 3, undefined, 0)).toBeDefined();
    c.advance(60_000 * 10); // never more than the limit
    for (let i = 0; i < 3; i++) expect(rl.take('k', 3, undefined, 0)).toBeUndefined();
    expect(rl.take('k', 3, undefined, 0)).toBeDefined();
  });

  it('keys have separate buckets', () => {
    const rl = new RateLimiter(clock().now);
    expect(rl.take('a', 1, undefined, 0)).toBeUndefined();
    expect(rl.take('a', 1, undefined, 0)).toBeDefined();
    expect(rl.take('b', 1, undefined, 0)).toBeUndefined();
  });

  it('no limits: always passes', () => {
    const rl = new RateLimiter(clock().now);
    for (let i = 0; i < 1000; i++) expect(rl.take('k', undefined, undefined, 1e9)).toBeUndefined();
  });

  it('tpm: the estimate is taken; a request that does not fit waits for the missing tokens', () => {
    const c = clock();
    const rl = new RateLimiter(c.now);
    expect(rl.take('k', undefined, 6000, 4000)).toBeUndefined();
    const r = rl.take('k', undefined, 6000, 4000)!;
    expect(r).toMatchObject({ kind: 'tokens', limit: 6000, requested: 4000 });
    expect(r.retryAfterMs).toBe(20_000); // 2000 missing at 100 tokens/s
    expect(r.tokens).toEqual({ limit: 6000, remaining: 2000, resetMs: 40_000 });
  });

  it('tpm: settle gives back an overestimate', () => {
    const rl = new RateLimiter(clock().now);
    expect(rl.take('k', undefined, 6000, 4000)).toBeUndefined();
    rl.settle('k', 6000, 4000, 1000); // used only 1000: 5000 left
    expect(rl.take('k', undefined, 6000, 5000)).toBeUndefined();
    expect(rl.take('k', undefined, 6000, 1)).toBeDefined();
  });

  it('tpm: settle takes an underestimate, and the bucket may go below zero', () => {
    const c = clock();
    const rl = new RateLimiter(c.now);
    expect(rl.take('k', undefined, 6000, 1000)).toBeUndefined();
    rl.settle('k', 6000, 1000, 9000); // really used 9000: level -3000
    const r = rl.take('k', undefined, 6000, 1)!;
    expect(r.kind).toBe('tokens');
    expect(r.tokens!.remaining).toBe(0);
    expect(r.retryAfterMs).toBe(30_010); // 3001 tokens at 100/s
    c.advance(30_010);
    expect(rl.take('k', undefined, 6000, 1)).toBeUndefined();
  });

  it('a request larger than the whole tpm can never pass: retryAfter Infinity', () => {
    const rl = new RateLimiter(clock().now);
    const r = rl.take('k', 10, 1000, 1001)!;
    expect(r.kind).toBe('tokens');
    expect(r.retryAfterMs).toBe(Infinity);
    expect(rl.take('k', 10, 1000, 1000)).toBeUndefined(); // exactly the limit fits
  });

  it('takes both or neither: a token refusal does not use a request, a request refusal no tokens', () => {
    const rl = new RateLimiter(clock().now);
    expect(rl.take('k', 2, 1000, 900)).toBeUndefined();
    expect(rl.take('k', 2, 1000, 900)!.kind).toBe('tokens');
    expect(rl.take('k', 2, 1000, 100)).toBeUndefined(); // the second request was still there
    const r = rl.take('k', 2, 1000, 0)!;
    expect(r.kind).toBe('requests');
    expect(r.tokens).toEqual({ limit: 1000, remaining: 0, resetMs: 60_000 });
  });

  it('settle without tpm does nothing', () => {
    const rl = new RateLimiter(clock().now);
    rl.settle('k', undefined, 100, 1_000_000);
    expect(rl.take('k', undefined, 10, 10)).toBeUndefined();
  });
});

describe('formatReset', () => {
  it.each([
    [0, '0s'],
    [-5, '0s'],
    [Infinity, '0s'],
    [20, '20ms'],
    [0.2, '1ms'],
    [1000, '1s'],
    [1001, '2s'],
    [20_000, '20s'],
    [59_500, '1m0s'],
    [360_000, '6m0s'],
    [61_000, '1m1s'],
    [3_600_000, '1h0m0s'],
    [3_723_000, '1h2m3s'],
  ])('%s ms → %s', (ms, text) => {
    expect(formatReset(ms)).toBe(text);
  });
});

describe('BudgetTracker', () => {
  const at = (iso: string) => Date.parse(iso);
  const clockAt = (iso: string) => {
    let t = at(iso);
    return { now: () => t, set: (s: string) => (t = at(s)) };
  };

  it('no limits: always admits and reserves nothing', () => {
    const b = new BudgetTracker([]);
    expect(b.reserve('k', {}, 1e12)).toBeUndefined();
    b.settle('k', 0, 5);
    expect(b.spendOf('k')).toEqual({ day: 5, month: 5, total: 5 });
  });

  it('admits while the estimate fits beside what is reserved; settle swaps the reservation for the cost', () => {
    const b = new BudgetTracker([]);
    const limits = { total: 1000 };
    expect(b.reserve('k', limits, 600)).toBeUndefined();
    // 600 + 600 > 1000 while another request is in flight: refused (it could only run alone).
    expect(b.reserve('k', limits, 600)).toMatchObject({ window: 'total', limit: 1000, spent: 0 });
    b.settle('k', 600, 100);
    expect(b.spendOf('k')).toEqual({ day: 100, month: 100, total: 100 });
    expect(b.reserve('k', limits, 600)).toBeUndefined();
    expect(b.reserve('k', limits, 300)).toBeUndefined(); // 100 + 600 + 300 = 1000: still fits
    expect(b.reserve('k', limits, 1)).toMatchObject({ window: 'total' });
    b.settle('k', 600, 500);
    b.settle('k', 300, 400); // now spent 1000
    expect(b.reserve('k', limits, 1)).toMatchObject({ window: 'total', spent: 1000 });
  });

  it('over-budget bound: concurrent requests never reserve past the limit, except one running alone', () => {
    for (const [limit, est, expected] of [
      [1000, 100, 10], // exactly N = 10
      [1050, 100, 10], // N = 10; the 11th does not fit beside the others in flight
      [99, 100, 1], // room for less than one: one may run, alone
      [0, 100, 0], // a zero budget admits nothing
    ] as const) {
      const b = new BudgetTracker([]);
      let admitted = 0;
      for (let i = 0; i < 50; i++) if (!b.reserve('k', { daily: limit }, est)) admitted++;
      expect(admitted, `limit ${limit}`).toBe(expected);
      expect(admitted).toBeLessThanOrEqual(Math.floor(limit / est) + 1);
    }
  });

  it('each window is checked; the first used up is named', () => {
    const b = new BudgetTracker([['k', { day: 50, month: 500, total: 5000 }]]);
    expect(b.reserve('k', { daily: 100, monthly: 400, total: 10_000 }, 1)).toMatchObject({ window: 'monthly', spent: 500 });
    expect(b.reserve('k', { daily: 50, monthly: 400 }, 1)).toMatchObject({ window: 'daily', spent: 50 });
    expect(b.reserve('k', { total: 5000 }, 1)).toMatchObject({ window: 'total', limit: 5000, spent: 5000 });
    expect(b.reserve('k', { daily: 51, monthly: 501, total: 5001 }, 1)).toBeUndefined();
  });

  it('starts from the spend in the store, per key', () => {
    const b = new BudgetTracker([
      ['a', { day: 10, month: 20, total: 30 }],
      ['b', { day: 0, month: 0, total: 1000 }],
    ]);
    expect(b.spendOf('a')).toEqual({ day: 10, month: 20, total: 30 });
    expect(b.reserve('b', { total: 1000 }, 1)).toMatchObject({ window: 'total', spent: 1000 });
    expect(b.reserve('b', { daily: 1000 }, 1)).toBeUndefined();
    expect(b.spendOf('nobody')).toEqual({ day: 0, month: 0, total: 0 });
  });

  it('the initial spend is copied, not aliased', () => {
    const initial = { day: 1, month: 1, total: 1 };
    const b = new BudgetTracker([['k', initial]]);
    b.settle('k', 0, 10);
    expect(initial).toEqual({ day: 1, month: 1, total: 1 });
  });

  it('the day window rolls over at UTC midnight, the month stays', () => {
    const c = clockAt('2026-03-14T23:59:59.000Z');
    const b = new BudgetTracker([['k', { day: 100, month: 300, total: 900 }]], c.now);
    expect(b.reserve('k', { daily: 100 }, 1)).toMatchObject({ window: 'daily' });
    c.set('2026-03-15T00:00:00.000Z');
    expect(b.spendOf('k')).toEqual({ day: 0, month: 300, total: 900 });
    expect(b.reserve('k', { daily: 100 }, 1)).toBeUndefined();
  });

  it('the month window rolls over at the UTC month boundary, not local time', () => {
    const c = clockAt('2026-01-31T23:30:00.000Z');
    const b = new BudgetTracker([], c.now);
    b.settle('k', 0, 700);
    expect(b.reserve('k', { monthly: 700 }, 1)).toMatchObject({ window: 'monthly', spent: 700 });
    c.set('2026-02-01T00:00:00.001Z');
    expect(b.spendOf('k')).toEqual({ day: 0, month: 0, total: 700 });
    expect(b.reserve('k', { monthly: 700 }, 1)).toBeUndefined();
    expect(b.reserve('k', { total: 700 }, 1)).toMatchObject({ window: 'total' });
  });

  it('rollover resets every key, including ones not asked about since', () => {
    const c = clockAt('2026-05-31T12:00:00Z');
    const b = new BudgetTracker(
      [
        ['a', { day: 5, month: 5, total: 5 }],
        ['b', { day: 7, month: 7, total: 7 }],
      ],
      c.now,
    );
    c.set('2026-06-01T12:00:00Z');
    expect(b.spendOf('a')).toEqual({ day: 0, month: 0, total: 5 });
    expect(b.spendOf('b')).toEqual({ day: 0, month: 0, total: 7 });
  });

  it('a reservation still in flight counts after a rollover', () => {
    const c = clockAt('2026-05-31T23:59:00Z');
    const b = new BudgetTracker([], c.now);
    expect(b.reserve('k', { daily: 100 }, 150)).toBeUndefined();
    c.set('2026-06-01T00:00:01Z');
    expect(b.reserve('k', { daily: 100 }, 1)).toMatchObject({ window: 'daily' });
    b.settle('k', 150, 20);
    expect(b.spendOf('k')).toEqual({ day: 20, month: 20, total: 20 });
    expect(b.reserve('k', { daily: 100 }, 1)).toBeUndefined();
  });
});

describe('estimateRequest', () => {
  const pricing = Pricing.bundled();
  const ctx = (path: string, body: unknown, method = 'POST'): RequestContext => {
    const c = { method, path, endpoint: endpointOf(path) } as Partial<RequestContext>;
    if (body !== undefined) c.bodyJson = body;
    if (body && typeof body === 'object' && typeof (body as { model?: unknown }).model === 'string') {
      c.requestModel = (body as { model: string }).model;
    }
    return c as RequestContext;
  };
  // gpt-4o-mini: $0.15 / 1M input = 150 nano per token, $0.60 / 1M output = 600 nano per token.
  // Text of `n` characters with spaces (a long unbroken run of letters would look like base64).
  const words = (n: number) => 'ab '.repeat(Math.ceil(n / 3)).slice(0, n);
  const cost = (input: number, output: number) => input * 150 + output * 600;
  // messages: [{ role: 'user', content }] → role 'user' 2 + 1, content ceil(len/3) + 1.
  const chat = (content: string, extra: Record<string, unknown> = {}) => ({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content }],
    ...extra,
  });

  it('token-id arrays (embeddings input as numbers) count a token each', () => {
    const ids = Array.from({ length: 50_000 }, (_, i) => i % 100_000);
    const e = estimateRequest(ctx('/v1/embeddings', { model: 'text-embedding-3-small', input: [ids, ids] }), 0, pricing);
    expect(e.tokens).toBeGreaterThanOrEqual(100_000);
  });

  it('an endpoint Keyward does not meter is not priced by the model in its body (creating an assistant is not a request to it)', () => {
    const e = estimateRequest(ctx('/v1/assistants', { model: 'o1-pro', instructions: 'be brief' }), 0, pricing);
    expect(e.costNano).toBe(FALLBACK_RESERVE_NANO);
  });

  it('text at 3 characters a token; max_tokens is the output', () => {
    const e = estimateRequest(ctx('/v1/chat/completions', chat('x'.repeat(30), { max_tokens: 50 })), 0, pricing);
    const input = 3 + 10 + 1;
    expect(e).toEqual({ tokens: input + 50, costNano: cost(input, 50) });
  });

  it('CJK text at one token a character, characters beyond the BMP (emoji) at two, the rest at 3 a token', () => {
    expect(textTokens('你好世界')).toBe(4); // Chinese
    expect(textTokens('こんにちはカタカナ')).toBe(9); // hiragana, katakana
    expect(textTokens('안녕하세요')).toBe(5); // Hangul syllables
    expect(textTokens('ＡＢＣ')).toBe(3); // full-width forms
    expect(textTokens('😀😀')).toBe(4);
    expect(textTokens('𠀀')).toBe(2); // CJK Extension B: a surrogate pair
    expect(textTokens('Привет мир')).toBe(4); // Cyrillic: 10 characters at 3 a token
    expect(textTokens('abc 你好')).toBe(2 + 2); // "abc " at 3 a token, then two ideographs
    expect(textTokens('')).toBe(0);
    // In a request: 300 ideographs reserve 300 tokens (they were 100 at 3 characters a token).
    const e = estimateRequest(ctx('/v1/chat/completions', chat('字'.repeat(300), { max_tokens: 10 })), 0, pricing);
    expect(e.tokens).toBe(3 + 300 + 1 + 10);
  });

  it('without a max, the default output reserve', () => {
    const e = estimateRequest(ctx('/v1/chat/completions', chat('abc')), 0, pricing);
    expect(e.tokens).toBe(3 + 2 + DEFAULT_OUTPUT_RESERVE);
    expect(e.costNano).toBe(cost(5, DEFAULT_OUTPUT_RESERVE));
  });

  it('max_completion_tokens before max_tokens; max_output_tokens for the Responses API', () => {
    const both = estimateRequest(ctx('/v1/chat/completions', chat('abc', { max_tokens: 900, max_completion_tokens: 10 })), 0, pricing);
    expect(both.tokens).toBe(5 + 10);
    const responses = estimateRequest(
      ctx('/v1/responses', { model: 'gpt-4o-mini', input: 'x'.repeat(9), max_output_tokens: 77 }),
      0,
      pricing,
    );
    expect(responses.tokens).toBe(3 + 77);
    expect(responses.costNano).toBe(cost(3, 77));
    const zero = estimateRequest(ctx('/v1/chat/completions', chat('abc', { max_tokens: 0 })), 0, pricing);
    expect(zero.tokens).toBe(5);
  });

  it('n > 1 multiplies the output', () => {
    const one = estimateRequest(ctx('/v1/chat/completions', chat('abc', { max_tokens: 100 })), 0, pricing);
    const three = estimateRequest(ctx('/v1/chat/completions', chat('abc', { max_tokens: 100, n: 3 })), 0, pricing);
    expect(one.tokens).toBe(5 + 100);
    expect(three.tokens).toBe(5 + 300);
    expect(three.costNano).toBe(cost(5, 300));
  });

  it('legacy completions count the prompt', () => {
    const e = estimateRequest(ctx('/v1/completions', { model: 'gpt-4o-mini', prompt: words(300), max_tokens: 16 }), 0, pricing);
    expect(e.tokens).toBe(100 + 16);
  });

  it('base64 media counts as a fixed number of tokens, however long', () => {
    const image = (url: string) =>
      chat('', { max_tokens: 0, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }] }] });
    const small = estimateRequest(ctx('/v1/chat/completions', image(`data:image/png;base64,${'A'.repeat(1_000)}`)), 0, pricing);
    const big = estimateRequest(ctx('/v1/chat/completions', image(`data:image/png;base64,${'A'.repeat(3_000_000)}`)), 0, pricing);
    expect(big.tokens).toBe(small.tokens);
    expect(big.tokens).toBeGreaterThanOrEqual(1000);
    expect(big.tokens).toBeLessThan(3000); // not 1,000,000 text tokens
    // Bare base64 (input_audio.data) too.
    const audio = estimateRequest(
      ctx('/v1/chat/completions', chat('', { max_tokens: 0, messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'QUJD'.repeat(100_000), format: 'wav' } }] }] })),
      0,
      pricing,
    );
    expect(audio.tokens).toBeLessThan(3000);
    // …whereas the same length of ordinary text is counted as text.
    const text = estimateRequest(ctx('/v1/chat/completions', chat('word '.repeat(60_000), { max_tokens: 0 })), 0, pricing);
    expect(text.tokens).toBe(3 + 100_000 + 1);
  });

  it('embeddings and moderations have no output', () => {
    const e = estimateRequest(ctx('/v1/embeddings', { model: 'text-embedding-3-small', input: words(300) }), 0, pricing);
    expect(e.tokens).toBe(100);
    const m = estimateRequest(ctx('/v1/moderations', { model: 'omni-moderation-latest', input: 'hello', max_tokens: 500 }), 0, pricing);
    expect(m.tokens).toBe(2);
    const arr = estimateRequest(ctx('/v1/embeddings', { model: 'text-embedding-3-small', input: ['abc', 'abcdef'] }), 0, pricing);
    expect(arr.tokens).toBe(1 + 2);
  });

  it('a body Keyward did not read counts its declared bytes', () => {
    const embed = estimateRequest(ctx('/v1/embeddings', undefined), 3000, pricing);
    expect(embed.tokens).toBe(1000);
    const chatUnread = estimateRequest(ctx('/v1/chat/completions', undefined), 300, pricing);
    expect(chatUnread.tokens).toBe(100 + DEFAULT_OUTPUT_RESERVE);
  });

  it('an unknown or unnamed model reserves the fallback amount', () => {
    const unknown = estimateRequest(ctx('/v1/chat/completions', chat('abc', { model: 'no-such-model-xyz' })), 0, pricing);
    expect(unknown.costNano).toBe(FALLBACK_RESERVE_NANO);
    const unread = estimateRequest(ctx('/v1/embeddings', undefined), 3000, pricing);
    expect(unread.costNano).toBe(FALLBACK_RESERVE_NANO);
  });

  it('anything but POST is free', () => {
    expect(estimateRequest(ctx('/v1/models', undefined, 'GET'), 0, pricing)).toEqual({ tokens: 0, costNano: 0 });
    expect(estimateRequest(ctx('/v1/files/file-1', undefined, 'DELETE'), 0, pricing)).toEqual({ tokens: 0, costNano: 0 });
  });

  it('prices by the request\'s model', () => {
    const mini = estimateRequest(ctx('/v1/chat/completions', chat(words(3000), { max_tokens: 100 })), 0, pricing);
    const big = estimateRequest(ctx('/v1/chat/completions', chat(words(3000), { max_tokens: 100, model: 'gpt-4.1' })), 0, pricing);
    expect(big.tokens).toBe(mini.tokens);
    // gpt-4.1: $2 / $8 per 1M.
    expect(mini.costNano).toBe(cost(1004, 100));
    expect(big.costNano).toBe(1004 * 2000 + 100 * 8000);
  });
});

describe('pathProblem: paths forwarded at all', () => {
  it.each([
    '/v1/chat/completions',
    '/v1/files/file-AbC123/content',
    '/v1/models/ft%3Agpt-4o-mini%3Aacme%3Aabc',
    '/v1/models/gpt-4.1',
    '/v1//files',
    '/v1/models/meta-llama%2FLlama-3.1-8B-Instruct',
    '/v1/something-new2',
    '/v1',
  ])('%s is plain', (path) => {
    expect(pathProblem(path)).toBeUndefined();
  });

  it.each([
    ['/v1/./files', 'dot segments'],
    ['/v1/embeddings/..', 'dot segments'],
    ['/v1/embeddings/%2E%2e/files', 'dot segments'],
    ['/v1/embeddings/.%2e/files', 'dot segments'],
    ['/v1/models/..%2Ffiles', 'dot segments'],
    ['/v1/models/x%2F..%2F..%2Ffiles', 'dot segments'],
    ['/v1/embeddings/..%5cfiles', 'dot segments'],
    ['/v1/embeddings/..\\files', 'backslash'],
    ['/v1/embeddings/..;/files', 'parameter'],
    ['/v1/files%00', 'NUL'],
    ['/v1/%66iles', 'endpoint name'],
    ['/v1/FILES', 'endpoint name'],
    ['/v1/Files/file-1', 'endpoint name'],
    ['/v1/files.', 'endpoint name'],
  ])('%s is refused (%s)', (path, reason) => {
    expect(pathProblem(path)).toContain(reason);
  });
});
