// Everything that can go wrong mid-request still leaves exactly one usage row, with the right outcome.
import http from 'node:http';
import net from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockOpenAI, type MockOpenAI } from '../mock-openai/server.js';
import { ALICE_KEY, KEYS, eventually, startKeyward, type KeywardProcess } from './harness.js';

let mock: MockOpenAI;
let kw: KeywardProcess;
let client: OpenAI;

beforeAll(async () => {
  mock = await startMockOpenAI();
  kw = await startKeyward({ upstream: mock.url, keys: KEYS, env: { UPSTREAM_TIMEOUT_MS: '700' } });
  client = new OpenAI({ baseURL: kw.baseURL, apiKey: ALICE_KEY, maxRetries: 0 });
});
afterAll(async () => {
  await kw?.stop();
  await mock?.close();
});

const body = (extra: object = {}) => JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], ...extra });

describe('failures', () => {
  it('client aborts mid-stream: upstream request aborted at once, row client_aborted', async () => {
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], stream: true },
      { headers: { 'x-mock-chunk-delay-ms': '150', 'x-mock-test': 'abort' }, signal: controller.signal },
    );
    let seen = 0;
    // The SDK ends the iteration quietly when its own signal aborts it.
    for await (const _ of stream) {
      if (++seen === 2) controller.abort();
    }
    expect(seen).toBe(2);
    const upstream = await eventually(() => mock.requests.find((r) => r.headers['x-mock-test'] === 'abort'));
    await eventually(() => upstream.aborted, 1000);
    const row = await eventually(() => kw.rows().find((r) => r.outcome === 'client_aborted'));
    expect(row).toMatchObject({ key_email: 'alice@example.com', stream: 1, status: 200, endpoint: 'chat.completions' });
    expect(row.ttfb_ms).toBeGreaterThan(0);
  });

  it('upstream breaks mid-stream: client sees an error, not a clean end; row stream_broken', async () => {
    const stream = await client.chat.completions.create(
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], stream: true },
      { headers: { 'x-mock-break-after': '3' } },
    );
    const err = await (async () => {
      for await (const _ of stream) {
        /* drain */
      }
    })().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    const row = await eventually(() => kw.rows().find((r) => r.outcome === 'stream_broken'));
    expect(row).toMatchObject({ stream: 1, status: 200 });
  });

  it('upstream silent past the timeout → 504 in OpenAI shape, row upstream_error', async () => {
    const res = await fetch(kw.baseURL + '/chat/completions', {
      method: 'POST',
      headers: { 'api-key': ALICE_KEY, 'content-type': 'application/json', 'x-mock-hang': '1' },
      body: body(),
    });
    expect(res.status).toBe(504);
    const json = await res.json();
    expect(json.error).toMatchObject({ type: 'upstream_error', code: 'upstream_timeout', param: null });
    const id = res.headers.get('x-keyward-request-id');
    const row = await eventually(() => kw.rows().find((r) => r.request_id === id));
    expect(row).toMatchObject({ status: 504, outcome: 'upstream_error' });
  });

  it('a stream cut off by a client that just closes its socket still leaves a row', async () => {
    const before = kw.rows().length;
    await new Promise<void>((ok) => {
      const req = http.request(kw.baseURL + '/chat/completions', {
        method: 'POST',
        headers: { 'api-key': ALICE_KEY, 'content-type': 'application/json', 'x-mock-chunk-delay-ms': '100' },
      });
      req.on('response', (res) => {
        res.once('data', () => {
          req.destroy();
          ok();
        });
      });
      req.on('error', () => {});
      req.end(body({ stream: true }));
    });
    await eventually(() => kw.rows().length > before);
  });
});

describe('pipelined requests (HTTP/1.1)', () => {
  it('a connection closed while answers wait behind a stream: every forwarded request leaves a row, the waiting ones are cut upstream', async () => {
    // Three requests in one write on one connection. Node runs all three handlers at once (all are
    // forwarded) but answers them in order: the 2nd and 3rd answers wait, without a socket, behind
    // the stream. Node never closes such waiting answers when the connection goes.
    const request = (tag: string, json: string, extra = '') =>
      `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\napi-key: ${ALICE_KEY}\r\ncontent-type: application/json\r\n` +
      `x-mock-test: ${tag}\r\n${extra}content-length: ${Buffer.byteLength(json)}\r\n\r\n${json}`;
    const before = kw.rows().length;
    const socket = net.connect(Number(new URL(kw.url).port), '127.0.0.1');
    socket.on('error', () => {});
    socket.on('data', () => {});
    await new Promise((ok) => socket.once('connect', ok));
    socket.write(
      request('pipelined-stream', body({ stream: true }), 'x-mock-chunk-delay-ms: 200\r\n') +
        request('pipelined-answered', body()) +
        request('pipelined-hang', body(), 'x-mock-hang: 1\r\n'),
    );
    // The second answer is complete upstream (and waits in Keyward for its turn); the third hangs.
    const answered = await eventually(() => mock.requests.find((r) => r.headers['x-mock-test'] === 'pipelined-answered'));
    const hanging = await eventually(() => mock.requests.find((r) => r.headers['x-mock-test'] === 'pipelined-hang'));
    await eventually(() => mock.requests.find((r) => r.headers['x-mock-test'] === 'pipelined-stream'));
    await new Promise((r) => setTimeout(r, 100)); // the JSON answer reaches Keyward
    socket.destroy();

    const rows = await eventually(() => {
      const r = kw.rows().slice(before);
      return r.length === 3 && r;
    });
    expect(rows.map((r) => r.outcome)).toEqual(['client_aborted', 'client_aborted', 'client_aborted']);
    // The answered one keeps its usage and cost: OpenAI bills it though the client never got it.
    const billed = rows.find((r) => r.stream === 0 && r.status === 200);
    expect(billed).toMatchObject({ input_tokens: expect.any(Number), output_tokens: expect.any(Number) });
    expect(billed!.input_tokens).toBeGreaterThan(0);
    expect(billed!.cost_nano_usd).toBeGreaterThan(0);
    // The hanging one is cut upstream at once rather than left to run for nobody.
    await eventually(() => hanging.aborted, 2000);
    expect(answered.aborted).toBe(false);
    expect(kw.output()).not.toContain('shutdown timeout');
  });

  it('answers that got their turn before the connection closed: one row each, ok', async () => {
    const request = (tag: string) =>
      `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\napi-key: ${ALICE_KEY}\r\ncontent-type: application/json\r\n` +
      `x-mock-test: ${tag}\r\ncontent-length: ${Buffer.byteLength(body())}\r\n\r\n${body()}`;
    const before = kw.rows().length;
    const socket = net.connect(Number(new URL(kw.url).port), '127.0.0.1');
    let received = '';
    socket.on('data', (d) => (received += d));
    await new Promise((ok) => socket.once('connect', ok));
    socket.write(request('in-turn-1') + request('in-turn-2') + request('in-turn-3'));
    await eventually(() => received.split('HTTP/1.1 200').length - 1 === 3 && received.trimEnd().endsWith('}'));
    socket.destroy();
    const rows = await eventually(() => kw.rows().length - before >= 3 && kw.rows().slice(before));
    await new Promise((r) => setTimeout(r, 200)); // a second row for any of them would come now
    expect(kw.rows().length - before).toBe(3);
    expect(rows.map((r) => r.outcome)).toEqual(['ok', 'ok', 'ok']);
  });
});

describe('upstream unreachable', () => {
  it('→ 502 in OpenAI shape without the upstream key, row upstream_error', async () => {
    const port = await new Promise<number>((ok) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => ok(p));
      });
    });
    const dead = await startKeyward({ upstream: `http://127.0.0.1:${port}`, keys: KEYS });
    try {
      const res = await fetch(dead.baseURL + '/chat/completions', {
        method: 'POST',
        headers: { 'api-key': ALICE_KEY, 'content-type': 'application/json' },
        body: body(),
      });
      expect(res.status).toBe(502);
      const text = await res.text();
      expect(JSON.parse(text).error).toMatchObject({ type: 'upstream_error', code: 'upstream_unreachable' });
      expect(text).not.toContain('sk-upstream-test');
      const row = await eventually(() => dead.rows()[0]);
      expect(row).toMatchObject({ status: 502, outcome: 'upstream_error' });
    } finally {
      await dead.stop();
    }
  });
});

describe('shutdown', () => {
  it('SIGTERM during a stream: the stream finishes, its row is written, the process exits 0', async () => {
    const local = await startKeyward({ upstream: mock.url, keys: KEYS });
    const c = new OpenAI({ baseURL: local.baseURL, apiKey: ALICE_KEY, maxRetries: 0 });
    const stream = await c.chat.completions.create(
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], stream: true },
      { headers: { 'x-mock-chunk-delay-ms': '40' } },
    );
    let text = '';
    let exit: Promise<number | null> | undefined;
    for await (const chunk of stream) {
      if (!exit) exit = local.stop('SIGTERM');
      text += chunk.choices[0]?.delta.content ?? '';
    }
    expect(text.length).toBeGreaterThan(0);
    expect(await exit).toBe(0);
    const rows = local.rows();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ outcome: 'ok', stream: 1, input_tokens: 19, output_tokens: 9 });
    expect(local.output()).toContain('stopped');
  });

  it('shutdown timeout cuts a stream that would not end, and still writes its row', async () => {
    const local = await startKeyward({ upstream: mock.url, keys: KEYS, env: { SHUTDOWN_TIMEOUT_MS: '300' } });
    const c = new OpenAI({ baseURL: local.baseURL, apiKey: ALICE_KEY, maxRetries: 0 });
    const stream = await c.chat.completions.create(
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], stream: true },
      { headers: { 'x-mock-chunk-delay-ms': '1000' } },
    );
    const exit = local.stop('SIGTERM');
    await (async () => {
      for await (const _ of stream) {
        /* drain */
      }
    })().catch(() => undefined);
    expect(await exit).toBe(0);
    const rows = local.rows();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ outcome: 'stream_broken', error: 'cut by shutdown' });
  });
});
