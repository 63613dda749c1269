import { describe, expect, it } from 'vitest';
import { extractKey } from '../../src/auth/credentials.js';
import { redactBase64 } from '../../src/logging/redactBodies.js';
import { responseHeaders, upstreamRequestHeaders } from '../../src/proxy/headers.js';
import { upstreamPath } from '../../src/proxy/upstreamPath.js';
import { endpointOf } from '../../src/usage/endpoint.js';

describe('credentials', () => {
  it('reads Bearer and api-key, Bearer first', () => {
    expect(extractKey({ authorization: 'Bearer sk-a' })).toBe('sk-a');
    expect(extractKey({ authorization: 'bearer  sk-a ' })).toBe('sk-a');
    expect(extractKey({ 'api-key': 'sk-b' })).toBe('sk-b');
    expect(extractKey({ authorization: 'Bearer sk-a', 'api-key': 'sk-b' })).toBe('sk-a');
    expect(extractKey({ authorization: 'Basic abc' })).toBeUndefined();
    expect(extractKey({})).toBeUndefined();
  });

});

describe('hop-by-hop headers', () => {
  it('request: drops hop-by-hop, those named in Connection, Expect, host and every client credential', () => {
    const h: Record<string, string> = {
      connection: 'keep-alive, x-hop', 'keep-alive': 'timeout=5', 'x-hop': '1', te: 'trailers',
      'transfer-encoding': 'chunked', upgrade: 'h2c', expect: '100-continue', 'x-keep': '1', host: 'client',
      authorization: 'x', 'api-key': 'x', 'x-api-key': 'x', cookie: 'x', 'proxy-authorization': 'x',
      'openai-organization': 'x', 'openai-project': 'x', 'content-type': 'application/json',
    };
    const out = upstreamRequestHeaders(h, { authorization: 'Bearer up' }, false);
    expect(out).toEqual({ 'x-keep': '1', 'content-type': 'application/json', authorization: 'Bearer up' });
    expect(h['x-keep']).toBe('1'); // the client's own object is left as it was
  });

  it("request: keeps the client's Content-Length for a streamed body, drops it for a read (maybe reshaped) one", () => {
    const h = { 'content-length': '12', 'content-type': 'application/json' };
    expect(upstreamRequestHeaders(h, {}, false)['content-length']).toBe('12');
    expect(upstreamRequestHeaders(h, {}, true)['content-length']).toBeUndefined();
  });

  it('response: keeps OpenAI headers, drops hop-by-hop and upstream cookies', () => {
    const out = responseHeaders({
      connection: 'keep-alive', 'keep-alive': 'timeout=5', 'transfer-encoding': 'chunked',
      'set-cookie': ['__cf_bm=1'], 'x-request-id': 'req_1', 'openai-processing-ms': '12',
      'x-ratelimit-remaining-tokens': '5', 'content-type': 'text/event-stream',
    });
    expect(out).toEqual({ 'x-request-id': 'req_1', 'openai-processing-ms': '12', 'x-ratelimit-remaining-tokens': '5', 'content-type': 'text/event-stream' });
  });
});

describe('upstreamPath', () => {
  it.each([
    ['https://api.openai.com', '/chat/completions?a=1', '/v1/chat/completions?a=1'],
    ['https://api.openai.com/', '/models', '/v1/models'],
    ['https://api.openai.com/v1', '/models', '/v1/models'],
    ['https://gw.example.com/openai/v1/', '/models', '/openai/v1/models'],
    ['https://gw.example.com/prefix', '/models', '/prefix/v1/models'],
  ])('%s + %s → %s', (base, rest, expected) => {
    expect(upstreamPath(new URL(base), rest)).toBe(expected);
  });
});

describe('endpointOf', () => {
  it('names metered endpoints and falls back to other', () => {
    expect(endpointOf('/v1/chat/completions')).toBe('chat.completions');
    expect(endpointOf('/v1/chat/completions/')).toBe('chat.completions');
    expect(endpointOf('/v1/audio/transcriptions')).toBe('audio.transcriptions');
    expect(endpointOf('/v1/models/gpt-4o')).toBe('models');
    expect(endpointOf('/v1/files/file-1')).toBe('other');
    expect(endpointOf('/v1//chat/completions')).toBe('chat.completions'); // as an upstream merging slashes sees it
    expect(endpointOf('/v1/chat//completions/')).toBe('chat.completions');
  });
});

describe('redactBase64', () => {
  const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';
  it('cuts data URLs, b64_json and long base64 strings to 16 characters and their length', () => {
    const body = {
      messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } }] }],
      data: [{ b64_json: png }],
      audio: { data: 'A'.repeat(200) },
      text: 'an ordinary sentence stays as it is, however long it may be in the end.',
    };
    const out = redactBase64(body) as any;
    expect(out.messages[0].content[0].image_url.url).toBe(`data:image/png;b…[base64, ${png.length + 22} chars]`);
    expect(out.data[0].b64_json).toBe(`${png.slice(0, 16)}…[base64, ${png.length} chars]`);
    expect(out.audio.data).toBe(`${'A'.repeat(16)}…[base64, 200 chars]`);
    expect(out.text).toBe(body.text);
    expect(JSON.stringify(out)).not.toContain(png.slice(0, 40));
  });

  it('cuts payloads inside longer texts: data URLs with parameters or in HTML, wrapped base64, base64 in a JSON string', () => {
    const blob = Buffer.from(Array.from({ length: 600 }, (_, i) => (i * 7919) % 256)).toString('base64'); // 800 chars
    const wrapped = blob.match(/.{1,76}/g)!.join('\n');
    const body = {
      withParams: `data:image/png;name=cat.png;base64,${blob}`,
      inHtml: `<p>look</p><img src="data:image/png;base64,${blob}"> and more text`,
      wrapped,
      toolArguments: JSON.stringify({ image: blob, caption: 'a cat' }),
      toolArgumentsWrapped: JSON.stringify({ image: wrapped }),
      leadingSpace: ` data:image/png;base64,${blob}`,
      prose: 'An ordinary paragraph, with spaces and punctuation, stays whole. '.repeat(40),
    };
    const out = redactBase64(body) as Record<string, string>;
    const logged = JSON.stringify(out);
    for (const line of blob.match(/.{1,40}/g)!.slice(1)) expect(logged).not.toContain(line);
    expect(out.inHtml).toMatch(/^<p>look<\/p><img src="data:image\/png;b…\[base64, \d+ chars\]"> and more text$/);
    expect(JSON.parse(out.toolArguments!)).toMatchObject({ caption: 'a cat' });
    expect(out.prose).toBe(body.prose);
  });

  it('ordinary long runs stay: a rule of dashes, numbers one per line, a long path', () => {
    const body = {
      rule: '-'.repeat(150),
      numbers: Array.from({ length: 60 }, (_, i) => String(1000 + i)).join('\n'),
      path: `/srv/${'data/releases/'.repeat(10)}current`,
    };
    expect(redactBase64(body)).toEqual(body);
  });

  it('a text of a million "data:" is scanned once (a quadratic scan took minutes and held the event loop)', () => {
    const text = 'data:'.repeat(200_000);
    expect(redactBase64({ text })).toEqual({ text });
    const fake = 'data:a;base64'.repeat(80_000);
    expect(redactBase64({ fake })).toEqual({ fake });
  });

  it('a body nested thousands of levels deep is logged up to 64 levels, without overflowing the stack', () => {
    let deep: unknown = 'bottom';
    for (let i = 0; i < 20_000; i++) deep = [deep];
    const out = redactBase64({ input: deep });
    const text = JSON.stringify(out);
    expect(text).toContain('nested too deeply to log');
    expect(text.length).toBeLessThan(1000);
  });
});
