import type { IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { newContext } from '../../src/http/requestContext.js';
import { readAndShape } from '../../src/proxy/shapeRequest.js';

/** A request body stream as the gateway sees it, and a response that records what was sent. */
function fixture(chunks: string[], { fail }: { fail?: Error } = {}) {
  const req = Object.assign(new PassThrough(), { method: 'POST', url: '/v1/chat/completions', headers: { 'content-type': 'application/json' } });
  const sent: { status?: number; body?: string } = {};
  const res = {
    headersSent: false,
    writeHead(status: number) {
      sent.status = status;
      return this;
    },
    end(body: string) {
      sent.body = body;
    },
  };
  const ctx = newContext(req as unknown as IncomingMessage);
  const result = new Promise<{ err: unknown; ok: boolean; calls: number }>((resolve) => {
    let calls = 0;
    readAndShape(ctx, req as unknown as IncomingMessage, res as unknown as ServerResponse, 64, false, (err, ok) => {
      calls++;
      setTimeout(() => resolve({ err, ok, calls }), 20); // a second call would land before this
    });
  });
  for (const c of chunks) req.write(c);
  if (fail) req.destroy(fail);
  else req.end();
  return { ctx, sent, result };
}

describe('readAndShape (callback form)', () => {
  it('reads the body, notes stream and adds include_usage, then calls back once with ok', async () => {
    const { ctx, result } = fixture(['{"model":"gpt-4o-mini",', '"stream":true}']);
    expect(await result).toEqual({ err: undefined, ok: true, calls: 1 });
    expect(ctx.stream).toBe(true);
    expect(ctx.withholdUsage).toBe(true);
    expect(JSON.parse(ctx.body!.toString())).toEqual({ stream_options: { include_usage: true }, model: 'gpt-4o-mini', stream: true });
  });

  it('answers 413 itself for a body over the limit and calls back once with not ok', async () => {
    const { sent, result } = fixture(['{"model":"gpt-4o-mini","messages":[', '"x".repeat(100)', '"more than 64 bytes in all"]}']);
    expect(await result).toEqual({ err: undefined, ok: false, calls: 1 });
    expect(sent.status).toBe(413);
    expect(JSON.parse(sent.body!).error.code).toBe('request_too_large');
  });

  it('passes a broken request stream on as an error, once', async () => {
    const { result } = fixture(['{"model":'], { fail: new Error('ECONNRESET') });
    const r = await result;
    expect((r.err as Error).message).toBe('ECONNRESET');
    expect(r).toMatchObject({ ok: false, calls: 1 });
  });
});
