// Access policy as a client sees it: endpoint families, model lists, rate limits, budgets, config
// defaults, a bad policy in keys.json, and the single PROXY_KEY. Every refusal is checked to have
// stayed inside Keyward (the mock records every request that reaches "OpenAI").
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RequestContext } from '../../src/http/context.js';
import { estimateRequest } from '../../src/policy/estimate.js';
import { Pricing } from '../../src/usage/pricing.js';
import { startMockOpenAI, type MockOpenAI } from '../mock-openai/server.js';
import { ALICE_KEY, BOB_KEY, KEYS, eventually, startKeyward, tempDir, type KeywardProcess } from './harness.js';

let mock: MockOpenAI;

beforeAll(async () => {
  mock = await startMockOpenAI();
});
afterAll(async () => {
  await mock?.close();
});

const FILES_KEY = 'sk-kw-files-0123456789abcdefghijk';
const OPS_KEY = 'sk-kw-ops-0123456789abcdefghijklmn';
const MODELS_KEY = 'sk-kw-models-0123456789abcdefghij';
const RPM_KEY = 'sk-kw-rpm-0123456789abcdefghijklmn';
const TPM_KEY = 'sk-kw-tpm-0123456789abcdefghijklmn';
const BUDGET_KEY = 'sk-kw-budget-0123456789abcdefghij';
const CAROL_KEY = 'sk-kw-carol-0123456789abcdefghijk';
const DAVE_KEY = 'sk-kw-dave-0123456789abcdefghijkl';
const ERIN_KEY = 'sk-kw-erin-0123456789abcdefghijkl';
const SHARED_KEY = 'sk-kw-shared-0123456789abcdefghij';
const EMBED_BUDGET_KEY = 'sk-kw-embed-budget-0123456789abcd';

/** Cost of the mock's chat completion (1258 prompt of which 1024 cached, 94 completion, gpt-4o-mini). */
const FIXTURE_COST_NANO = 168_300;

interface Raw {
  status: number;
  headers: Headers;
  json: any;
}

/** Each request carries a tag the mock records, so a test counts exactly its own forwarded requests. */
let tagSeq = 0;
const newTag = () => `policy-${process.pid}-${++tagSeq}`;
const forwardedWith = (tag: string) => mock.requests.filter((r) => r.headers['x-test-tag'] === tag).length;

async function call(
  kw: KeywardProcess,
  key: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Raw> {
  const res = await fetch(kw.url + path, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json };
}

/** node:http, so the path is sent exactly as written (fetch would resolve dot segments). */
function rawRequest(kw: KeywardProcess, key: string, method: string, path: string, headers: Record<string, string> = {}) {
  const u = new URL(kw.url);
  return new Promise<{ status: number; body: string }>((ok, fail) => {
    const req = http.request({ host: u.hostname, port: u.port, path, method, headers: { authorization: `Bearer ${key}`, ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => ok({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', fail);
    req.end();
  });
}

const chatBody = (model = 'gpt-4o-mini', extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: 'user', content: 'Hello there' }],
  ...extra,
});

function expectRefusal(r: Raw, status: number, code: string, type = 'invalid_request_error') {
  expect(r.status).toBe(status);
  expect(r.json?.error).toMatchObject({ type, code });
  expect(typeof r.json.error.message).toBe('string');
}

// ---------------------------------------------------------------------------------------------

describe('one process, a key per policy', () => {
  let kw: KeywardProcess;

  // With the budget key's burst request (below), each estimate is fixed; the budget has room for
  // five and a half of them.
  const BURST_TEXT = 'lorem ipsum '.repeat(325); // 3,900 characters, with spaces (not base64-like)
  const burstBody = chatBody('gpt-4o-mini', { messages: [{ role: 'user', content: BURST_TEXT }], max_tokens: 100 });
  // estimate.ts: role "user" ceil(4/3)+1 = 3, content ceil(3900/3)+1 = 1301 → 1304 input tokens,
  // + 100 output; gpt-4o-mini at $0.15 / $0.60 per 1M → 1304×150 + 100×600 nano-USD.
  const BURST_ESTIMATE_NANO = 1304 * 150 + 100 * 600; // 255,600 ≥ the real 168,300
  const BUDGET_LIMIT_NANO = Math.round(5.5 * BURST_ESTIMATE_NANO);
  const ROOM = Math.floor(BUDGET_LIMIT_NANO / BURST_ESTIMATE_NANO); // N = 5

  beforeAll(async () => {
    kw = await startKeyward({
      upstream: mock.url,
      keys: [
        ...KEYS,
        { key: FILES_KEY, name: 'Files', email: 'files@example.com', endpoints: ['inference', 'files'] },
        { key: OPS_KEY, name: 'Ops', email: 'ops@example.com', endpoints: ['*'] },
        { key: MODELS_KEY, name: 'Models', email: 'models@example.com', models: ['gpt-4o*'] },
        { key: RPM_KEY, name: 'Rpm', email: 'rpm@example.com', rpm: 3 },
        { key: TPM_KEY, name: 'Tpm', email: 'tpm@example.com', tpm: 1000 },
        { key: BUDGET_KEY, name: 'Budget', email: 'budget@example.com', budget: { total_usd: BUDGET_LIMIT_NANO / 1e9 } },
        { key: EMBED_BUDGET_KEY, name: 'EmbedBudget', email: 'embed-budget@example.com', budget: { daily_usd: 0.05 } },
      ],
    });
  });
  afterAll(async () => {
    await kw?.stop();
  });

  describe('endpoint families', () => {
    it('a default key may not use /v1/files: 403 endpoint_not_allowed naming the family, nothing forwarded', async () => {
      const tag = newTag();
      const r = await call(kw, ALICE_KEY, 'GET', '/v1/files', undefined, { 'x-test-tag': tag });
      expectRefusal(r, 403, 'endpoint_not_allowed');
      expect(r.json.error.message).toContain('"files"');
      expect(r.headers.get('x-request-id')).toBeTruthy();
      // An upload too: refused before its body is read or sent.
      const up = await call(kw, ALICE_KEY, 'POST', '/v1/files', { purpose: 'batch' }, { 'x-test-tag': tag });
      expectRefusal(up, 403, 'endpoint_not_allowed');
      expect(forwardedWith(tag)).toBe(0);
    });

    it('a key with endpoints ["inference", "files"] may list files, and still chat', async () => {
      const client = new OpenAI({ baseURL: kw.baseURL, apiKey: FILES_KEY, maxRetries: 0 });
      const tag = newTag();
      const page = await client.files.list({}, { headers: { 'x-test-tag': tag } });
      expect(page.data.length).toBeGreaterThan(0);
      expect(page.data[0]!.object).toBe('file');
      const chat = await client.chat.completions.create(chatBody() as any, { headers: { 'x-test-tag': tag } });
      expect(chat.object).toBe('chat.completion');
      expect(forwardedWith(tag)).toBe(2);
      // …but not anything else outside the inference set.
      expectRefusal(await call(kw, FILES_KEY, 'POST', '/v1/batches', { input_file_id: 'file-1' }), 403, 'endpoint_not_allowed');
    });

    it('inference is allowed by default; account families are not, each named in the message', async () => {
      const tag = newTag();
      const h = { 'x-test-tag': tag };
      const cases: [string, string, unknown, string][] = [
        ['GET', '/v1/chat/completions', undefined, 'stored_completions'],
        ['DELETE', '/v1/chat/completions/chatcmpl-abc', undefined, 'stored_completions'],
        ['DELETE', '/v1/models/ft:gpt-4o-mini:acme::abc123', undefined, 'fine_tuning'],
        ['POST', '/v1/fine_tuning/jobs', { model: 'gpt-4o-mini', training_file: 'file-1' }, 'fine_tuning'],
        ['POST', '/v1/threads', {}, 'assistants'],
        ['POST', '/v1/batches', { input_file_id: 'file-1' }, 'batches'],
        ['GET', '/v1/vector_stores', undefined, 'vector_stores'],
        ['GET', '/v1/organization/projects', undefined, 'organization'],
        ['POST', '/v1/realtime/sessions', { model: 'gpt-4o-realtime-preview' }, 'realtime_direct'],
        ['GET', '/v1/something-new', undefined, 'other'],
      ];
      for (const [method, path, body, family] of cases) {
        const r = await call(kw, ALICE_KEY, method, path, body, h);
        expectRefusal(r, 403, 'endpoint_not_allowed');
        expect(r.json.error.message, `${method} ${path}`).toContain(`"${family}"`);
      }
      expect(forwardedWith(tag)).toBe(0);
      // The same key's inference calls go through.
      expect((await call(kw, ALICE_KEY, 'POST', '/v1/chat/completions', chatBody(), h)).status).toBe(200);
      expect((await call(kw, ALICE_KEY, 'POST', '/v1/embeddings', { model: 'text-embedding-3-small', input: 'hi' }, h)).status).toBe(200);
      expect((await call(kw, ALICE_KEY, 'GET', '/v1/models', undefined, h)).status).toBe(200);
      expect(forwardedWith(tag)).toBe(3);
    });

    it('a path an upstream could read as another endpoint is refused for every key, "*" included: 400 invalid_path', async () => {
      const tag = newTag();
      const h = { 'x-test-tag': tag };
      const paths = [
        '/v1/embeddings/../files',
        '/v1/embeddings/%2e%2e/files',
        '/v1/models/gpt-4o-mini/../gpt-4.1',
        '/v1/./files',
        '/v1/models/..%2Ffiles',
        '/v1/embeddings/..;/files',
        '/v1/%66iles',
        '/v1/FILES',
        '/v1/files.',
      ];
      for (const key of [ALICE_KEY, OPS_KEY]) {
        for (const path of paths) {
          const r = await rawRequest(kw, key, 'GET', path, h);
          expect(r.status, path).toBe(400);
          expect(JSON.parse(r.body).error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_path', param: null });
        }
      }
      expect(forwardedWith(tag)).toBe(0);
    });

    it('"*" allows every family, unknown paths included (forwarded, answered by OpenAI)', async () => {
      const tag = newTag();
      const h = { 'x-test-tag': tag };
      const files = await call(kw, OPS_KEY, 'GET', '/v1/files', undefined, h);
      expect(files.status).toBe(200);
      const unknown = await call(kw, OPS_KEY, 'GET', '/v1/something-new', undefined, h);
      expect(unknown.status).toBe(404);
      expect(unknown.json.error.message).toContain('Invalid URL');
      // A path segment named like an Object.prototype member is just an unknown path.
      const proto = await call(kw, OPS_KEY, 'GET', '/v1/constructor', undefined, h);
      expect(proto.status).toBe(404);
      expect(proto.json.error.code).not.toBe('endpoint_not_allowed');
      expect(forwardedWith(tag)).toBe(3);
    });
  });

  describe('models', () => {
    const client = () => new OpenAI({ baseURL: kw.baseURL, apiKey: MODELS_KEY, maxRetries: 0 });

    it('a model not on the list: 403 model_not_allowed, param "model", not forwarded', async () => {
      const tag = newTag();
      const err = await client()
        .chat.completions.create(chatBody('gpt-4.1') as any, { headers: { 'x-test-tag': tag } })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
      const e = err as InstanceType<typeof OpenAI.PermissionDeniedError>;
      expect(e.status).toBe(403);
      expect(e.code).toBe('model_not_allowed');
      expect(e.param).toBe('model');
      expect(e.message).toContain('gpt-4.1');
      expect(e.message).toContain('gpt-4o*');
      // Streaming, the Responses API and embeddings (a body Keyward otherwise streams unread) alike.
      const h = { 'x-test-tag': tag };
      expectRefusal(await call(kw, MODELS_KEY, 'POST', '/v1/chat/completions', chatBody('gpt-4.1', { stream: true }), h), 403, 'model_not_allowed');
      expectRefusal(await call(kw, MODELS_KEY, 'POST', '/v1/responses', { model: 'o4-mini', input: 'hi' }, h), 403, 'model_not_allowed');
      expectRefusal(await call(kw, MODELS_KEY, 'POST', '/v1/embeddings', { model: 'text-embedding-3-small', input: 'hi' }, h), 403, 'model_not_allowed');
      expect(forwardedWith(tag)).toBe(0);
    });

    it('an allowed model goes through', async () => {
      const tag = newTag();
      const chat = await client().chat.completions.create(chatBody('gpt-4o-mini') as any, { headers: { 'x-test-tag': tag } });
      expect(chat.model).toBe('gpt-4o-mini-2024-07-18');
      expect(forwardedWith(tag)).toBe(1);
      expect(mock.requests.filter((r) => r.headers['x-test-tag'] === tag)[0]!.json.model).toBe('gpt-4o-mini');
    });

    it('GET /v1/models lists only the allowed models (through the SDK)', async () => {
      const ids: string[] = [];
      for await (const m of client().models.list()) ids.push(m.id);
      expect(ids.sort()).toEqual(['gpt-4o-mini', 'gpt-4o-mini-2024-07-18', 'gpt-4o-mini-tts', 'gpt-4o-transcribe']);
      // A key without a list sees them all (the filter is the policy's, not the mock's).
      const all: string[] = [];
      for await (const m of new OpenAI({ baseURL: kw.baseURL, apiKey: ALICE_KEY, maxRetries: 0 }).models.list()) all.push(m.id);
      expect(all).toContain('gpt-4.1-mini');
      expect(all.length).toBeGreaterThan(ids.length);
    });

    it('a model list fails closed: a body whose model cannot be read, or no model, gets 400 model_required', async () => {
      const tag = newTag();
      const h = { 'x-test-tag': tag };
      // JSON sent as text/plain (an upstream might parse it anyway), a compressed body, no model at all.
      expectRefusal(await call(kw, MODELS_KEY, 'POST', '/v1/chat/completions', chatBody('o1-pro'), { ...h, 'content-type': 'text/plain' }), 400, 'model_required');
      expectRefusal(await call(kw, MODELS_KEY, 'POST', '/v1/chat/completions', chatBody('gpt-4o-mini'), { ...h, 'content-encoding': 'gzip' }), 400, 'model_required');
      expectRefusal(await call(kw, MODELS_KEY, 'POST', '/v1/moderations', { input: 'x' }, h), 400, 'model_required');
      // Two "model" keys: JSON.parse would check the last, another parser might use the first.
      const twice = await fetch(kw.url + '/v1/chat/completions', {
        method: 'POST',
        headers: { authorization: `Bearer ${MODELS_KEY}`, 'content-type': 'application/json', ...h },
        body: '{"model":"o1-pro","model":"gpt-4o-mini","messages":[]}',
      });
      expect(twice.status).toBe(400);
      expect(((await twice.json()) as any).error.code).toBe('model_required');
      // Any endpoint, known or not, that gets a body Keyward cannot read for its model.
      expectRefusal(await call(kw, MODELS_KEY, 'POST', '/v1/responses/compact', { model: 'o1-pro', input: 'x' }, { ...h, 'content-type': 'text/plain' }), 400, 'model_required');
      // Two boundaries: busboy would read the parts by the first, another parser by the second.
      const form = (boundary: string, model: string) =>
        `--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n${model}\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\nContent-Type: audio/mpeg\r\n\r\nxx\r\n--${boundary}--\r\n`;
      const twoBoundaries = await fetch(kw.url + '/v1/audio/transcriptions', {
        method: 'POST',
        headers: { authorization: `Bearer ${MODELS_KEY}`, 'content-type': 'multipart/form-data; boundary=AAA; boundary=BBB', ...h },
        body: form('AAA', 'gpt-4o-transcribe') + form('BBB', 'whisper-1'),
      });
      expect(twoBoundaries.status).toBe(400);
      expect(((await twoBoundaries.json()) as any).error.code).toBe('model_required');
      expect(forwardedWith(tag)).toBe(0);
    });

    it("a model named by a tool (Responses' image_generation) is checked against the list too", async () => {
      const tag = newTag();
      const h = { 'x-test-tag': tag };
      const body = (toolModel: string) => ({ model: 'gpt-4o-mini', input: 'draw a cat', tools: [{ type: 'image_generation', model: toolModel }] });
      const refused = await call(kw, MODELS_KEY, 'POST', '/v1/responses', body('gpt-image-1'), h);
      expectRefusal(refused, 403, 'model_not_allowed');
      expect(refused.json.error.param).toBe('tools');
      expect(refused.json.error.message).toContain('gpt-image-1');
      expect(forwardedWith(tag)).toBe(0);
      // No model named: the tool runs OpenAI's default, gpt-image-1, which is not on the list either.
      const noModel = await call(kw, MODELS_KEY, 'POST', '/v1/responses', { model: 'gpt-4o-mini', input: 'x', tools: [{ type: 'image_generation' }] }, h);
      expectRefusal(noModel, 403, 'model_not_allowed');
      expect(noModel.json.error.message).toContain('gpt-image-1');
      expect((await call(kw, MODELS_KEY, 'POST', '/v1/responses', body('gpt-4o-image'), h)).status).toBe(200);
      expect(forwardedWith(tag)).toBe(1);
    });

    it('GET /v1/models/{id} for a model not on the list: 403, not forwarded; an allowed one: 200', async () => {
      const tag = newTag();
      const h = { 'x-test-tag': tag };
      expectRefusal(await call(kw, MODELS_KEY, 'GET', '/v1/models/gpt-4.1', undefined, h), 403, 'model_not_allowed');
      expectRefusal(await call(kw, MODELS_KEY, 'GET', '/v1/models/gpt-4.1-mini', undefined, h), 403, 'model_not_allowed');
      expect(forwardedWith(tag)).toBe(0);
      const m = await client().models.retrieve('gpt-4o-mini');
      expect(m.id).toBe('gpt-4o-mini');
    });

    it('a malformed percent-escape in GET /v1/models/{id} is refused, and the server keeps running', async () => {
      const tag = newTag();
      const r = await call(kw, MODELS_KEY, 'GET', '/v1/models/gpt-4o%E0%A4', undefined, { 'x-test-tag': tag });
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
      expect(forwardedWith(tag)).toBe(0);
      expect(kw.proc.exitCode).toBeNull();
      expect((await call(kw, MODELS_KEY, 'GET', '/v1/models/gpt-4o-mini')).status).toBe(200);
    });

    it('a model in a JSON body is taken as written, not URL-decoded (and a "%" does not stop the server)', async () => {
      const tag = newTag();
      const h = { 'x-test-tag': tag };
      // "gpt%2D4o-mini" is not "gpt-4o-mini" to OpenAI, so it is not on the list either.
      expectRefusal(await call(kw, MODELS_KEY, 'POST', '/v1/chat/completions', chatBody('gpt%2D4o-mini'), h), 403, 'model_not_allowed');
      expectRefusal(await call(kw, MODELS_KEY, 'POST', '/v1/chat/completions', chatBody('gpt-4.1%'), h), 403, 'model_not_allowed');
      expect(forwardedWith(tag)).toBe(0);
      expect(kw.proc.exitCode).toBeNull();
      expect((await call(kw, MODELS_KEY, 'POST', '/v1/chat/completions', chatBody(), h)).status).toBe(200);
    });
  });

  describe('rate limits', () => {
    it('rpm 3: the 4th request in a minute gets 429 with OpenAI\'s rate-limit headers; the SDK throws RateLimitError', async () => {
      const tag = newTag();
      const h = { 'x-test-tag': tag };
      for (let i = 0; i < 3; i++) expect((await call(kw, RPM_KEY, 'POST', '/v1/chat/completions', chatBody(), h)).status).toBe(200);
      const r = await call(kw, RPM_KEY, 'POST', '/v1/chat/completions', chatBody(), h);
      expectRefusal(r, 429, 'rate_limit_exceeded', 'requests');
      expect(r.json.error.message).toMatch(/requests per min/i);
      const retryAfter = Number(r.headers.get('retry-after'));
      expect(Number.isInteger(retryAfter)).toBe(true);
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(20); // one request comes back every 20 s
      expect(r.headers.get('x-ratelimit-limit-requests')).toBe('3');
      expect(r.headers.get('x-ratelimit-remaining-requests')).toBe('0');
      expect(r.headers.get('x-ratelimit-reset-requests')).toMatch(/^(\d+h)?(\d+m)?\d+(ms|s)$/);
      expect(r.headers.get('x-ratelimit-limit-tokens')).toBeNull(); // no tpm on this key
      expect(forwardedWith(tag)).toBe(3);

      const client = new OpenAI({ baseURL: kw.baseURL, apiKey: RPM_KEY, maxRetries: 0 });
      const err = await client.chat.completions.create(chatBody() as any, { headers: h }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.RateLimitError);
      const e = err as InstanceType<typeof OpenAI.RateLimitError>;
      expect(e.status).toBe(429);
      expect(e.code).toBe('rate_limit_exceeded');
      expect(e.type).toBe('requests');
      expect(e.headers.get('x-ratelimit-limit-requests')).toBe('3');
      expect(forwardedWith(tag)).toBe(3);
      // Other keys are not affected.
      expect((await call(kw, BOB_KEY, 'POST', '/v1/chat/completions', chatBody())).status).toBe(200);
    });

    it('tpm: a request whose estimate is larger than the whole tpm is refused with type "tokens"', async () => {
      const tag = newTag();
      const r = await call(kw, TPM_KEY, 'POST', '/v1/chat/completions', chatBody('gpt-4o-mini', { max_tokens: 2000 }), { 'x-test-tag': tag });
      expectRefusal(r, 429, 'rate_limit_exceeded', 'tokens');
      expect(r.json.error.message).toMatch(/tokens per min/i);
      expect(r.headers.get('x-ratelimit-limit-tokens')).toBe('1000');
      expect(Number(r.headers.get('x-ratelimit-remaining-tokens'))).toBe(1000); // nothing was taken
      // It can never pass, so no retry-after promises that it will.
      expect(r.headers.get('retry-after')).toBeNull();
      expect(forwardedWith(tag)).toBe(0);
    });

    it('tpm: a small estimate passes, is settled to the real usage (1352 tokens), and the next request waits', async () => {
      const tag = newTag();
      const h = { 'x-test-tag': tag };
      const small = chatBody('gpt-4o-mini', { max_tokens: 10 });
      const first = await call(kw, TPM_KEY, 'POST', '/v1/chat/completions', small, h);
      expect(first.status).toBe(200);
      const upstreamId = first.headers.get('x-request-id');
      await eventually(() => kw.rows().find((row) => row.upstream_request_id === upstreamId));
      // 1352 tokens really used against 1000 per minute: the bucket is in debt.
      const second = await call(kw, TPM_KEY, 'POST', '/v1/chat/completions', small, h);
      expectRefusal(second, 429, 'rate_limit_exceeded', 'tokens');
      expect(second.headers.get('x-ratelimit-remaining-tokens')).toBe('0');
      const retryAfter = Number(second.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(20); // ≥ 352 + estimate tokens at 1000/min
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(forwardedWith(tag)).toBe(1);
    });
  });

  describe('bodies of keys with limits are read whatever the endpoint, so the estimate sees them', () => {
    /** A JSON POST sent chunked (no Content-Length), as a streaming client sends it. */
    const chunked = (key: string, path: string, body: unknown, headers: Record<string, string>) =>
      new Promise<{ status: number; json: any }>((ok, fail) => {
        const u = new URL(kw.url);
        const req = http.request(
          { host: u.hostname, port: u.port, path, method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked', ...headers } },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (text += d));
            res.on('end', () => ok({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
          },
        );
        req.on('error', fail);
        const json = JSON.stringify(body);
        for (let i = 0; i < json.length; i += 8192) req.write(json.slice(i, i + 8192));
        req.end();
      });

    it('tpm: an embeddings batch sent chunked (no length declared) is estimated from its text, and refused', async () => {
      const tag = newTag();
      // ~1,700 tokens by estimate.ts against 1,000 a minute.
      const r = await chunked(TPM_KEY, '/v1/embeddings', { model: 'text-embedding-3-small', input: ['lorem ipsum '.repeat(420)] }, { 'x-test-tag': tag });
      expect(r.status).toBe(429);
      expect(r.json.error).toMatchObject({ code: 'rate_limit_exceeded', type: 'tokens' });
      expect(forwardedWith(tag)).toBe(0);
    });

    it('budget: embeddings batches are priced by their model and text, not the flat $0.01, so a burst cannot pass the budget many times over', async () => {
      const tag = newTag();
      // Each: ~200,000 tokens of text-embedding-3-large at $0.13 / 1M ≈ $0.026, against $0.05 a day
      // (room for five unread $0.01 reservations, for one of these).
      const big = { model: 'text-embedding-3-large', input: ['lorem ipsum '.repeat(50_000)] };
      const h = { 'x-test-tag': tag, 'x-mock-delay-ms': '1000' };
      const results = await Promise.all(Array.from({ length: 6 }, () => call(kw, EMBED_BUDGET_KEY, 'POST', '/v1/embeddings', big, h)));
      const admitted = results.filter((r) => r.status === 200).length;
      expect(admitted).toBe(1);
      for (const r of results.filter((x) => x.status !== 200)) expectRefusal(r, 429, 'insufficient_quota', 'insufficient_quota');
      expect(forwardedWith(tag)).toBe(1);
    });
  });

  describe('budgets', () => {
    it('the burst estimate is what estimate.ts reserves', () => {
      const ctx = {
        method: 'POST',
        path: '/v1/chat/completions',
        endpoint: 'chat.completions',
        bodyJson: burstBody,
        requestModel: 'gpt-4o-mini',
      } as Partial<RequestContext> as RequestContext;
      expect(estimateRequest(ctx, 0, Pricing.bundled()).costNano).toBe(BURST_ESTIMATE_NANO);
      expect(BURST_ESTIMATE_NANO).toBeGreaterThanOrEqual(FIXTURE_COST_NANO);
      expect(ROOM).toBe(5);
    });

    it('50 requests at once against room for N: at most N+1 reach OpenAI, the rest get 429 insufficient_quota', async () => {
      const tag = newTag();
      // The upstream holds every admitted request for a while, so none settles during the burst.
      const h = { 'x-test-tag': tag, 'x-mock-delay-ms': '1500' };
      const results = await Promise.all(
        Array.from({ length: 50 }, () => call(kw, BUDGET_KEY, 'POST', '/v1/chat/completions', burstBody, h)),
      );
      const admitted = results.filter((r) => r.status === 200);
      const refused = results.filter((r) => r.status !== 200);
      expect(admitted.length).toBeGreaterThanOrEqual(1);
      expect(admitted.length).toBeLessThanOrEqual(ROOM + 1);
      expect(admitted.length + refused.length).toBe(50);
      for (const r of refused) {
        expectRefusal(r, 429, 'insufficient_quota', 'insufficient_quota');
        expect(r.json.error.message).toContain('total budget');
      }
      expect(forwardedWith(tag)).toBe(admitted.length);
      // Their real cost is what is recorded.
      const rows = await eventually(() => {
        const mine = kw.rows().filter((row) => row.key_name === 'Budget' && row.status === 200);
        return mine.length === admitted.length && mine;
      });
      expect(rows.reduce((n, row) => n + row.cost_nano_usd, 0)).toBe(admitted.length * FIXTURE_COST_NANO);
    });

    it('after the burst, real costs (lower than the estimates) leave room until the total is spent', async () => {
      const tag = newTag();
      const h = { 'x-test-tag': tag };
      const statuses: number[] = [];
      for (let i = 0; i < 10; i++) {
        const r = await call(kw, BUDGET_KEY, 'POST', '/v1/chat/completions', burstBody, h);
        statuses.push(r.status);
        if (r.status !== 200) {
          expectRefusal(r, 429, 'insufficient_quota', 'insufficient_quota');
          break;
        }
        const id = r.headers.get('x-request-id');
        await eventually(() => kw.rows().find((row) => row.upstream_request_id === id));
      }
      expect(statuses.at(-1)).toBe(429);
      const spent = kw.rows().filter((row) => row.key_name === 'Budget').reduce((n, row) => n + row.cost_nano_usd, 0);
      expect(spent).toBeGreaterThanOrEqual(BUDGET_LIMIT_NANO); // refused only once the budget is used up…
      expect(spent - FIXTURE_COST_NANO).toBeLessThan(BUDGET_LIMIT_NANO); // …passed by at most the last request
      expect(forwardedWith(tag)).toBe(statuses.length - 1);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('config.json defaults, overridden per key', () => {
  let kw: KeywardProcess;

  beforeAll(async () => {
    kw = await startKeyward({
      upstream: mock.url,
      config: { defaults: { endpoints: ['chat', 'models'], models: ['gpt-4o*'], rpm: 2 } },
      env: { PROXY_KEY: SHARED_KEY },
      keys: [
        { key: ALICE_KEY, name: 'Alice', email: 'alice@example.com' },
        { key: BOB_KEY, name: 'Bob', email: 'bob@example.com', endpoints: ['embeddings'], models: ['text-embedding-*'] },
        { key: CAROL_KEY, name: 'Carol', email: 'carol@example.com', endpoints: ['inference', 'files'] },
        { key: DAVE_KEY, name: 'Dave', email: 'dave@example.com', rpm: null },
      ],
    });
  });
  afterAll(async () => {
    await kw?.stop();
  });

  it('a key with no fields of its own gets the defaults: endpoints, models and rpm', async () => {
    const tag = newTag();
    const h = { 'x-test-tag': tag };
    expectRefusal(await call(kw, ALICE_KEY, 'POST', '/v1/embeddings', { model: 'text-embedding-3-small', input: 'x' }, h), 403, 'endpoint_not_allowed');
    expectRefusal(await call(kw, ALICE_KEY, 'POST', '/v1/chat/completions', chatBody('gpt-4.1'), h), 403, 'model_not_allowed');
    expect((await call(kw, ALICE_KEY, 'POST', '/v1/chat/completions', chatBody(), h)).status).toBe(200);
    expect((await call(kw, ALICE_KEY, 'POST', '/v1/chat/completions', chatBody(), h)).status).toBe(200);
    const third = await call(kw, ALICE_KEY, 'POST', '/v1/chat/completions', chatBody(), h);
    expectRefusal(third, 429, 'rate_limit_exceeded', 'requests');
    expect(third.headers.get('x-ratelimit-limit-requests')).toBe('2');
    expect(forwardedWith(tag)).toBe(2);
  });

  it('a key\'s endpoints and models replace the defaults', async () => {
    const tag = newTag();
    const h = { 'x-test-tag': tag };
    expect((await call(kw, BOB_KEY, 'POST', '/v1/embeddings', { model: 'text-embedding-3-small', input: 'x' }, h)).status).toBe(200);
    expectRefusal(await call(kw, BOB_KEY, 'POST', '/v1/chat/completions', chatBody(), h), 403, 'endpoint_not_allowed');
    expect(forwardedWith(tag)).toBe(1);
  });

  it('"inference" plus a family widens the defaults; unset fields (models) are still inherited', async () => {
    const tag = newTag();
    const h = { 'x-test-tag': tag };
    expect((await call(kw, CAROL_KEY, 'GET', '/v1/files', undefined, h)).status).toBe(200);
    expectRefusal(await call(kw, CAROL_KEY, 'POST', '/v1/embeddings', { model: 'text-embedding-3-small', input: 'x' }, h), 403, 'model_not_allowed');
    expect(forwardedWith(tag)).toBe(1);
  });

  it('null removes a default limit', async () => {
    const tag = newTag();
    const h = { 'x-test-tag': tag };
    for (let i = 0; i < 4; i++) expect((await call(kw, DAVE_KEY, 'POST', '/v1/chat/completions', chatBody(), h)).status).toBe(200);
    expect(forwardedWith(tag)).toBe(4);
  });

  it('the PROXY_KEY shared key is under the defaults too', async () => {
    const tag = newTag();
    const h = { 'x-test-tag': tag };
    expectRefusal(await call(kw, SHARED_KEY, 'POST', '/v1/embeddings', { model: 'text-embedding-3-small', input: 'x' }, h), 403, 'endpoint_not_allowed');
    expect((await call(kw, SHARED_KEY, 'POST', '/v1/chat/completions', chatBody(), h)).status).toBe(200);
    expect(forwardedWith(tag)).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------

describe('budgets survive a restart', () => {
  it('spend recorded by one process counts against the budget in the next', async () => {
    const dir = tempDir();
    const entries = (policy: { dave?: object; erin?: object; carol?: object }) => [
      { key: DAVE_KEY, name: 'Dave', email: 'dave@example.com', ...policy.dave },
      { key: ERIN_KEY, name: 'Erin', email: 'erin@example.com', ...policy.erin },
      { key: CAROL_KEY, name: 'Carol', email: 'carol@example.com', ...policy.carol },
    ];
    const first = await startKeyward({ upstream: mock.url, dir, keys: entries({}) });
    try {
      for (const key of [DAVE_KEY, DAVE_KEY, ERIN_KEY, ERIN_KEY]) {
        expect((await call(first, key, 'POST', '/v1/chat/completions', chatBody())).status).toBe(200);
      }
      await eventually(() => first.rows().length === 4);
    } finally {
      expect(await first.stop()).toBe(0);
    }

    // Each spent 2 × 168,300 nano-USD; the new budgets are below that (but above zero).
    const limit = { total_usd: 0.0003 };
    const second = await startKeyward({
      upstream: mock.url,
      dir,
      keys: entries({ dave: { budget: limit }, erin: { budget: { daily_usd: 0.0003 } }, carol: { budget: limit } }),
    });
    try {
      const tag = newTag();
      const h = { 'x-test-tag': tag };
      const dave = await call(second, DAVE_KEY, 'POST', '/v1/chat/completions', chatBody(), h);
      expectRefusal(dave, 429, 'insufficient_quota', 'insufficient_quota');
      expect(dave.json.error.message).toContain('total budget');
      const erin = await call(second, ERIN_KEY, 'POST', '/v1/chat/completions', chatBody(), h);
      expectRefusal(erin, 429, 'insufficient_quota', 'insufficient_quota');
      expect(erin.json.error.message).toContain('daily budget');
      expect(forwardedWith(tag)).toBe(0);
      // The same budget with nothing spent yet lets requests through.
      expect((await call(second, CAROL_KEY, 'POST', '/v1/chat/completions', chatBody(), h)).status).toBe(200);
      expect(forwardedWith(tag)).toBe(1);
    } finally {
      await second.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('a bad policy in keys.json', () => {
  let kw: KeywardProcess;

  beforeAll(async () => {
    kw = await startKeyward({ upstream: mock.url, keys: [...KEYS, { key: CAROL_KEY, name: 'Carol', email: 'carol@example.com', rpm: 2 }] });
  });
  afterAll(async () => {
    await kw?.stop();
  });

  it('is logged with the key\'s name and field, and the last good keys stay in force', async () => {
    expect((await call(kw, BOB_KEY, 'GET', '/v1/models')).status).toBe(200);
    writeFileSync(
      kw.keysFile,
      JSON.stringify(
        [
          { key: ALICE_KEY, name: 'Alice', email: 'alice@example.com', endpoints: ['files'] },
          { key: BOB_KEY, name: 'Bob', email: 'bob@example.com', rpm: -1 },
          { key: DAVE_KEY, name: 'Dave', email: 'dave@example.com' },
        ],
        null,
        2,
      ),
    );
    const line = await eventually(
      () =>
        kw
          .output()
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Record<string, any>)
          .find((l) => /keys file rejected/.test(l.msg)),
      3000,
    );
    expect(line.problem).toContain('"Bob"');
    expect(line.problem).toMatch(/field "rpm"/);
    expect(line.problem).not.toContain('sk-kw-bob'); // no secret in the log
    // Nothing of the rejected file was applied: Alice keeps chat, Dave is unknown, Carol keeps rpm 2.
    expect((await call(kw, ALICE_KEY, 'POST', '/v1/chat/completions', chatBody())).status).toBe(200);
    expect((await call(kw, BOB_KEY, 'POST', '/v1/chat/completions', chatBody())).status).toBe(200);
    expect((await call(kw, DAVE_KEY, 'GET', '/v1/models')).status).toBe(401);
    expect((await call(kw, CAROL_KEY, 'GET', '/v1/models')).status).toBe(200);
    expect((await call(kw, CAROL_KEY, 'GET', '/v1/models')).status).toBe(200);
    expectRefusal(await call(kw, CAROL_KEY, 'GET', '/v1/models'), 429, 'rate_limit_exceeded', 'requests');
  });

  it('a bad defaults block in config.json stops start-up with the field named', async () => {
    const err = await startKeyward({ upstream: mock.url, keys: KEYS, config: { defaults: { tpm: 0 } } }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/defaults\.tpm/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('PROXY_KEY alone', () => {
  let kw: KeywardProcess;

  beforeAll(async () => {
    kw = await startKeyward({ upstream: mock.url, env: { PROXY_KEY: SHARED_KEY } });
  });
  afterAll(async () => {
    await kw?.stop();
  });

  it('with no keys.json, the one shared key works and its usage is recorded as "shared"', async () => {
    const client = new OpenAI({ baseURL: kw.baseURL, apiKey: SHARED_KEY, maxRetries: 0 });
    const { response } = await client.chat.completions.create(chatBody() as any).withResponse();
    const id = response.headers.get('x-request-id');
    const row = await eventually(() => kw.rows().find((r) => r.upstream_request_id === id));
    expect(row.key_name).toBe('shared');
    expect(row.cost_nano_usd).toBe(FIXTURE_COST_NANO);
    expect(kw.rows().every((r) => r.key_name === 'shared')).toBe(true);
  });

  it('other keys are unknown, and the shared key has the default policy', async () => {
    expect((await call(kw, ALICE_KEY, 'GET', '/v1/models')).status).toBe(401);
    expectRefusal(await call(kw, SHARED_KEY, 'GET', '/v1/files'), 403, 'endpoint_not_allowed');
  });
});
