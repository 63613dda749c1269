// Several upstream keys: one rate-limited, one refused, one good. The client sees the good answer.
import http from 'node:http';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtureText } from '../mock-openai/server.js';
import { ALICE_KEY, KEYS, eventually, startKeyward, type KeywardProcess, listenLocal } from './harness.js';

/** A minimal upstream that answers by the key it is given (the shared mock accepts or refuses only). */
function keyedUpstream(): Promise<{ url: string; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    const key = (req.headers.authorization ?? '').replace('Bearer ', '');
    seen.push(`${key} ${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => {
      const json = (status: number, body: string, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', 'x-request-id': `req_${seen.length}`, ...headers });
        res.end(body);
      };
      if (key === 'sk-pool-limited-000000') {
        return json(429, fixtureText('error-429-rate-limit.json'), { 'retry-after': '30' });
      }
      if (key === 'sk-pool-refused-000000') return json(401, fixtureText('error-401-invalid-api-key.json'));
      if (key === 'sk-pool-good-00000000') return json(200, fixtureText('chat-completion.json'));
      json(401, fixtureText('error-401-invalid-api-key.json'));
    });
  });
  return listenLocal(server).then((l) => ({ ...l, seen }));
}

let up: Awaited<ReturnType<typeof keyedUpstream>>;
let kw: KeywardProcess;

beforeAll(async () => {
  up = await keyedUpstream();
  kw = await startKeyward({
    upstream: up.url,
    keys: KEYS,
    env: { OPENAI_API_KEYS: 'limited=sk-pool-limited-000000,refused=sk-pool-refused-000000,good=sk-pool-good-00000000', STATUS_PAGE: 'keyed' },
  });
});
afterAll(async () => {
  await kw?.stop();
  await up?.close();
});

describe('upstream key pool', () => {
  it('a 429 on one key and a 401 on another are retried; the client gets the good answer', async () => {
    const client = new OpenAI({ baseURL: kw.baseURL, apiKey: ALICE_KEY, maxRetries: 0 });
    const first = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] })
      .withResponse();
    expect(first.data.usage?.prompt_tokens).toBe(1258);
    // Round robin starts at "limited", then "refused", then "good": all three were tried, in order.
    expect(up.seen.map((s) => s.split(' ')[0])).toEqual(['sk-pool-limited-000000', 'sk-pool-refused-000000', 'sk-pool-good-00000000']);
    const row = await eventually(() => kw.rows().find((r) => r.request_id === first.response.headers.get('x-keyward-request-id')));
    expect(row).toMatchObject({ upstream_key: 'good', retries: 2, status: 200, outcome: 'ok', cost_nano_usd: 168300 });

    // The bad keys are now out of rotation: the next requests go straight to the good one.
    up.seen.length = 0;
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] });
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] });
    expect(up.seen.map((s) => s.split(' ')[0])).toEqual(['sk-pool-good-00000000', 'sk-pool-good-00000000']);
  });

  it('the status page shows each pool key masked with its state, and never a secret', async () => {
    const res = await fetch(kw.url + '/', { headers: { accept: 'application/json', authorization: `Bearer ${ALICE_KEY}` } });
    expect(res.status).toBe(200);
    const status = (await res.json()) as any;
    const byId = Object.fromEntries(status.upstream_keys.map((k: any) => [k.id, k]));
    expect(byId.limited).toMatchObject({ masked: 'sk-…0000', state: 'cooling' });
    expect(byId.refused).toMatchObject({ state: 'invalid' });
    expect(byId.good).toMatchObject({ state: 'healthy', served: 3 });
    expect(status.keys).toEqual({ active: 2, disabled: 0, expired: 0 });
    expect(status.today.requests).toBeGreaterThanOrEqual(3);
    expect(status.base_url).toBe(`${kw.url}/v1`);
    const html = await (await fetch(kw.url + '/', { headers: { accept: 'text/html', authorization: `Bearer ${ALICE_KEY}` } })).text();
    for (const text of [JSON.stringify(status), html]) {
      for (const secret of ['sk-pool-limited-000000', 'sk-pool-refused-000000', 'sk-pool-good-00000000', ALICE_KEY]) {
        expect(text).not.toContain(secret);
      }
    }
    expect(html).toContain('healthy');
  });

  it('the status page is keyed by default: no key, no page', async () => {
    const res = await fetch(kw.url + '/', { headers: { accept: 'application/json' } });
    expect(res.status).toBe(401);
    expect(((await res.json()) as any).error.code).toBe('invalid_api_key');
  });
});

describe('a 429 whose body breaks off while it is read', () => {
  it('still cools that key and is retried on another; the client gets the good answer', async () => {
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      const key = (req.headers.authorization ?? '').replace('Bearer ', '');
      seen.push(key);
      req.resume();
      req.on('end', () => {
        if (key === 'sk-pool-cut-0000000000') {
          res.writeHead(429, { 'content-type': 'application/json', 'content-length': '500', 'retry-after': '30' });
          res.write('{"error":{"message":"Rate limit reached');
          setTimeout(() => res.destroy(), 20);
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json', 'x-request-id': 'req_good' });
        res.end(fixtureText('chat-completion.json'));
      });
    });
    const local = await listenLocal(server);
    const k = await startKeyward({
      upstream: local.url,
      keys: KEYS,
      env: { OPENAI_API_KEYS: 'cut=sk-pool-cut-0000000000,good=sk-pool-good-00000000', STATUS_PAGE: 'public' },
    });
    try {
      const client = new OpenAI({ baseURL: k.baseURL, apiKey: ALICE_KEY, maxRetries: 0 });
      const first = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }).withResponse();
      expect(first.data.usage?.prompt_tokens).toBe(1258);
      expect(seen).toEqual(['sk-pool-cut-0000000000', 'sk-pool-good-00000000']);
      const row = await eventually(() => k.rows().find((r) => r.request_id === first.response.headers.get('x-keyward-request-id')));
      expect(row).toMatchObject({ upstream_key: 'good', retries: 1, status: 200, outcome: 'ok' });
      const status = (await (await fetch(k.url + '/', { headers: { accept: 'application/json' } })).json()) as { upstream_keys: { id: string; state: string }[] };
      expect(status.upstream_keys.find((x) => x.id === 'cut')?.state).toBe('cooling');
    } finally {
      await k.stop();
      await local.close();
    }
  });
});
