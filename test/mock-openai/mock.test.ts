// Checks that the mock answers like OpenAI, driven mostly through the official SDK: if the SDK
// parses it, a proxy test built on it is testing against something realistic.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI, { toFile } from 'openai';
import { fixtureJson, speechAudio, startMockOpenAI, type MockOpenAI } from './server.js';

const KEY = 'sk-upstream-test';
let mock: MockOpenAI;
let client: OpenAI;

// maxRetries 0: error tests must see the first answer, not wait out retry-after.
const sdk = (opts: { apiKey?: string; headers?: Record<string, string> } = {}) =>
  new OpenAI({ baseURL: `${mock.url}/v1`, apiKey: opts.apiKey ?? KEY, maxRetries: 0, defaultHeaders: opts.headers ?? {} });

beforeAll(async () => {
  mock = await startMockOpenAI();
  client = sdk();
});
afterAll(async () => {
  await mock.close();
});

const chatBody = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'Hi' }] };

describe('mock OpenAI', () => {
  it('answers a chat completion with the fixture usage and OpenAI headers', async () => {
    const { data, response } = await client.chat.completions.create(chatBody).withResponse();
    expect(data.usage).toEqual(fixtureJson('chat-completion.json').usage);
    expect(response.headers.get('openai-version')).toBe('2020-10-01');
    const id1 = response.headers.get('x-request-id');
    const { response: r2 } = await client.chat.completions.create(chatBody).withResponse();
    expect(id1).toMatch(/^req_[0-9a-f]{32}$/);
    expect(r2.headers.get('x-request-id')).not.toBe(id1);

    const rec = mock.lastRequest()!;
    expect(rec.path).toBe('/v1/chat/completions');
    expect(rec.json).toEqual(chatBody);
    expect(rec.receivedBytes).toBe(rec.body.length);
    expect(rec.aborted).toBe(false);
  });

  it('streams chat with a usage chunk only when include_usage is set', async () => {
    const withUsage = [];
    for await (const c of await client.chat.completions.create({ ...chatBody, stream: true, stream_options: { include_usage: true } })) withUsage.push(c);
    const last = withUsage.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ prompt_tokens: 19, completion_tokens: 9, total_tokens: 28 });

    const without = [];
    for await (const c of await client.chat.completions.create({ ...chatBody, stream: true })) without.push(c);
    expect(without.length).toBe(withUsage.length - 1);
    expect(without.every((c) => !('usage' in c))).toBe(true);
    expect(without.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Hello! How can I help you today?');
  });

  it('rejects stream_options without stream on chat completions', async () => {
    const err = await client.chat.completions.create({ ...chatBody, stream_options: { include_usage: true } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('stream_options');
  });

  it('streams the Responses API to response.completed with usage', async () => {
    const types: string[] = [];
    let usage: unknown;
    for await (const ev of await client.responses.create({ model: 'gpt-4.1-mini', input: 'Hi', stream: true })) {
      types.push(ev.type);
      if (ev.type === 'response.completed') usage = ev.response.usage;
    }
    expect(types[0]).toBe('response.created');
    expect(types.at(-1)).toBe('response.completed');
    expect(usage).toMatchObject({ input_tokens: 37, output_tokens: 10, total_tokens: 47 });

    const plain = await client.responses.create({ model: 'o4-mini', input: 'Hi' });
    expect(plain.usage).toEqual(fixtureJson('responses.json').usage);
  });

  it('answers stream_options.include_usage on /v1/responses with 400 unknown_parameter', async () => {
    const err = await client.responses
      .create({ model: 'gpt-4.1-mini', input: 'Hi', stream: true, stream_options: { include_usage: true } as never })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('unknown_parameter');
    // The option the Responses API does have is accepted.
    const ok = await client.responses.create({ model: 'gpt-4.1-mini', input: 'Hi', stream: true, stream_options: { include_obfuscation: false } });
    for await (const _ of ok) { /* drain */ }
  });

  it('answers a wrong key with 401 invalid_api_key and a missing one with the missing-key error', async () => {
    const err = await sdk({ apiKey: 'sk-wrong' }).models.list().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((err as InstanceType<typeof OpenAI.AuthenticationError>).code).toBe('invalid_api_key');

    const res = await fetch(`${mock.url}/v1/models`);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual(fixtureJson('error-401-missing-api-key.json'));
  });

  it('parses multipart transcriptions and picks the fixture by model', async () => {
    const audio = Buffer.alloc(3000, 7);
    const tokens = await client.audio.transcriptions.create({ file: await toFile(audio, 'a.mp3'), model: 'gpt-4o-transcribe' });
    expect(tokens.usage).toEqual(fixtureJson('transcription-tokens.json').usage);
    const rec = mock.lastRequest()!;
    expect(rec.json).toMatchObject({ model: 'gpt-4o-transcribe' });
    expect(rec.receivedBytes).toBe(3000);
    expect(rec.files).toEqual([{ field: 'file', filename: 'a.mp3', mimeType: expect.any(String), bytes: 3000 }]);

    const verbose = await client.audio.transcriptions.create({ file: await toFile(audio, 'a.mp3'), model: 'whisper-1', response_format: 'verbose_json' });
    expect(verbose.usage).toEqual({ type: 'duration', seconds: 9 });

    const deltas: string[] = [];
    for await (const ev of await client.audio.transcriptions.create({ file: await toFile(audio, 'a.mp3'), model: 'gpt-4o-mini-transcribe', stream: true })) {
      deltas.push(ev.type);
    }
    expect(deltas.at(-1)).toBe('transcript.text.done');
  });

  it('synthesizes a legacy completions stream', async () => {
    const chunks = [];
    for await (const c of await client.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'Say this is a test', stream: true, stream_options: { include_usage: true } })) chunks.push(c);
    expect(chunks.map((c) => c.choices[0]?.text ?? '').join('')).toBe(fixtureJson('completion-legacy.json').choices[0].text);
    expect(chunks.at(-1)!.usage).toEqual({ prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 });
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
  });

  it('sends speech as chunked audio/mpeg bytes', async () => {
    const res = await client.audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'alloy', input: 'Hi' });
    expect(res.headers.get('content-type')).toBe('audio/mpeg');
    expect(Buffer.from(await res.arrayBuffer()).equals(speechAudio())).toBe(true);
  });

  it('serves models, files and the OpenAI-style 404s', async () => {
    expect((await client.models.retrieve('whisper-1')).owned_by).toBe('openai-internal');
    const missing = await client.models.retrieve('gpt-9-turbo').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);

    const page = await client.files.list({ limit: 2 });
    expect(page.data).toHaveLength(2);
    expect(page.has_more).toBe(true);
    const up = await client.files.create({ file: await toFile(Buffer.from('{"a":1}\n'), 'x.jsonl'), purpose: 'batch' });
    expect(up).toMatchObject({ object: 'file', bytes: 8, filename: 'x.jsonl', purpose: 'batch' });
    expect(await client.files.delete(up.id)).toEqual({ id: up.id, object: 'file', deleted: true });

    const res = await fetch(`${mock.url}/v1/nope`, { method: 'PUT', headers: { authorization: `Bearer ${KEY}` } });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { message: 'Invalid URL (PUT /v1/nope)', type: 'invalid_request_error', param: null, code: null } });
  });

  it('answers x-mock-status 429 with the rate-limit headers', async () => {
    const err = await client.chat.completions.create(chatBody, { headers: { 'x-mock-status': '429' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const e = err as InstanceType<typeof OpenAI.RateLimitError>;
    expect(e.code).toBe('rate_limit_exceeded');
    expect(e.headers.get('retry-after')).toBe('1');
  });

  it('breaks a stream after N events so the client sees an error', async () => {
    const stream = await client.chat.completions.create({ ...chatBody, stream: true }, { headers: { 'x-mock-break-after': '3' } });
    const got: unknown[] = [];
    const err = await (async () => { for await (const c of stream) got.push(c); })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(got).toHaveLength(3);
    expect(mock.lastRequest()!.aborted).toBe(false); // the mock broke it, the client did not leave
  });

  it('echoes what it received', async () => {
    const res = await fetch(`${mock.url}/v1/files?limit=2&purpose=batch`, { headers: { 'x-mock-echo': '1', 'x-custom': 'yes' } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ method: 'GET', path: '/v1/files', query: 'limit=2&purpose=batch', headers: { 'x-custom': 'yes' }, bodyBytes: 0 });
  });

  it('counts large embedding bodies', async () => {
    const big = 'x'.repeat(5 * 1024 * 1024);
    const { response } = await client.embeddings.create({ model: 'text-embedding-3-small', input: big }).withResponse();
    const rec = mock.lastRequest()!;
    expect(rec.receivedBytes).toBeGreaterThan(big.length);
    expect(response.headers.get('x-mock-received-bytes')).toBe(String(rec.receivedBytes));
  });

  it('records a client abort during a hang, and close() ends hung requests', async () => {
    const own = await startMockOpenAI({ port: 0 });
    const c = new OpenAI({ baseURL: `${own.url}/v1`, apiKey: KEY, maxRetries: 0 });
    const ac = new AbortController();
    const first = c.chat.completions.create(chatBody, { headers: { 'x-mock-hang': '1' }, signal: ac.signal }).catch((e: unknown) => e);
    await own.waitForRequests(1);
    ac.abort();
    expect(await first).toBeInstanceOf(OpenAI.APIUserAbortError);
    await expect.poll(() => own.requests[0]!.aborted).toBe(true);

    const second = c.chat.completions.create(chatBody, { headers: { 'x-mock-hang': '1' } }).catch((e: unknown) => e);
    await own.waitForRequests(2);
    await own.close();
    expect(await second).toBeInstanceOf(OpenAI.APIConnectionError);
    expect(own.requests[1]!.aborted).toBe(false);
  });
});
