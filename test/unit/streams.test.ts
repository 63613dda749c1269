// The pieces that read and reshape streams, fed the fixtures cut at every possible place.
import { describe, expect, it } from 'vitest';
import { UsageChunkFilter } from '../../src/proxy/usageChunkFilter.js';
import { sniffMultipart } from '../../src/proxy/multipartFields.js';
import { SseParser } from '../../src/usage/sseParser.js';
import { JsonTap, SseTap } from '../../src/usage/taps.js';
import { CompressedTap } from '../../src/usage/compressedTap.js';
import { gzipSync } from 'node:zlib';
import { fixtureText, sseEvents } from './openaiFixtures.js';

/** Splits a buffer into pieces at pseudo-random places (deterministic), including inside UTF-8 characters. */
function pieces(buf: Buffer, seed: number, maxLen = 17): Buffer[] {
  const out: Buffer[] = [];
  let s = seed;
  for (let i = 0; i < buf.length; ) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const n = 1 + (s % maxLen);
    out.push(buf.subarray(i, i + n));
    i += n;
  }
  return out;
}

function filtered(chunks: Buffer[]): string {
  const filter = new UsageChunkFilter();
  const parts: Buffer[] = [];
  for (const c of chunks) {
    const out = filter.push(c);
    if (out) parts.push(out);
  }
  const rest = filter.end();
  if (rest) parts.push(rest);
  return Buffer.concat(parts).toString('utf8');
}

describe('SseParser', () => {
  const body = Buffer.from(fixtureText('responses-stream.sse'));
  const expected = sseEvents(body.toString('utf8'));

  it.each([1, 2, 3, 7, 42])('gives the same events however the bytes are cut (seed %i)', (seed) => {
    const got: { event: string | undefined; data: string }[] = [];
    const p = new SseParser((event, data) => got.push({ event, data }));
    for (const c of pieces(body, seed)) p.push(c);
    p.end();
    expect(got).toEqual(expected);
  });

  it('handles CRLF, comments, multi-line data and a last event without its blank line', () => {
    const got: [string | undefined, string][] = [];
    const p = new SseParser((e, d) => got.push([e, d]));
    p.push(': keep-alive\r\nevent: a\r\ndata: 1\r\ndata: 2\r\n\r\ndata:x');
    p.end();
    expect(got).toEqual([['a', '1\n2'], [undefined, 'x']]);
  });

  it('keeps a multi-byte character split across chunks intact', () => {
    const got: string[] = [];
    const p = new SseParser((_e, d) => got.push(d));
    const bytes = Buffer.from('data: {"t":"héllo 🦊"}\n\n');
    for (const b of bytes) p.push(Buffer.from([b]));
    expect(got).toEqual(['{"t":"héllo 🦊"}']);
  });
});

describe('UsageChunkFilter', () => {
  const withUsage = Buffer.from(fixtureText('chat-completions-stream-include-usage.sse'));
  const noUsage = fixtureText('chat-completions-stream-no-usage.sse');

  it.each([1, 5, 9, 23, 99])(
    'turns the include_usage stream into exactly the stream a client without it gets (seed %i)',
    (seed) => {
      expect(filtered(pieces(withUsage, seed, seed % 2 ? 64 : 7))).toBe(noUsage);
    },
  );

  it('handles CRLF-framed streams (OpenAI-compatible upstreams) the same way', () => {
    const crlf = Buffer.from(withUsage.toString('utf8').replace(/\n/g, '\r\n'));
    expect(filtered(pieces(crlf, 7, 40))).toBe(noUsage.replace(/\n/g, '\r\n'));
  });

  it('passes each complete event on at once (no waiting for more data)', () => {
    const filter = new UsageChunkFilter();
    const events = withUsage.toString('utf8').split(/(?<=\n\n)/);
    expect(String(filter.push(Buffer.from(events[0]!)))).toBe(noUsage.split(/(?<=\n\n)/)[0]);
    expect(filter.push(Buffer.from('data: {"half'))).toBeUndefined();
    expect(String(filter.end())).toBe('data: {"half');
  });
});

describe('taps', () => {
  it('SseTap finds usage and model from the chat stream, cut anywhere', () => {
    const tap = new SseTap('chat.completions');
    for (const c of pieces(Buffer.from(fixtureText('chat-completions-stream-include-usage.sse')), 3)) tap.push(c);
    expect(tap.end()).toMatchObject({ model: 'gpt-4o-mini-2024-07-18', usage: { input_tokens: 19, output_tokens: 9, total_tokens: 28 } });
  });

  it('SseTap finds usage however the JSON is spaced, and in an event split over chunks or CRLF-framed', () => {
    const events = [
      'data: {"id":"c1","model":"gpt-4o-mini","choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n',
      'data: {"id":"c1","model":"gpt-4o-mini","choices":[],"usage" :\t{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n',
      'data: [DONE]\n\n',
    ];
    for (const text of [events.join(''), events.join('').replace(/\n/g, '\r\n')]) {
      for (const size of [3, 17, 1000]) {
        const tap = new SseTap('chat.completions');
        for (const c of pieces(Buffer.from(text), 1, size)) tap.push(c);
        expect(tap.end(), `${size}`).toMatchObject({ model: 'gpt-4o-mini', usage: { input_tokens: 5, output_tokens: 2, total_tokens: 7 } });
      }
    }
  });

  it('JsonTap parses once at the end and gives up past its cap', () => {
    const body = Buffer.from(fixtureText('chat-completion.json'));
    const tap = new JsonTap('chat.completions', 1 << 20);
    for (const c of pieces(body, 11, 100)) tap.push(c);
    expect(tap.end().usage).toMatchObject({ input_tokens: 1258, cached_input_tokens: 1024, output_tokens: 94 });
    const small = new JsonTap('chat.completions', 100);
    small.push(body);
    expect(small.end()).toEqual({});
  });

  it('CompressedTap reads a gzip answer the client asked for', () => {
    const tap = CompressedTap.wrap(new JsonTap('chat.completions', 1 << 20), 'gzip', 1 << 20)!;
    for (const c of pieces(gzipSync(Buffer.from(fixtureText('chat-completion.json'))), 5, 50)) tap.push(c);
    expect(tap.end().usage?.output_tokens).toBe(94);
    expect(CompressedTap.wrap(new JsonTap('chat.completions', 1), 'zstd', 1)).toBeUndefined();
  });
});

describe('sniffMultipart', () => {
  const headers = { 'content-type': 'multipart/form-data; boundary=XyZ' };
  const head = '--XyZ\r\ncontent-disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--XyZ\r\ncontent-disposition: form-data; name="file"; filename="a.wav"\r\ncontent-type: audio/wav\r\n\r\n';

  it('reads the model field of a whole upload', async () => {
    const fields: [string, string][] = [];
    const done = new Promise<void>((ok) => {
      const s = sniffMultipart(headers, (n, v) => fields.push([n, v]), ok)!;
      s.write(Buffer.from(head + 'RIFF....data\r\n--XyZ--\r\n'));
      s.end();
    });
    await done;
    expect(fields).toEqual([['model', 'whisper-1']]);
  });

  it('an upload cut off inside its file part ends quietly (no error thrown out of the file stream)', async () => {
    const errors: unknown[] = [];
    const onError = (e: unknown) => errors.push(e);
    process.on('uncaughtException', onError);
    try {
      const fields: string[] = [];
      await new Promise<void>((ok) => {
        const s = sniffMultipart(headers, (n) => fields.push(n), ok)!;
        s.write(Buffer.from(head + 'RIFF partial audio'));
        s.end(); // no closing boundary
      });
      await new Promise((r) => setTimeout(r, 20));
      expect(fields).toEqual(['model']);
      expect(errors).toEqual([]);
    } finally {
      process.off('uncaughtException', onError);
    }
  });
});
