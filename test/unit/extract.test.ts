import { describe, it, expect } from 'vitest';
import type { Endpoint } from '../../src/usage/endpoint.js';
import { usageFromJson, usageFromSseEvent } from '../../src/usage/extract.js';
import type { Extracted } from '../../src/usage/types.js';
import { extractFixture, extractSse, fixtureJson, fixtureText, sseEvents } from './openaiFixtures.js';

describe('usageFromJson on the fixtures', () => {
  const cases: Array<[string, Endpoint, Extracted]> = [
    [
      'chat-completion.json',
      'chat.completions',
      {
        model: 'gpt-4o-mini-2024-07-18',
        usage: {
          input_tokens: 1258,
          output_tokens: 94,
          total_tokens: 1352,
          cached_input_tokens: 1024,
          input_audio_tokens: 0,
          reasoning_tokens: 0,
          output_audio_tokens: 0,
        },
      },
    ],
    [
      'completion-legacy.json',
      'completions',
      { model: 'gpt-3.5-turbo-instruct', usage: { input_tokens: 5, output_tokens: 7, total_tokens: 12 } },
    ],
    [
      'responses.json',
      'responses',
      {
        model: 'o4-mini-2025-04-16',
        usage: {
          input_tokens: 1536,
          output_tokens: 412,
          total_tokens: 1948,
          cached_input_tokens: 1280,
          cache_write_tokens: 0,
          reasoning_tokens: 320,
        },
      },
    ],
    [
      'embeddings.json',
      'embeddings',
      { model: 'text-embedding-3-small', usage: { input_tokens: 15, total_tokens: 15 } },
    ],
    ['moderation.json', 'moderations', { model: 'omni-moderation-latest' }],
    [
      // No model in an ImagesResponse: the caller prices with the request's model.
      'image-generation.json',
      'images.generations',
      {
        usage: {
          input_tokens: 14,
          output_tokens: 1056,
          total_tokens: 1070,
          input_image_tokens: 0,
          output_image_tokens: 1056,
        },
      },
    ],
    [
      'transcription-tokens.json',
      'audio.transcriptions',
      { usage: { input_tokens: 186, output_tokens: 23, total_tokens: 209, input_audio_tokens: 172 } },
    ],
    ['transcription-duration-verbose.json', 'audio.transcriptions', { usage: { audio_seconds: 9 } }],
  ];

  it.each(cases)('%s', (file, endpoint, expected) => {
    expect(extractFixture(endpoint, file)).toEqual(expected);
  });

  it('reads the same image usage on the edits endpoint', () => {
    expect(usageFromJson('images.edits', fixtureJson('image-generation.json')).usage?.output_image_tokens).toBe(1056);
  });

  it('reads duration usage on translations too', () => {
    expect(usageFromJson('audio.translations', fixtureJson('transcription-duration-verbose.json'))).toEqual({
      usage: { audio_seconds: 9 },
    });
  });
});

describe('usageFromSseEvent on the fixture streams', () => {
  const cases: Array<[string, Endpoint, Extracted]> = [
    [
      'chat-completions-stream-include-usage.sse',
      'chat.completions',
      {
        model: 'gpt-4o-mini-2024-07-18',
        usage: {
          input_tokens: 19,
          output_tokens: 9,
          total_tokens: 28,
          cached_input_tokens: 0,
          input_audio_tokens: 0,
          reasoning_tokens: 0,
          output_audio_tokens: 0,
        },
      },
    ],
    ['chat-completions-stream-no-usage.sse', 'chat.completions', { model: 'gpt-4o-mini-2024-07-18' }],
    [
      'responses-stream.sse',
      'responses',
      {
        model: 'gpt-4.1-mini-2025-04-14',
        usage: { input_tokens: 37, output_tokens: 10, total_tokens: 47, cached_input_tokens: 0, cache_write_tokens: 0, reasoning_tokens: 0 },
      },
    ],
    ['responses-stream-failed.sse', 'responses', { model: 'gpt-4.1-mini-2025-04-14' }],
    ['responses-stream-error-event.sse', 'responses', {}],
    [
      'transcription-stream.sse',
      'audio.transcriptions',
      { usage: { input_tokens: 72, output_tokens: 11, total_tokens: 83, input_audio_tokens: 72 } },
    ],
    [
      'speech-stream.sse',
      'audio.speech',
      { usage: { input_tokens: 14, output_tokens: 101, total_tokens: 115, output_audio_tokens: 101 } },
    ],
    [
      // The stream event has no output_tokens_details: all output tokens are image tokens.
      'image-generation-stream.sse',
      'images.generations',
      {
        usage: {
          input_tokens: 14,
          output_tokens: 1056,
          total_tokens: 1070,
          input_image_tokens: 0,
          output_image_tokens: 1056,
        },
      },
    ],
  ];

  it.each(cases)('%s', (file, endpoint, expected) => {
    expect(extractSse(endpoint, file)).toEqual(expected);
  });

  it('finds chat usage only on the last chunk', () => {
    const events = sseEvents(fixtureText('chat-completions-stream-include-usage.sse')).filter((e) => e.data !== '[DONE]');
    const withUsage = events.map((e) => usageFromSseEvent('chat.completions', e.event, JSON.parse(e.data))?.usage);
    expect(withUsage.slice(0, -1).every((u) => u === undefined)).toBe(true);
    expect(withUsage.at(-1)?.input_tokens).toBe(19);
  });

  it('takes the model from response.created and ignores the deltas', () => {
    const events = sseEvents(fixtureText('responses-stream.sse'));
    const first = events[0]!;
    expect(first.event).toBe('response.created');
    expect(usageFromSseEvent('responses', first.event, JSON.parse(first.data))).toEqual({
      model: 'gpt-4.1-mini-2025-04-14', // its "auto" tier (as asked) is not a priced one
    });
    const delta = events.find((e) => e.event === 'response.output_text.delta')!;
    expect(usageFromSseEvent('responses', delta.event, JSON.parse(delta.data))).toBeUndefined();
  });

  it('reads usage from response.incomplete', () => {
    const data = {
      type: 'response.incomplete',
      response: { model: 'o4-mini-2025-04-16', usage: { input_tokens: 5, output_tokens: 100, total_tokens: 105 } },
    };
    expect(usageFromSseEvent('responses', 'response.incomplete', data)).toEqual({
      model: 'o4-mini-2025-04-16',
      usage: { input_tokens: 5, output_tokens: 100, total_tokens: 105 },
    });
  });

  it('does not take usage from a non-final Responses event', () => {
    const data = { type: 'response.in_progress', response: { model: 'm', usage: { input_tokens: 5 } } };
    expect(usageFromSseEvent('responses', 'response.in_progress', data)).toEqual({ model: 'm' });
  });

  it('falls back to the event: name when the payload has no type', () => {
    const data = { usage: { input_tokens: 3, output_tokens: 4, total_tokens: 7 } };
    expect(usageFromSseEvent('audio.speech', 'speech.audio.done', data)?.usage?.output_audio_tokens).toBe(4);
    expect(usageFromSseEvent('audio.speech', undefined, data)).toBeUndefined();
  });

  it('reads image_edit.completed on the edits endpoint', () => {
    const data = {
      type: 'image_edit.completed',
      usage: {
        input_tokens: 300,
        output_tokens: 272,
        total_tokens: 572,
        input_tokens_details: { text_tokens: 44, image_tokens: 256 },
        output_tokens_details: { image_tokens: 260, text_tokens: 12 },
      },
    };
    expect(usageFromSseEvent('images.edits', undefined, data)?.usage).toEqual({
      input_tokens: 300,
      output_tokens: 272,
      total_tokens: 572,
      input_image_tokens: 256,
      output_image_tokens: 260,
    });
  });

  it('reads legacy completion chunks like chat chunks', () => {
    const chunk = { model: 'gpt-3.5-turbo-instruct', choices: [], usage: { prompt_tokens: 5, completion_tokens: 7 } };
    expect(usageFromSseEvent('completions', undefined, chunk)).toEqual({
      model: 'gpt-3.5-turbo-instruct',
      usage: { input_tokens: 5, output_tokens: 7 },
    });
  });
});

describe('chat usage details', () => {
  it('maps audio and image prompt tokens', () => {
    const body = {
      model: 'gpt-4o-audio-preview',
      usage: {
        prompt_tokens: 500,
        completion_tokens: 300,
        total_tokens: 800,
        prompt_tokens_details: { cached_tokens: 0, audio_tokens: 200, image_tokens: 100 },
        completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 250 },
      },
    };
    expect(usageFromJson('chat.completions', body).usage).toEqual({
      input_tokens: 500,
      output_tokens: 300,
      total_tokens: 800,
      cached_input_tokens: 0,
      input_audio_tokens: 200,
      input_image_tokens: 100,
      reasoning_tokens: 0,
      output_audio_tokens: 250,
    });
  });
});

describe('malformed input', () => {
  const junk: unknown[] = [null, undefined, 42, 'text', '[DONE]', [], [{ usage: { prompt_tokens: 1 } }], true];

  it.each(junk)('usageFromJson(%j) returns {}', (body) => {
    expect(usageFromJson('chat.completions', body)).toEqual({});
    expect(usageFromJson('responses', body)).toEqual({});
  });

  it.each(junk)('usageFromSseEvent(%j) returns undefined', (data) => {
    expect(usageFromSseEvent('chat.completions', undefined, data)).toBeUndefined();
    expect(usageFromSseEvent('responses', 'response.completed', data)).toBeUndefined();
  });

  it('drops counts that are not non-negative numbers and keeps the valid ones', () => {
    const body = {
      model: 42,
      usage: {
        prompt_tokens: '10',
        completion_tokens: -1,
        total_tokens: 7,
        prompt_tokens_details: 'x',
        completion_tokens_details: { reasoning_tokens: null },
      },
    };
    expect(usageFromJson('chat.completions', body)).toEqual({ usage: { total_tokens: 7 } });
  });

  it('returns {} for a usage that is not an object or an error body', () => {
    expect(usageFromJson('chat.completions', { usage: 'lots' })).toEqual({});
    expect(usageFromJson('chat.completions', fixtureJson('error-429-rate-limit.json'))).toEqual({});
    expect(usageFromJson('responses', { model: '', usage: null })).toEqual({});
  });

  it('ignores a Responses event whose response is not an object', () => {
    expect(usageFromSseEvent('responses', 'response.completed', { type: 'response.completed', response: 'x' })).toBeUndefined();
    expect(
      usageFromSseEvent('responses', 'response.completed', { type: 'response.completed', response: { usage: null } }),
    ).toBeUndefined();
  });

  it('reads nothing for endpoints without usage', () => {
    const body = fixtureJson('chat-completion.json');
    expect(usageFromJson('models', body)).toEqual({});
    expect(usageFromJson('other', body)).toEqual({});
    expect(usageFromSseEvent('other', undefined, body)).toBeUndefined();
    expect(usageFromSseEvent('embeddings', undefined, body)).toBeUndefined();
  });

  it('does not read another endpoint’s event shape', () => {
    const created = JSON.parse(sseEvents(fixtureText('responses-stream.sse'))[0]!.data);
    expect(usageFromSseEvent('chat.completions', 'response.created', created)).toBeUndefined();
  });
});

describe('POST /v1/responses/compact', () => {
  it('is its own metered endpoint, read like a Response: model and usage from the answer', async () => {
    const { endpointOf } = await import('../../src/usage/endpoint.js');
    const { JsonTap } = await import('../../src/usage/taps.js');
    expect(endpointOf('/v1/responses/compact')).toBe('responses.compact');
    const answer = {
      id: 'resp_compact_1',
      object: 'response.compaction',
      model: 'gpt-5.4-2026-03-05',
      output: [{ type: 'compaction', encrypted_content: 'gAAAA' }],
      usage: { input_tokens: 120_000, input_tokens_details: { cached_tokens: 100_000 }, output_tokens: 3_000, output_tokens_details: { reasoning_tokens: 1_000 }, total_tokens: 123_000 },
    };
    const tap = new JsonTap('responses.compact', 1 << 20);
    tap.push(Buffer.from(JSON.stringify(answer)));
    expect(tap.end()).toMatchObject({
      model: 'gpt-5.4-2026-03-05',
      usage: { input_tokens: 120_000, cached_input_tokens: 100_000, output_tokens: 3_000, reasoning_tokens: 1_000, total_tokens: 123_000 },
    });
  });
});

describe('service_tier: read where OpenAI puts the tier that served the request', () => {
  it('chat JSON (fast scan and full parse), chat chunks, and the final Responses event', async () => {
    const { JsonTap, SseTap } = await import('../../src/usage/taps.js');
    const json = new JsonTap('chat.completions', 1 << 20);
    json.push(Buffer.from('{"id":"c","object":"chat.completion","model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":2000,"completion_tokens":500,"total_tokens":2500,"prompt_tokens_details":{"cached_tokens":1024}},"service_tier":"priority","system_fingerprint":"fp"}'));
    expect(json.end()).toMatchObject({ model: 'gpt-4o-mini-2024-07-18', serviceTier: 'priority' });
    expect(usageFromJson('chat.completions', { model: 'm', service_tier: 'flex', usage: null })).toMatchObject({ serviceTier: 'flex' });

    const chunks = new SseTap('chat.completions');
    chunks.push(Buffer.from('data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o-mini","service_tier":"priority","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\n\n'));
    chunks.push(Buffer.from('data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o-mini","service_tier":"priority","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\ndata: [DONE]\n\n'));
    expect(chunks.end()).toMatchObject({ serviceTier: 'priority', usage: { input_tokens: 3 } });

    const events = new SseTap('responses');
    events.push(Buffer.from('event: response.created\ndata: {"type":"response.created","response":{"model":"o4-mini","service_tier":"auto","usage":null}}\n\n'));
    events.push(Buffer.from('event: response.completed\ndata: {"type":"response.completed","response":{"model":"o4-mini","service_tier":"flex","usage":{"input_tokens":3000,"input_tokens_details":{"cached_tokens":1000},"output_tokens":800,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":3800}}}\n\n'));
    expect(events.end()).toMatchObject({ model: 'o4-mini', serviceTier: 'flex', usage: { input_tokens: 3000, cached_input_tokens: 1000 } });
  });
});

describe('cache_write_tokens', () => {
  it('is read from chat (prompt_tokens_details) and Responses (input_tokens_details) usage', () => {
    expect(usageFromJson('chat.completions', { model: 'm', usage: { prompt_tokens: 10, completion_tokens: 1, prompt_tokens_details: { cached_tokens: 2, cache_write_tokens: 6 } } }).usage)
      .toMatchObject({ input_tokens: 10, cached_input_tokens: 2, cache_write_tokens: 6 });
    expect(usageFromJson('responses', { model: 'm', usage: { input_tokens: 10, output_tokens: 1, input_tokens_details: { cached_tokens: 2, cache_write_tokens: 6 } } }).usage)
      .toMatchObject({ input_tokens: 10, cached_input_tokens: 2, cache_write_tokens: 6 });
  });
});

describe('service_tier cannot be set by the client', () => {
  it("a Responses answer echoing the client's metadata {service_tier: 'flex'} is priced by its own top-level tier", async () => {
    const { JsonTap } = await import('../../src/usage/taps.js');
    const tap = new JsonTap('responses', 1 << 20);
    tap.push(Buffer.from('{"id":"resp_1","object":"response","model":"o4-mini","service_tier":"default","output":[],"usage":{"input_tokens":3000,"output_tokens":800,"total_tokens":3800},"user":null,"metadata":{"service_tier":"flex"}}'));
    const found = tap.end();
    expect(found.serviceTier).toBeUndefined();
    expect(found.usage).toMatchObject({ input_tokens: 3000 });
    const real = new JsonTap('responses', 1 << 20);
    real.push(Buffer.from('{"id":"resp_2","object":"response","model":"o4-mini","service_tier":"flex","output":[],"usage":{"input_tokens":3000,"output_tokens":800,"total_tokens":3800},"user":null,"metadata":{"service_tier":"default"}}'));
    expect(real.end().serviceTier).toBe('flex');
  });
});
