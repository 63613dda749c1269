// The upstream client (undici's Pool.dispatch in src/proxy/forward.ts, relayed by src/proxy/relay.ts)
// against an upstream that misbehaves at the socket level: huge answers to slow readers, streamed
// uploads over the limit or cut by the client, oversized 429 bodies, answers cut mid-body,
// repeated headers and 1xx answers. The upstream is this file's own node:http server on 127.0.0.1.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE_KEY, KEYS, eventually, listenLocal, startKeyward, type KeywardProcess } from './harness.js';

/** Keyward's upstream timeout in this file: the slow reader below stays paused for longer than this. */
const UPSTREAM_TIMEOUT_MS = 1500;
/** Size of the big streamed answer. */
const BIG_BYTES = 40 * 1024 * 1024;

const MODEL = 'gpt-4o-mini-2024-07-18';
const USAGE = { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 };

/** What the test upstream saw of one request (by its x-test-id header). */
interface Seen {
  case: string;
  headers: http.IncomingHttpHeaders;
  /** Request body bytes received. */
  received: number;
  /** The request body arrived whole. */
  complete: boolean;
  /** The connection closed before the upstream finished its answer (Keyward gave up the request). */
  aborted: boolean;
}

/** The big SSE answer's writer, observable from the test. */
interface BigAnswer {
  written: number;
  /** res.write() returned false and the writer is waiting for 'drain'. */
  waitingDrain: boolean;
  /** How many times the writer had to wait for 'drain'. */
  drainWaits: number;
  lastProgressAt: number;
  done: boolean;
  sha256?: string;
  total?: number;
}

const seen = new Map<string, Seen>();
/** Big answers by the request's x-test-id. */
const bigAnswers = new Map<string, BigAnswer>();

function sse(obj: unknown): string {
  return `data: ${JSON.stringify(obj)}\n\n`;
}

/** A chat.completion.chunk with one delta; with `usageNull`, the "usage":null that include_usage adds. */
function chunkEvent(content: string, usageNull: boolean, finish: string | null = null): string {
  return sse({
    id: 'chatcmpl-upstream-client',
    object: 'chat.completion.chunk',
    created: 1762000000,
    model: MODEL,
    system_fingerprint: 'fp_test',
    choices: [{ index: 0, delta: { content }, logprobs: null, finish_reason: finish }],
    ...(usageNull ? { usage: null } : {}),
  });
}

function usageEvent(): string {
  return sse({ id: 'chatcmpl-upstream-client', object: 'chat.completion.chunk', created: 1762000000, model: MODEL, choices: [], usage: USAGE });
}

const COMPLETION = JSON.stringify({
  id: 'chatcmpl-upstream-client',
  object: 'chat.completion',
  created: 1762000000,
  model: MODEL,
  choices: [{ index: 0, message: { role: 'assistant', content: 'final answer', refusal: null }, logprobs: null, finish_reason: 'stop' }],
  usage: USAGE,
});

/** The test upstream: what it answers depends on the request's x-test-case header. */
function upstreamServer(): http.Server {
  return http.createServer((req, res) => {
    const testCase = String(req.headers['x-test-case'] ?? 'ok');
    const id = String(req.headers['x-test-id'] ?? randomBytes(6).toString('hex'));
    const s: Seen = { case: testCase, headers: req.headers, received: 0, complete: false, aborted: false };
    seen.set(id, s);
    req.on('data', (d: Buffer) => (s.received += d.length));
    req.on('error', () => {});
    if (testCase === 'early-400') {
      // Refuses at once, before the body has arrived (as OpenAI does with a bad model or key).
      res.writeHead(400, { 'content-type': 'application/json', 'x-request-id': `req_${id}` });
      res.end(JSON.stringify({ error: { message: 'Invalid model.', type: 'invalid_request_error', param: 'model', code: 'model_not_found' } }));
      return;
    }
    if (testCase === 'early-200-cut' || testCase === 'early-200-hold') {
      // Starts a 200 at once, before the body has arrived; then breaks its connection, or holds it.
      res.writeHead(200, { 'content-type': 'application/json', 'x-request-id': `req_${id}` });
      res.write('{"text":"partial');
      if (testCase === 'early-200-cut') setTimeout(() => res.destroy(), 200);
      return;
    }
    res.on('close', () => {
      if (!res.writableFinished) s.aborted = true;
    });
    const reqId = `req_${id}`;
    req.on('end', () => {
      s.complete = true;
      switch (testCase) {
        case 'big-sse':
          return bigSse(res, reqId, id);
        case 'hold':
          return; // never answers: the client gives up first, or Keyward cuts the request
        case '429-big':
          return big429(res, reqId);
        case '401-big':
          return big429(res, reqId, 401);
        case 'cut-sse':
          return cutSse(res, reqId);
        case 'silent-sse':
          // One event, then silence with the connection open: Keyward's body timeout must end it.
          res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'x-request-id': reqId });
          return void res.write(chunkEvent('only ', true));
        case 'cut-json':
          return cutJson(res, reqId);
        case 'informational':
          return informational(res, reqId);
        case 'priority': {
          // Served by the priority tier: priced at its own rates (gpt-4o-mini: $0.25 / $1 per 1M).
          res.writeHead(200, { 'content-type': 'application/json', 'x-request-id': reqId });
          const usage = { prompt_tokens: 2000, completion_tokens: 500, total_tokens: 2500, prompt_tokens_details: { cached_tokens: 1024 } };
          return res.end(JSON.stringify({ ...JSON.parse(COMPLETION), usage, service_tier: 'priority', system_fingerprint: 'fp_x' }));
        }
        case 'transcription':
          res.writeHead(200, { 'content-type': 'application/json', 'x-request-id': reqId });
          return res.end(JSON.stringify({ text: 'hello', received: s.received }));
        default:
          res.writeHead(200, { 'content-type': 'application/json', 'x-request-id': reqId });
          return res.end(COMPLETION);
      }
    });
  });
}

/** ~40 MB of SSE, written in 64 KB pieces, honouring backpressure; its hash is kept for the test. */
function bigSse(res: http.ServerResponse, reqId: string, id: string): void {
  const state: BigAnswer = { written: 0, waitingDrain: false, drainWaits: 0, lastProgressAt: Date.now(), done: false };
  bigAnswers.set(id, state);
  const hash = createHash('sha256');
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'x-request-id': reqId });
  let n = 0;
  const piece = (): Buffer => {
    let text = '';
    while (text.length < 64 * 1024) {
      n++;
      // Every event differs (its number and a varying filler), so a dropped or repeated piece changes the hash.
      text += chunkEvent(`${n}:${String.fromCharCode(97 + (n % 26)).repeat(900 + (n % 97))}`, false);
    }
    return Buffer.from(text);
  };
  const send = (b: Buffer): boolean => {
    hash.update(b);
    state.written += b.length;
    state.lastProgressAt = Date.now();
    return res.write(b);
  };
  const pump = () => {
    while (state.written < BIG_BYTES) {
      if (res.destroyed) return;
      if (!send(piece())) {
        state.waitingDrain = true;
        state.drainWaits++;
        res.once('drain', () => {
          state.waitingDrain = false;
          state.lastProgressAt = Date.now();
          pump();
        });
        return;
      }
    }
    send(Buffer.from(chunkEvent('', false, 'stop') + usageEvent() + 'data: [DONE]\n\n'));
    state.total = state.written;
    state.sha256 = hash.digest('hex');
    state.done = true;
    res.end();
  };
  pump();
}

/** A 429 (or 401) with a 320 KB OpenAI-shaped error body, in many writes (chunked). */
function big429(res: http.ServerResponse, reqId: string, status = 429): void {
  res.writeHead(status, { 'content-type': 'application/json', 'x-request-id': reqId, 'retry-after': '1' });
  const body = Buffer.from(
    JSON.stringify({ error: { message: `Rate limit reached. ${'x'.repeat(320 * 1024)}`, type: 'requests', param: null, code: 'rate_limit_exceeded' } }),
  );
  const step = (at: number) => {
    if (res.destroyed) return;
    if (at >= body.length) return void res.end();
    res.write(body.subarray(at, at + 16 * 1024), () => setImmediate(step, at + 16 * 1024));
  };
  step(0);
}

/** Headers and three content events plus the usage event, then the socket is destroyed (no [DONE]). */
function cutSse(res: http.ServerResponse, reqId: string): void {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'x-request-id': reqId });
  res.flushHeaders();
  const events = [chunkEvent('one ', false), chunkEvent('two ', false), chunkEvent('three', false, 'stop'), usageEvent()];
  const step = (i: number) => {
    if (i === events.length) return void res.socket?.destroy();
    res.write(events[i]!, () => setTimeout(step, 10, i + 1));
  };
  step(0);
}

/** A JSON answer that declares 4000 bytes and sends 1000 of them before the socket is destroyed. */
function cutJson(res: http.ServerResponse, reqId: string): void {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': '4000', 'x-request-id': reqId });
  res.write(Buffer.alloc(1000, 0x20), () => setTimeout(() => res.socket?.destroy(), 20));
}

/**
 * 102 Processing and 103 Early Hints, then a 200 with repeated headers. (Not a 100 Continue: undici
 * refuses one the request did not ask for with "bad response", and Keyward strips Expect upstream.)
 */
function informational(res: http.ServerResponse, reqId: string): void {
  res.writeProcessing();
  res.writeEarlyHints({ link: '</hint.css>; rel=preload; as=style' });
  setTimeout(() => {
    res.setHeader('content-type', 'application/json');
    res.setHeader('x-request-id', reqId);
    res.setHeader('x-custom', ['one', 'two']);
    res.setHeader('set-cookie', ['__cf_bm=upstream-session; Path=/', '_cfuvid=other; Path=/']);
    res.setHeader('content-length', Buffer.byteLength(COMPLETION));
    res.end(COMPLETION);
  }, 10);
}

let upstream: { url: string; close(): Promise<void> };
let kw: KeywardProcess;
let client: OpenAI;

beforeAll(async () => {
  upstream = await listenLocal(upstreamServer());
  kw = await startKeyward({ upstream: upstream.url, keys: KEYS, env: { UPSTREAM_TIMEOUT_MS: String(UPSTREAM_TIMEOUT_MS) } });
  client = new OpenAI({ baseURL: kw.baseURL, apiKey: ALICE_KEY, maxRetries: 0 });
});
afterAll(async () => {
  await kw?.stop();
  await upstream?.close();
});

const rowOf = (k: KeywardProcess, requestId: string | null | undefined) =>
  eventually(() => k.rows().find((r) => r.request_id === requestId));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes a chunk, waiting for 'drain' if needed; false once the request is closed. */
function write(req: http.ClientRequest, chunk: Buffer | string): Promise<boolean> {
  if (req.destroyed) return Promise.resolve(false);
  if (req.write(chunk)) return Promise.resolve(true);
  return new Promise((ok) => {
    const done = (v: boolean) => {
      req.off('drain', drained);
      req.off('close', closed);
      ok(v);
    };
    const drained = () => done(true);
    const closed = () => done(false);
    req.once('drain', drained);
    req.once('close', closed);
  });
}

interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  /** 'end' (complete), or 'cut' (the connection was cut before the end). */
  finish: 'end' | 'cut';
}

/** Reads a whole answer, noting whether it ended cleanly or was cut. */
/** A JSON POST to Keyward on a connection of its own, answered as raw bytes (what the wire carried). */
function postJson(path: string, headers: Record<string, string>, body: unknown): Promise<RawAnswer> {
  return new Promise((ok, fail) => {
    const req = http.request(kw.baseURL + path, {
      method: 'POST',
      agent: false,
      headers: { 'api-key': ALICE_KEY, 'content-type': 'application/json', ...headers },
    });
    req.on('response', (res) => ok(readAnswer(res)));
    req.on('error', fail);
    req.end(JSON.stringify(body));
  });
}

function readAnswer(res: http.IncomingMessage): Promise<RawAnswer> {
  return new Promise((ok) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (how: 'end' | 'cut') => {
      if (settled) return;
      settled = true;
      ok({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks), finish: how });
    };
    res.on('data', (d: Buffer) => chunks.push(d));
    res.on('end', () => finish('end'));
    res.on('aborted', () => finish('cut'));
    res.on('error', () => finish('cut'));
    res.on('close', () => finish(res.complete ? 'end' : 'cut'));
  });
}

const BOUNDARY = '----keyward-upstream-client-test';
const MULTIPART_HEAD =
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n` +
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="speech.mp3"\r\nContent-Type: audio/mpeg\r\n\r\n`;
const MULTIPART_TAIL = `\r\n--${BOUNDARY}--\r\n`;

/** A chunked (no Content-Length) multipart upload to /v1/audio/transcriptions: Keyward streams it on. */
function startUpload(k: KeywardProcess, testCase: string, testId: string) {
  const req = http.request(k.baseURL + '/audio/transcriptions', {
    method: 'POST',
    agent: false,
    headers: {
      'api-key': ALICE_KEY,
      'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
      'transfer-encoding': 'chunked',
      'x-test-case': testCase,
      'x-test-id': testId,
    },
  });
  const answer = new Promise<RawAnswer>((ok) => req.on('response', (res) => ok(readAnswer(res))));
  const failed = new Promise<Error>((ok) => req.on('error', ok));
  return { req, answer, failed };
}

/** Asks for the big SSE answer; the response comes back paused (the client reads nothing yet). */
async function startBig(id: string, through: KeywardProcess = kw): Promise<{ req: http.ClientRequest; res: http.IncomingMessage }> {
  const req = http.request(through.baseURL + '/chat/completions', {
    method: 'POST',
    agent: false,
    headers: { 'api-key': ALICE_KEY, 'content-type': 'application/json', 'x-test-case': 'big-sse', 'x-test-id': id },
  });
  // include_usage asked by the client: the stream passes through unreshaped, byte for byte.
  req.end(JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], stream: true, stream_options: { include_usage: true } }));
  const res = await new Promise<http.IncomingMessage>((ok, fail) => {
    req.on('response', ok);
    req.on('error', fail);
  });
  res.pause();
  return { req, res };
}

/**
 * Waits until the upstream writer is stuck on a full socket (waiting for 'drain', no progress for a
 * while), or has written everything; returns its state. Keyward must have stopped reading the
 * upstream rather than buffering the answer: a buffering relay lets the upstream write all of it.
 */
function upstreamHeldBack(id: string): Promise<BigAnswer> {
  return eventually(() => {
    const b = bigAnswers.get(id);
    return b !== undefined && (b.done || (b.waitingDrain && Date.now() - b.lastProgressAt > 300)) && b;
  }, 10_000);
}

describe('backpressure', () => {
  it('a 40 MB stream to a client that stops reading: upstream held back, nothing lost, row ok', async () => {
    const { res } = await startBig('big');
    const pausedAt = Date.now();
    expect(res.statusCode).toBe(200);

    const stuck = await upstreamHeldBack('big');
    expect(stuck.done, 'the upstream wrote the whole answer to a client that read nothing').toBe(false);
    expect(stuck.written).toBeLessThan(BIG_BYTES);

    // Stay paused past Keyward's upstream timeout: an upstream paused by Keyward is not a silent one.
    await sleep(Math.max(0, UPSTREAM_TIMEOUT_MS + 500 - (Date.now() - pausedAt)));
    expect(bigAnswers.get('big')!.done).toBe(false);

    const hash = createHash('sha256');
    let received = 0;
    const finish = await new Promise<'end' | 'cut'>((ok) => {
      res.on('data', (d: Buffer) => {
        hash.update(d);
        received += d.length;
      });
      res.on('end', () => ok('end'));
      res.on('error', () => ok('cut'));
      res.on('aborted', () => ok('cut'));
      res.resume();
    });
    const big = bigAnswers.get('big')!;
    expect(finish).toBe('end');
    expect(big.done).toBe(true);
    expect(big.drainWaits).toBeGreaterThan(0);
    expect(received).toBe(big.total);
    expect(hash.digest('hex')).toBe(big.sha256);

    const row = await rowOf(kw, res.headers['x-keyward-request-id'] as string);
    expect(row).toMatchObject({
      outcome: 'ok',
      status: 200,
      stream: 1,
      error: null,
      bytes_out: big.total,
      input_tokens: USAGE.prompt_tokens,
      output_tokens: USAGE.completion_tokens,
    });
  });

  it('a client that leaves while the upstream is held back: upstream request aborted, row client_aborted', async () => {
    const { req, res } = await startBig('big-gone');
    const stuck = await upstreamHeldBack('big-gone');
    expect(stuck.done).toBe(false);
    req.on('error', () => {});
    req.destroy();
    const up = await eventually(() => seen.get('big-gone')?.aborted && seen.get('big-gone'));
    expect(up.aborted).toBe(true);
    expect(bigAnswers.get('big-gone')!.done).toBe(false);
    const row = await rowOf(kw, res.headers['x-keyward-request-id'] as string);
    expect(row).toMatchObject({ outcome: 'client_aborted', status: 200, stream: 1 });
    expect(row.bytes_out).toBeLessThan(BIG_BYTES);
  });
});

describe('a client that stops reading for good', () => {
  const stallMs = 1000;
  let strict: KeywardProcess;
  // Started and stopped around the test, not inside it: a test that times out never reaches its finally.
  beforeAll(async () => {
    strict = await startKeyward({ upstream: upstream.url, keys: KEYS, env: { CLIENT_STALL_TIMEOUT_MS: String(stallMs) } });
  });
  afterAll(async () => {
    await strict?.stop();
  });

  it('is cut after clientStallTimeoutMs: upstream request aborted, row client_aborted saying why', async () => {
    const startedAt = Date.now();
    const { req, res } = await startBig('big-stalled', strict);
    req.on('error', () => {});
    const stuck = await upstreamHeldBack('big-stalled');
    expect(stuck.done).toBe(false);
    const up = await eventually(() => seen.get('big-stalled')?.aborted && seen.get('big-stalled'), 10_000);
    expect(up.aborted).toBe(true);
    expect(bigAnswers.get('big-stalled')!.done).toBe(false);
    // Cut by the stall timer, not earlier: it starts once Keyward holds the upstream back.
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(stallMs);
    // A client that reads again finds its answer cut short, never a clean end.
    let received = 0;
    const finish = await new Promise<'end' | 'cut'>((ok) => {
      res.on('data', (d: Buffer) => (received += d.length));
      res.on('end', () => ok('end'));
      res.on('error', () => ok('cut'));
      res.on('aborted', () => ok('cut'));
      res.resume();
    });
    expect(finish).toBe('cut');
    expect(received).toBeLessThan(BIG_BYTES);
    const row = await rowOf(strict, res.headers['x-keyward-request-id'] as string);
    expect(row).toMatchObject({ outcome: 'client_aborted', status: 200, stream: 1, error: 'the client took no data for 1 s' });
    expect(row.bytes_out).toBeLessThan(BIG_BYTES);
  });
});

describe('streamed request bodies', () => {
  it('a chunked multipart upload over maxBodyMb gets a 413 in OpenAI shape; upstream request abandoned; row and log say so', async () => {
    const small = await startKeyward({ upstream: upstream.url, keys: KEYS, config: { maxBodyMb: 1 } });
    try {
      const { req, answer } = startUpload(small, 'hold', 'too-large');
      req.on('error', () => {}); // Keyward may close the connection after its answer
      const upload = (async () => {
        await write(req, MULTIPART_HEAD);
        // 3 MB of file in 64 KB writes, against a 1 MB limit; the client keeps sending after the 413.
        for (let i = 0; i < 48; i++) if (!(await write(req, randomBytes(64 * 1024)))) return;
        await write(req, MULTIPART_TAIL);
        req.end();
      })();
      const r = await answer;
      await upload;
      expect(r.status).toBe(413);
      expect(r.finish).toBe('end');
      const json = JSON.parse(r.body.toString('utf8'));
      expect(Object.keys(json)).toEqual(['error']);
      expect(Object.keys(json.error).sort()).toEqual(['code', 'message', 'param', 'type']);
      expect(json.error).toMatchObject({ type: 'invalid_request_error', code: 'request_too_large', param: null, message: expect.stringContaining('1 MB') });

      // The upstream got the start of the body, never its end, and its request was cut.
      const up = await eventually(() => seen.get('too-large')?.aborted && seen.get('too-large'));
      expect(up.complete).toBe(false);
      expect(up.received).toBeGreaterThan(0);
      expect(up.received).toBeLessThan(3 * 1024 * 1024);

      const id = r.headers['x-keyward-request-id'] as string;
      const row = await rowOf(small, id);
      expect(row).toMatchObject({
        status: 413,
        outcome: 'upstream_error',
        error: 'request body over the limit',
        endpoint: 'audio.transcriptions',
        model: 'whisper-1', // read from the multipart field as it streamed by
      });
      expect(row.bytes_in).toBeGreaterThan(1024 * 1024);

      // Keyward still answers on that instance after the abandoned upload.
      const next = await new OpenAI({ baseURL: small.baseURL, apiKey: ALICE_KEY, maxRetries: 0 }).chat.completions.create({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'x' }],
      });
      expect(next.choices[0]!.message.content).toBe('final answer');

      await small.stop(); // flushes the asynchronous access log
      const line = small.accessLog().find((l) => l.request_id === id);
      expect(line).toMatchObject({ status: 413, outcome: 'upstream_error', error: 'request body over the limit', path: '/v1/audio/transcriptions' });
    } finally {
      await small.stop();
    }
  });

  it('an upstream that answers before a streamed upload ends: the client gets the answer (no reset) and its upload is not left stuck', async () => {
    const { req, answer } = startUpload(kw, 'early-400', 'early-400');
    let uploadError: unknown;
    req.on('error', (e) => (uploadError = e));
    const upload = (async () => {
      if (!(await write(req, MULTIPART_HEAD))) return false;
      // 20 MB: far more than the socket buffers on the way hold, so it stalls if nobody reads it.
      for (let i = 0; i < 320; i++) if (!(await write(req, randomBytes(64 * 1024)))) return false;
      await write(req, MULTIPART_TAIL);
      await new Promise<void>((ok) => req.end(ok));
      return true;
    })();
    const r = await Promise.race([answer, new Promise<string>((ok) => setTimeout(ok, 8000, 'no answer'))]);
    expect(r, String(uploadError)).not.toBe('no answer');
    const got = r as RawAnswer;
    expect(got.status).toBe(400);
    expect(JSON.parse(got.body.toString('utf8')).error.code).toBe('model_not_found');
    // Read to the end (or, past Keyward's 2 s linger, cut after the answer): never stuck.
    expect(await Promise.race([upload, new Promise<string>((ok) => setTimeout(ok, 10_000, 'stalled'))])).not.toBe('stalled');
    const row = await rowOf(kw, got.headers['x-keyward-request-id'] as string);
    expect(row).toMatchObject({ status: 400, outcome: 'upstream_error' });
  });

  it('an early 200 that breaks off while the client still uploads: the client sees it cut, row stream_broken (not ok)', async () => {
    const { req, answer } = startUpload(kw, 'early-200-cut', 'early-200-cut');
    req.on('error', () => {});
    await write(req, MULTIPART_HEAD);
    const uploading = setInterval(() => void write(req, randomBytes(16 * 1024)), 50);
    try {
      const r = await answer;
      expect(r.status).toBe(200);
      expect(r.finish).toBe('cut');
      const row = await rowOf(kw, r.headers['x-keyward-request-id'] as string);
      expect(row).toMatchObject({ status: 200, outcome: 'stream_broken', error: expect.stringContaining('upstream failed mid-response') });
    } finally {
      clearInterval(uploading);
      req.destroy();
    }
  });

  it('an upload that passes the limit after the upstream began its 200: the row keeps the 200 the client got, and says why it was cut', async () => {
    const small = await startKeyward({ upstream: upstream.url, keys: KEYS, config: { maxBodyMb: 1 } });
    try {
      const { req, answer } = startUpload(small, 'early-200-hold', 'early-200-over');
      req.on('error', () => {});
      await write(req, MULTIPART_HEAD);
      const r = await new Promise<RawAnswer>((ok) => {
        void answer.then(ok);
        void (async () => {
          // Only once the 200 is under way: then past the 1 MB limit.
          await eventually(() => seen.get('early-200-over'));
          for (let i = 0; i < 48; i++) if (!(await write(req, randomBytes(64 * 1024)))) return;
        })();
      });
      expect(r.status).toBe(200);
      expect(r.finish).toBe('cut');
      const row = await rowOf(small, r.headers['x-keyward-request-id'] as string);
      expect(row).toMatchObject({ status: 200, outcome: 'stream_broken', error: 'request body over the limit' });
      expect(row.bytes_in).toBeGreaterThan(1024 * 1024);
    } finally {
      await small.stop();
    }
  });

  it('the client disconnects mid-upload: the upstream request is aborted, row client_aborted', async () => {
    const { req, failed } = startUpload(kw, 'hold', 'client-gone');
    await write(req, MULTIPART_HEAD);
    for (let i = 0; i < 8; i++) await write(req, randomBytes(32 * 1024));
    // The upstream has been receiving the body (streamed, not read first by Keyward) and waits for the rest.
    await eventually(() => (seen.get('client-gone')?.received ?? 0) > 64 * 1024);
    expect(seen.get('client-gone')!.complete).toBe(false);
    req.destroy();
    await failed;

    const up = await eventually(() => seen.get('client-gone')?.aborted && seen.get('client-gone'));
    expect(up.complete).toBe(false);
    const row = await eventually(() =>
      kw.rows().find((r) => r.endpoint === 'audio.transcriptions' && r.outcome === 'client_aborted'),
    );
    expect(row).toMatchObject({ key_email: 'alice@example.com', model: 'whisper-1', status: null });
    expect(row.bytes_in).toBeGreaterThan(64 * 1024);
  });
});

describe('slow uploads', () => {
  it('a streamed upload that takes longer than the upstream timeout is not cut; the upstream gets every byte', async () => {
    const { req, answer } = startUpload(kw, 'transcription', 'slow-upload');
    let sent = 0;
    const uploadFor = UPSTREAM_TIMEOUT_MS + 500;
    const started = Date.now();
    await write(req, MULTIPART_HEAD);
    while (Date.now() - started < uploadFor) {
      const piece = randomBytes(4096);
      await write(req, piece);
      sent += piece.length;
      await sleep(100);
    }
    req.end(MULTIPART_TAIL);
    const r = await answer;
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body.toString('utf8')).text).toBe('hello');
    const up = seen.get('slow-upload')!;
    expect(up.complete).toBe(true);
    expect(up.received).toBe(Buffer.byteLength(MULTIPART_HEAD) + sent + Buffer.byteLength(MULTIPART_TAIL));
    const row = await rowOf(kw, r.headers['x-keyward-request-id'] as string);
    expect(row).toMatchObject({ outcome: 'ok', status: 200, model: 'whisper-1', bytes_in: up.received });
  });
});

describe('upstream errors and broken answers', () => {
  it('a 429 whose body is over 256 KB (too long to read for its code) is relayed as it is; the next request is served', async () => {
    const before = kw.rows().length;
    const res = await fetch(kw.baseURL + '/chat/completions', {
      method: 'POST',
      headers: { 'api-key': ALICE_KEY, 'content-type': 'application/json', 'x-test-case': '429-big', 'x-test-id': '429-big' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('1');
    const json = (await res.json()) as any;
    expect(json.error).toMatchObject({ code: 'rate_limit_exceeded', type: 'requests' });
    expect(json.error.message.length).toBeGreaterThan(320 * 1024);
    const row = await rowOf(kw, res.headers.get('x-keyward-request-id'));
    expect(row).toMatchObject({ status: 429, outcome: 'upstream_error' });
    expect(kw.rows().length).toBe(before + 1);

    // The same process keeps serving, through the SDK, on a fresh upstream connection.
    const next = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }).withResponse();
    expect(next.data.choices[0]!.message.content).toBe('final answer');
    expect((await rowOf(kw, next.response.headers.get('x-keyward-request-id'))).outcome).toBe('ok');
  });

  it('a 401 whose body is over 256 KB → 502 upstream_auth_failed in OpenAI shape, nothing of its body relayed', async () => {
    const res = await fetch(kw.baseURL + '/chat/completions', {
      method: 'POST',
      headers: { 'api-key': ALICE_KEY, 'content-type': 'application/json', 'x-test-case': '401-big', 'x-test-id': '401-big' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(res.status).toBe(502);
    const json = (await res.json()) as any;
    expect(Object.keys(json)).toEqual(['error']);
    expect(Object.keys(json.error).sort()).toEqual(['code', 'message', 'param', 'type']);
    expect(json.error).toMatchObject({ type: 'upstream_error', code: 'upstream_auth_failed', param: null });
    expect(JSON.stringify(json)).not.toContain('x'.repeat(1000));
    const row = await rowOf(kw, res.headers.get('x-keyward-request-id'));
    expect(row).toMatchObject({ status: 502, outcome: 'upstream_error' });
    const next = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] });
    expect(next.choices[0]!.message.content).toBe('final answer');
  });

  it('an SSE answer cut mid-stream: the client sees an error, not an end; row stream_broken with the usage seen', async () => {
    const stream = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], stream: true }, { headers: { 'x-test-case': 'cut-sse' } })
      .withResponse();
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    const err = await (async () => {
      for await (const c of stream.data) chunks.push(c);
    })().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(chunks.map((c) => c.choices[0]?.delta.content).join('')).toBe('one two three');
    // The usage Keyward asked for on the client's behalf is still withheld from it.
    expect(chunks.every((c) => c.choices.length > 0 && !('usage' in c))).toBe(true);
    const row = await rowOf(kw, stream.response.headers.get('x-keyward-request-id'));
    expect(row).toMatchObject({
      outcome: 'stream_broken',
      status: 200,
      stream: 1,
      input_tokens: USAGE.prompt_tokens,
      output_tokens: USAGE.completion_tokens,
    });
    expect(row.error).toMatch(/upstream failed mid-response/);
  });

  it('an upstream silent mid-stream past the timeout: the client response is cut, upstream dropped, row stream_broken', async () => {
    const r = await postJson('/chat/completions', { 'x-test-case': 'silent-sse', 'x-test-id': 'silent' }, { model: 'gpt-4o-mini', messages: [], stream: true, stream_options: { include_usage: true } });
    expect(r.status).toBe(200);
    expect(r.finish).toBe('cut');
    expect(r.body.toString('utf8')).toBe(chunkEvent('only ', true));
    await eventually(() => seen.get('silent')?.aborted);
    const row = await rowOf(kw, r.headers['x-keyward-request-id'] as string);
    expect(row).toMatchObject({ outcome: 'stream_broken', status: 200, stream: 1, error: 'upstream timeout mid-response' });
  });

  it('a JSON answer cut before its Content-Length: the client response is cut, row stream_broken', async () => {
    const r = await postJson('/embeddings', { 'x-test-case': 'cut-json' }, { model: 'text-embedding-3-small', input: 'x' });
    expect(r.status).toBe(200);
    expect(r.headers['content-length']).toBe('4000');
    expect(r.finish).toBe('cut');
    expect(r.body.length).toBeLessThan(4000);
    const row = await rowOf(kw, r.headers['x-keyward-request-id'] as string);
    expect(row).toMatchObject({ outcome: 'stream_broken', status: 200, endpoint: 'embeddings' });
    expect(row.bytes_out).toBe(1000);
  });
});

describe('service tiers', () => {
  it('an answer served by the priority tier is charged at priority prices', async () => {
    const r = await postJson('/chat/completions', { 'x-test-case': 'priority' }, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] });
    expect(r.status).toBe(200);
    const row = await rowOf(kw, r.headers['x-keyward-request-id'] as string);
    // 976 × $0.25 + 1024 × $0.125 + 500 × $1 per 1M (standard prices would give 523,200).
    expect(row).toMatchObject({ input_tokens: 2000, cached_input_tokens: 1024, output_tokens: 500, cost_nano_usd: 872_000 });
  });
});

describe('headers and informational answers', () => {
  it('102 and 103 before the answer, repeated headers in it: the client gets the final answer, both header lines', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-test-case': 'informational' } })
      .withResponse();
    expect(response.status).toBe(200);
    expect(data.choices[0]!.message.content).toBe('final answer');
    expect(response.headers.get('x-custom')).toBe('one, two');
    // Upstream cookies belong to the gateway's session with OpenAI: never passed on (headers.ts).
    expect(response.headers.get('set-cookie')).toBeNull();
    const row = await rowOf(kw, response.headers.get('x-keyward-request-id'));
    expect(row).toMatchObject({ outcome: 'ok', status: 200, input_tokens: USAGE.prompt_tokens, output_tokens: USAGE.completion_tokens });

    // On the wire: two x-custom lines (not one merged value), and a clean, complete body.
    const r = await postJson('/chat/completions', { 'x-test-case': 'informational' }, { model: 'gpt-4o-mini', messages: [] });
    expect(r.status).toBe(200);
    expect(r.finish).toBe('end');
    expect(r.body.toString('utf8')).toBe(COMPLETION);
    const custom = r.rawHeaders.filter((_, i) => i % 2 === 0 && r.rawHeaders[i]!.toLowerCase() === 'x-custom').length;
    expect(custom).toBe(2);
  });
});
