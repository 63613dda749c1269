import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockOpenAI, type MockOpenAI } from '../mock-openai/server.js';
import { ALICE_KEY, KEYS, eventually, startKeyward, type KeywardProcess } from './harness.js';

let mock: MockOpenAI;
let kw: KeywardProcess;
let client: OpenAI;

beforeAll(async () => {
  mock = await startMockOpenAI();
  kw = await startKeyward({ upstream: mock.url, keys: KEYS });
  client = new OpenAI({ baseURL: kw.baseURL, apiKey: ALICE_KEY, maxRetries: 0 });
});
afterAll(async () => {
  await kw?.stop();
  await mock?.close();
});

const rowFor = (requestId: string) => () => kw.rows().find((r) => r.upstream_request_id === requestId);

describe('the official SDK through Keyward', () => {
  it('plain chat: answer, swapped key, exact usage and cost', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    expect(data.usage?.prompt_tokens).toBe(1258);
    const upstreamId = response.headers.get('x-request-id')!;
    expect(upstreamId).toMatch(/^req_/);
    const sent = mock.lastRequest()!;
    expect(sent.headers.authorization).toBe('Bearer sk-upstream-test');
    expect(JSON.stringify(sent.headers)).not.toContain(ALICE_KEY);
    const row = await eventually(rowFor(upstreamId));
    expect(row).toMatchObject({
      key_email: 'alice@example.com',
      key_name: 'Alice',
      endpoint: 'chat.completions',
      model: 'gpt-4o-mini-2024-07-18',
      status: 200,
      stream: 0,
      input_tokens: 1258,
      cached_input_tokens: 1024,
      output_tokens: 94,
      outcome: 'ok',
      cost_nano_usd: 168300,
    });
  });

  it('streamed chat without include_usage: client sees OpenAI\'s no-usage stream, row has usage', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    const chunks: any[] = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks.length).toBeGreaterThan(2);
    expect(chunks.every((c) => !('usage' in c))).toBe(true);
    expect(chunks.every((c) => c.choices.length > 0)).toBe(true);
    const sent = mock.lastRequest()!;
    expect(sent.json.stream_options).toEqual({ include_usage: true });
    const row = await eventually(() => kw.rows().find((r) => r.request_id && r.stream === 1 && r.outcome === 'ok'));
    expect(row).toMatchObject({ input_tokens: 19, output_tokens: 9, total_tokens: 28, cost_nano_usd: 8250 });
  });
});
