// What reaches the upstream and what comes back: methods, paths, queries, headers, bodies, errors.
import http from 'node:http';
import net from 'node:net';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtureText, speechAudio, startMockOpenAI, type MockOpenAI } from '../mock-openai/server.js';
import { ALICE_KEY, KEYS, UPSTREAM_KEY, eventually, startKeyward, type KeywardProcess } from './harness.js';

let mock: MockOpenAI;
let kw: KeywardProcess;
let client: OpenAI;

beforeAll(async () => {
  mock = await startMockOpenAI();
  kw = await startKeyward({ upstream: mock.url, keys: [...KEYS, { key: OPS_KEY, name: 'Ops', email: 'ops@example.com', endpoints: ['*'] }] });
  client = new OpenAI({ baseURL: kw.baseURL, apiKey: ALICE_KEY, maxRetries: 0 });
});
afterAll(async () => {
  await kw?.stop();
  await mock?.close();
});

async function raw(method: string, path: string, headers: Record<string, string> = {}, body?: string | Buffer) {
  const res = await fetch(kw.url + path, { method, headers, body: body as BodyInit | undefined });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: (() => { try { return JSON.parse(text); } catch { return undefined; } })() };
}

const OPS_KEY = 'sk-kw-ops-0123456789abcdefghijklmn';
const rowOf = (upstreamId: string | null) => eventually(() => kw.rows().find((r) => r.upstream_request_id === upstreamId));

describe('forwarding', () => {
  it('keeps method, path and query string; strips every client credential; adds the upstream key', async () => {
    const r = await raw('DELETE', '/v1/files/file-abc?limit=2&purpose=batch', {
      'api-key': OPS_KEY,
      'x-mock-echo': '1',
      cookie: 'session=secret-cookie',
      'openai-organization': 'org-someone-else',
      'x-custom': 'kept',
    });
    expect(r.status).toBe(200);
    expect(r.json.method).toBe('DELETE');
    expect(r.json.path).toBe('/v1/files/file-abc');
    expect(r.json.query).toBe('limit=2&purpose=batch');
    const h = r.json.headers;
    expect(h.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    expect(h['api-key']).toBeUndefined();
    expect(h.cookie).toBeUndefined();
    expect(h['openai-organization']).toBeUndefined();
    expect(h['x-custom']).toBe('kept');
    expect(JSON.stringify(h)).not.toContain(OPS_KEY);
  });

  it('a body on a GET is framed for the upstream (never smuggled onto the shared connection)', async () => {
    const { hostname, port } = new URL(kw.url);
    const smuggled = 'POST /v1/capture HTTP/1.1\r\ncontent-length: 120\r\n\r\n';
    const answer = await new Promise<string>((ok, fail) => {
      const socket = net.connect(Number(port), hostname, () => {
        socket.write(
          `GET /v1/models HTTP/1.1\r\nhost: x\r\napi-key: ${OPS_KEY}\r\nx-mock-echo: 1\r\ntransfer-encoding: chunked\r\n\r\n` +
            `${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`,
        );
      });
      let text = '';
      socket.on('data', (d) => {
        text += d;
        if (text.endsWith('\n}')) {
          socket.destroy();
          ok(text);
        }
      });
      socket.on('error', fail);
    });
    const echo = JSON.parse(answer.slice(answer.indexOf('{')));
    // Framed one way or the other (undici picks), never left unframed on the shared connection.
    const framing = echo.headers['transfer-encoding'] ?? `content-length: ${echo.headers['content-length']}`;
    expect(['chunked', `content-length: ${smuggled.length}`]).toContain(framing);
    expect(echo.bodyBytes).toBe(smuggled.length);
    // The next request on the pooled upstream connection is answered normally.
    const next = await raw('GET', '/v1/models', { 'api-key': ALICE_KEY });
    expect(next.status).toBe(200);
    expect(mock.requests.some((r) => r.path === '/v1/capture')).toBe(false);
  });

  it('passes OpenAI\'s headers through and names the request', async () => {
    const { response } = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] })
      .withResponse();
    for (const name of ['x-request-id', 'openai-processing-ms', 'x-ratelimit-limit-requests', 'x-ratelimit-remaining-tokens', 'x-ratelimit-reset-requests']) {
      expect(response.headers.get(name), name).toBeTruthy();
    }
    expect(response.headers.get('x-keyward-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const row = await rowOf(response.headers.get('x-request-id'));
    expect(row.request_id).toBe(response.headers.get('x-keyward-request-id'));
  });

  it('client that asked for stream usage gets the usage chunk exactly as OpenAI sends it', async () => {
    const res = await raw(
      'POST',
      '/v1/chat/completions',
      { authorization: `Bearer ${ALICE_KEY}`, 'content-type': 'application/json' },
      JSON.stringify({ model: 'gpt-4o-mini', messages: [], stream: true, stream_options: { include_usage: true } }),
    );
    expect(res.text).toBe(fixtureText('chat-completions-stream-include-usage.sse'));
  });

  it('usage is asked for without rewriting the rest of the body (a seed beyond 2^53 stays exact)', async () => {
    const body = '{"model":"gpt-4o-mini","messages":[],"stream":true,"seed":12345678901234567890}';
    await raw('POST', '/v1/chat/completions', { 'api-key': ALICE_KEY, 'content-type': 'application/json' }, body);
    const sent = mock.lastRequest()!.body.toString('utf8');
    expect(sent).toBe('{"stream_options":{"include_usage":true},' + body.slice(1));
  });

  it('a stream flag spelled with a \\u escape is still seen, and its usage metered', async () => {
    const body = '{"model":"gpt-4o-mini","messages":[],"str\\u0065am":true,"stream\\u005foptions":{"include_usage":false}}';
    const r = await raw('POST', '/v1/chat/completions', { 'api-key': ALICE_KEY, 'content-type': 'application/json' }, body);
    expect(r.text).toBe(fixtureText('chat-completions-stream-no-usage.sse'));
    const sent = JSON.parse(mock.lastRequest()!.body.toString('utf8'));
    expect(sent.stream_options).toEqual({ include_usage: true });
    const row = await rowOf(r.headers.get('x-request-id'));
    expect(row).toMatchObject({ stream: 1, input_tokens: 19, output_tokens: 9 });
  });

  it('listing stored chat completions is forwarded (for a key allowed it) and bills nothing', async () => {
    const r = await raw('GET', '/v1/chat/completions?limit=2', { 'api-key': OPS_KEY, 'x-mock-echo': '1' });
    expect(r.status).toBe(200);
    const row = await rowOf(r.headers.get('x-request-id'));
    expect(row).toMatchObject({ method: 'GET', input_tokens: null, cost_nano_usd: null });
  });

  it('client that did not ask gets byte-exactly the no-usage stream', async () => {
    const res = await raw(
      'POST',
      '/v1/chat/completions',
      { authorization: `Bearer ${ALICE_KEY}`, 'content-type': 'application/json', 'x-mock-chunk-delay-ms': '1' },
      JSON.stringify({ model: 'gpt-4o-mini', messages: [], stream: true }),
    );
    expect(res.text).toBe(fixtureText('chat-completions-stream-no-usage.sse'));
    const row = await rowOf(res.headers.get('x-request-id'));
    expect(row).toMatchObject({ stream: 1, input_tokens: 19, output_tokens: 9, outcome: 'ok' });
  });

  it('SSE reaches the client event by event while the upstream is still sending', async () => {
    // The mock writes one event every 60 ms; each must arrive as its own read, before the next is sent.
    const reads: string[] = [];
    await new Promise<void>((ok, fail) => {
      const req = http.request(kw.baseURL + '/chat/completions', {
        method: 'POST',
        headers: { 'api-key': ALICE_KEY, 'content-type': 'application/json', 'x-mock-chunk-delay-ms': '60', 'x-mock-test': 'sse-timing' },
      });
      req.on('response', (res) => {
        res.on('data', (d: Buffer) => reads.push(d.toString('utf8')));
        res.on('end', () => ok());
      });
      req.on('error', fail);
      req.end(JSON.stringify({ model: 'gpt-4o-mini', messages: [], stream: true }));
    });
    const events = fixtureText('chat-completions-stream-no-usage.sse').split(/(?<=\n\n)/);
    expect(reads.join('')).toBe(events.join(''));
    // A buffering proxy would deliver one or two reads; unbuffered, (almost) every event is its own.
    expect(reads.length).toBeGreaterThanOrEqual(events.length - 2);
  });

  it('Responses API: JSON and stream metered, stream_options never injected', async () => {
    const json = await client.responses.create({ model: 'o4-mini', input: 'hi' }).withResponse();
    expect(mock.lastRequest()!.json.stream_options).toBeUndefined();
    const row = await rowOf(json.response.headers.get('x-request-id'));
    expect(row).toMatchObject({ endpoint: 'responses', input_tokens: 1536, cached_input_tokens: 1280, output_tokens: 412, reasoning_tokens: 320, cost_nano_usd: 2446400 });

    const stream = await client.responses.create({ model: 'gpt-4.1-mini', input: 'hi', stream: true }).withResponse();
    const events: string[] = [];
    for await (const e of stream.data) events.push(e.type);
    expect(events.at(-1)).toBe('response.completed');
    expect(mock.lastRequest()!.json.stream_options).toBeUndefined();
    const srow = await rowOf(stream.response.headers.get('x-request-id'));
    expect(srow).toMatchObject({ stream: 1, input_tokens: 37, output_tokens: 10, cost_nano_usd: 30800, outcome: 'ok' });
  });

  it('legacy completions stream: usage injected and withheld', async () => {
    const stream = await client.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'x', stream: true }).withResponse();
    const chunks: any[] = [];
    for await (const c of stream.data) chunks.push(c);
    expect(chunks.every((c) => !('usage' in c) && c.choices.length > 0)).toBe(true);
    const row = await rowOf(stream.response.headers.get('x-request-id'));
    expect(row).toMatchObject({ endpoint: 'completions', input_tokens: 5, output_tokens: 7, cost_nano_usd: 21500 });
  });

  it('embeddings, moderations and images are metered', async () => {
    const e = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'] }).withResponse();
    expect((await rowOf(e.response.headers.get('x-request-id'))).cost_nano_usd).toBe(300);
    const m = await client.moderations.create({ model: 'omni-moderation-latest', input: 'x' }).withResponse();
    expect((await rowOf(m.response.headers.get('x-request-id'))).endpoint).toBe('moderations');
    const i = await client.images.generate({ model: 'gpt-image-1', prompt: 'fox' }).withResponse();
    expect((await rowOf(i.response.headers.get('x-request-id'))).cost_nano_usd).toBe(42310000);
  });

  it('audio: multipart transcriptions stream through and are metered by tokens or seconds', async () => {
    const audio = Buffer.alloc(300_000, 7);
    const t = await client.audio.transcriptions
      .create({ file: await toFile(audio, 'a.mp3'), model: 'gpt-4o-transcribe' })
      .withResponse();
    expect(mock.lastRequest()!.receivedBytes).toBe(audio.length);
    const trow = await rowOf(t.response.headers.get('x-request-id'));
    expect(trow).toMatchObject({ model: 'gpt-4o-transcribe', input_audio_tokens: 172, cost_nano_usd: 695000 });
    const w = await client.audio.transcriptions
      .create({ file: await toFile(audio, 'a.mp3'), model: 'whisper-1', response_format: 'verbose_json' })
      .withResponse();
    const wrow = await rowOf(w.response.headers.get('x-request-id'));
    expect(wrow).toMatchObject({ model: 'whisper-1', audio_seconds: 9, cost_nano_usd: 900000 });
  });

  it('speech: binary audio arrives byte for byte; tts-1 is billed by input characters', async () => {
    const res = await client.audio.speech.create({ model: 'tts-1', voice: 'alloy', input: 'Hello there' }).withResponse();
    const bytes = Buffer.from(await res.data.arrayBuffer());
    expect(bytes.equals(speechAudio())).toBe(true);
    const row = await rowOf(res.response.headers.get('x-request-id'));
    expect(row).toMatchObject({ endpoint: 'audio.speech', input_characters: 11, cost_nano_usd: 165000 });
  });

  it('streamed speech and transcription report their usage from the final event', async () => {
    const speech = await raw(
      'POST',
      '/v1/audio/speech',
      { 'api-key': ALICE_KEY, 'content-type': 'application/json' },
      JSON.stringify({ model: 'gpt-4o-mini-tts', voice: 'alloy', input: 'Hello', stream_format: 'sse' }),
    );
    expect(speech.text).toBe(fixtureText('speech-stream.sse'));
    const srow = await rowOf(speech.headers.get('x-request-id'));
    expect(srow).toMatchObject({ endpoint: 'audio.speech', stream: 1, model: 'gpt-4o-mini-tts', outcome: 'ok' });
    expect(srow.output_tokens).toBeGreaterThan(0);
    expect(srow.cost_nano_usd).toBeGreaterThan(0);

    const form = new FormData();
    form.set('model', 'gpt-4o-transcribe');
    form.set('stream', 'true');
    form.set('file', new Blob([Buffer.alloc(1000, 1)]), 'a.mp3');
    const t = await fetch(kw.baseURL + '/audio/transcriptions', { method: 'POST', headers: { 'api-key': ALICE_KEY }, body: form });
    expect(await t.text()).toBe(fixtureText('transcription-stream.sse'));
    const trow = await rowOf(t.headers.get('x-request-id'));
    expect(trow).toMatchObject({ endpoint: 'audio.transcriptions', stream: 1, model: 'gpt-4o-transcribe' });
    expect(trow.input_audio_tokens).toBeGreaterThan(0);
  });

  it('models list passes through', async () => {
    const list = await client.models.list();
    expect(list.data.length).toBeGreaterThan(0);
  });

  it('upstream errors reach the client unchanged and leave an upstream_error row', async () => {
    const err = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [] }, { headers: { 'x-mock-status': '429' } })
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err.headers.get('retry-after')).toBeTruthy();
    const row = await rowOf(err.requestID);
    expect(row).toMatchObject({ status: 429, outcome: 'upstream_error' });
  });

  it("an upstream 401 becomes a 502 that does not echo the gateway's key", async () => {
    const r = await raw('POST', '/v1/chat/completions', { 'api-key': ALICE_KEY, 'content-type': 'application/json', 'x-mock-status': '401' }, '{"model":"gpt-4o-mini","messages":[]}');
    expect(r.status).toBe(502);
    expect(r.json.error.code).toBe('upstream_auth_failed');
    expect(r.text).not.toMatch(/sk-/);
  });

  it('413 in OpenAI shape for a body over 50 MB, declared or chunked', async () => {
    const big = Buffer.alloc(50 * 1024 * 1024 + 1, 32);
    const declared = await raw('POST', '/v1/embeddings', { 'api-key': ALICE_KEY, 'content-type': 'application/json' }, big);
    expect(declared.status).toBe(413);
    expect(declared.json.error).toMatchObject({ type: 'invalid_request_error', code: 'request_too_large' });
    const chunked = await new Promise<{ status: number; body: string }>((ok, fail) => {
      const req = http.request(kw.url + '/v1/embeddings', { method: 'POST', headers: { 'api-key': ALICE_KEY, 'content-type': 'application/json' } }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => ok({ status: res.statusCode!, body }));
      });
      req.on('error', fail);
      for (let i = 0; i < 51; i++) req.write(Buffer.alloc(1024 * 1024, 32));
      req.end();
    });
    expect(chunked.status).toBe(413);
    expect(JSON.parse(chunked.body).error.code).toBe('request_too_large');
  });

  it('a 20 MB body streams through intact', async () => {
    const body = Buffer.concat([Buffer.from('{"model":"text-embedding-3-small","input":"'), Buffer.alloc(20 * 1024 * 1024, 97), Buffer.from('"}')]);
    const r = await raw('POST', '/v1/embeddings', { 'api-key': ALICE_KEY, 'content-type': 'application/json' }, body);
    expect(r.status).toBe(200);
    expect(Number(r.headers.get('x-mock-received-bytes'))).toBe(body.length);
  });

  it('answers outside /v1 and the health check without a key', async () => {
    const h = await raw('GET', '/health');
    expect(h.status).toBe(200);
    expect(h.json).toMatchObject({ status: 'ok', version: expect.any(String), uptime_s: expect.any(Number) });
    expect(h.headers.get('content-type')).toBe('application/json; charset=utf-8');
    // Served without Express (loaded only for pages), routed as Express would: query, trailing slash, HEAD.
    expect((await raw('GET', '/health/?probe=1')).json.status).toBe('ok');
    const head = await raw('HEAD', '/health');
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
    expect((await raw('POST', '/health')).status).toBe(404);
    const nf = await raw('GET', '/nope', { 'api-key': ALICE_KEY });
    expect(nf.status).toBe(404);
    expect(nf.json.error.type).toBe('invalid_request_error');
  });

  it('CORS: preflight answered without a key, any origin by default', async () => {
    const r = await raw('OPTIONS', '/v1/chat/completions', {
      origin: 'https://app.example.com',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization,content-type',
    });
    expect(r.status).toBe(204);
    expect(r.headers.get('access-control-allow-origin')).toBe('*');
    expect(r.headers.get('access-control-allow-headers')).toContain('authorization');
    expect(mock.requests.some((q) => q.method === 'OPTIONS')).toBe(false);
  });
});

describe('authentication', () => {
  const cases: [string, Record<string, string>, string][] = [
    ['missing', {}, 'missing_api_key'],
    ['unknown', { authorization: 'Bearer sk-kw-nobody-000000000000000000' }, 'invalid_api_key'],
  ];
  for (const [what, headers, code] of cases) {
    it(`${what} key → 401 ${code}, nothing forwarded`, async () => {
      const before = mock.requests.length;
      const r = await raw('POST', '/v1/chat/completions', { ...headers, 'content-type': 'application/json' }, '{}');
      expect(r.status).toBe(401);
      expect(r.json).toEqual({ error: { message: expect.any(String), type: 'invalid_request_error', param: null, code } });
      expect(mock.requests.length).toBe(before);
    });
  }
  it('both header styles work', async () => {
    for (const headers of [{ 'api-key': ALICE_KEY }, { authorization: `Bearer ${ALICE_KEY}` }] as Record<string, string>[]) {
      const r = await raw('GET', '/v1/models', headers);
      expect(r.status).toBe(200);
    }
  });
});
