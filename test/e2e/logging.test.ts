// access.log: one redacted line per request; bodies only with logBodies, base64 cut short.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockOpenAI, type MockOpenAI } from '../mock-openai/server.js';
import { ALICE_KEY, KEYS, UPSTREAM_KEY, eventually, startKeyward, type KeywardProcess } from './harness.js';

let mock: MockOpenAI;
let kw: KeywardProcess;
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';

beforeAll(async () => {
  mock = await startMockOpenAI();
  kw = await startKeyward({
    upstream: mock.url,
    keys: KEYS,
    config: { logBodies: true, corsOrigins: ['https://app.example.com'] },
  });
});
afterAll(async () => {
  await kw?.stop();
  await mock?.close();
});

describe('access log', () => {
  it('one line per request with who, what, status, latency, model and tokens; no secret anywhere', async () => {
    const client = new OpenAI({ baseURL: kw.baseURL, apiKey: ALICE_KEY, maxRetries: 0 });
    const { response } = await client.chat.completions
      .create(
        {
          model: 'gpt-4o-mini',
          messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] }],
        },
        { headers: { cookie: 'session=cookie-secret-value' } },
      )
      .withResponse();
    await client.images.generate({ model: 'gpt-image-1', prompt: 'fox' });
    await fetch(kw.baseURL + '/models', { headers: { authorization: 'Bearer sk-kw-wrong-key-000000000000000' } });
    await kw.stop(); // flushes the asynchronous log
    const lines = kw.accessLog();
    const chat = lines.find((l) => l.upstream_request_id === response.headers.get('x-request-id'))!;
    expect(chat).toMatchObject({
      request_id: response.headers.get('x-keyward-request-id'),
      key_name: 'Alice',
      key_email: 'alice@example.com',
      method: 'POST',
      path: '/v1/chat/completions',
      status: 200,
      model: 'gpt-4o-mini-2024-07-18',
      input_tokens: 1258,
      output_tokens: 94,
      outcome: 'ok',
    });
    expect(chat.time).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(chat.latency_ms).toBeGreaterThan(0);
    // logBodies: the data URL in the request is cut to 16 characters plus its length
    expect(chat.request_body.messages[0].content[0].image_url.url).toMatch(/^data:image\/png;b…\[base64, \d+ chars\]$/);
    const image = lines.find((l) => l.path === '/v1/images/generations')!;
    expect(image.response_body.data[0].b64_json).toBe(`${PNG.slice(0, 16)}…[base64, ${PNG.length} chars]`);
    const refused = lines.find((l) => l.status === 401);
    expect(refused).toMatchObject({ path: '/v1/models', key_id: null });

    const all = JSON.stringify(lines) + kw.output();
    for (const secret of [ALICE_KEY, UPSTREAM_KEY, 'sk-kw-wrong-key', 'cookie-secret-value', PNG.slice(0, 40)]) {
      expect(all, secret).not.toContain(secret);
    }
  });
});

describe('logBodies and a body nested thousands of levels deep; the status page', () => {
  it('is answered and logged (cut at 64 levels); the process stays up; status page requests are logged too, /health not', async () => {
    const local = await startKeyward({ upstream: mock.url, keys: KEYS, config: { logBodies: true } });
    try {
      const deep = `${'['.repeat(10_000)}"x"${']'.repeat(10_000)}`;
      const send = () =>
        fetch(local.baseURL + '/chat/completions', {
          method: 'POST',
          headers: { authorization: `Bearer ${ALICE_KEY}`, 'content-type': 'application/json' },
          body: `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"metadata":{"deep":${deep}}}`,
        });
      expect((await send()).status).toBe(200);
      expect((await send()).status).toBe(200); // the first one's log line did not take the process down
      await eventually(() => local.rows().length === 2);
      // The status page is keyed by default: a request without a key is refused, and logged.
      expect((await fetch(local.url + '/', { headers: { accept: 'application/json' } })).status).toBe(401);
      expect((await fetch(local.url + '/health')).status).toBe(200);
      expect(await local.stop()).toBe(0);
      const lines = local.accessLog();
      expect(lines.map((l) => `${l.path} ${l.status}`)).toEqual(['/v1/chat/completions 200', '/v1/chat/completions 200', '/ 401']);
      expect(JSON.stringify(lines[0]!.request_body)).toContain('nested too deeply to log');
    } finally {
      await local.stop();
    }
  });
});

describe('CORS with a configured list', () => {
  it('allows a listed origin and not another', async () => {
    const local = await startKeyward({ upstream: mock.url, keys: KEYS, config: { corsOrigins: ['https://app.example.com'] } });
    try {
      const pre = (origin: string) =>
        fetch(local.baseURL + '/chat/completions', {
          method: 'OPTIONS',
          headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
        });
      const ok = await pre('https://app.example.com');
      expect(ok.status).toBe(204);
      expect(ok.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
      const other = await pre('https://evil.example.com');
      expect(other.headers.get('access-control-allow-origin')).toBeNull();
      const exposed = await fetch(local.baseURL + '/models', { headers: { origin: 'https://app.example.com', 'api-key': ALICE_KEY } });
      expect(exposed.headers.get('access-control-expose-headers')).toContain('x-request-id');
      await eventually(() => exposed.status === 200);
    } finally {
      await local.stop();
    }
  });
});
