import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { elapsedMs, type RequestContext } from '../http/context.js';
import { sendError } from '../http/errors.js';
import { CompressedTap } from '../usage/compressedTap.js';
import { JsonTap, SseTap, nullTap, type ResponseTap } from '../usage/taps.js';
import { responseHeaders } from './headers.js';
import { UsageChunkFilter } from './usageChunkFilter.js';

/** Largest response body the JSON tap keeps a copy of (image b64 answers can be tens of MB). */
const TAP_MAX_BYTES = 64 * 1024 * 1024;

function chooseTap(ctx: RequestContext, upstream: IncomingMessage): ResponseTap {
  if (ctx.method !== 'POST') return nullTap; // lists and retrievals (stored completions …) bill nothing
  const type = String(upstream.headers['content-type'] ?? '').toLowerCase();
  const tap = type.startsWith('text/event-stream')
    ? new SseTap(ctx.endpoint)
    : type.includes('json') && ctx.endpoint !== 'other' // files, batches …: no usage to read
      ? new JsonTap(ctx.endpoint, TAP_MAX_BYTES, ctx.keepResponseJson === true)
      : nullTap;
  const encoding = upstream.headers['content-encoding'];
  if (tap === nullTap || !encoding || encoding === 'identity') return tap;
  return CompressedTap.wrap(tap, encoding, TAP_MAX_BYTES) ?? nullTap;
}

/** Notes what every upstream answer tells the meter: status, time to first byte, OpenAI's id. */
function noteAnswer(ctx: RequestContext, upstream: IncomingMessage): number {
  const status = (ctx.status = upstream.statusCode ?? 502);
  ctx.ttfbMs ??= elapsedMs(ctx);
  const upstreamId = upstream.headers['x-request-id'];
  if (typeof upstreamId === 'string') ctx.upstreamRequestId = upstreamId;
  return status;
}

/** The upstream's headers as the client gets them, with Keyward's request id (and OpenAI's, or ours). */
function answerHeaders(ctx: RequestContext, upstream: IncomingMessage): OutgoingHttpHeaders {
  const headers = responseHeaders(upstream.headers);
  headers['x-request-id'] ??= ctx.id;
  headers['x-keyward-request-id'] = ctx.id;
  return headers;
}

/**
 * Sends the upstream answer to the client as it arrives, byte for byte, while a tap reads a copy for
 * usage. Only a stream whose usage Keyward asked for on the client's behalf is reshaped (the extra
 * usage chunk withheld), event by event.
 */
export function relayResponse(ctx: RequestContext, upstream: IncomingMessage, res: ServerResponse): void {
  ctx.proxyRes = upstream;
  const status = noteAnswer(ctx, upstream);
  if (res.destroyed) {
    upstream.destroy();
    return;
  }

  if (ctx.modelFilter && status === 200) return relayFilteredModels(ctx, upstream, res, ctx.modelFilter);

  const tap = chooseTap(ctx, upstream);
  let tapDone = false;
  ctx.finishTap = () => {
    if (tapDone) return;
    tapDone = true;
    const found = tap.end();
    if (found.model) ctx.responseModel = found.model;
    if (found.usage) ctx.usage = { ...ctx.usage, ...found.usage };
    if (found.json !== undefined) ctx.responseJson = found.json;
  };

  upstream.on('data', (chunk: Buffer) => {
    ctx.bytesOut += chunk.length;
    tap.push(chunk);
  });
  // Registered before pipe(), so the tap is read before the client's response is ended.
  upstream.on('end', ctx.finishTap);
  upstream.on('error', () => {}); // reported through 'close' below
  upstream.on('close', () => {
    if (upstream.complete) return;
    ctx.outcome ??= res.destroyed ? 'client_aborted' : 'stream_broken';
    ctx.error ??= 'upstream connection closed mid-response';
    ctx.finishTap?.();
    // Cut the client's response too: a clean end would pass a truncated answer off as complete.
    res.destroy();
  });

  const headers = answerHeaders(ctx, upstream);
  const reshape = ctx.withholdUsage && status === 200 && tap instanceof SseTap;
  if (reshape) delete headers['content-length'];
  res.writeHead(status, headers);
  if (reshape) upstream.pipe(new UsageChunkFilter()).pipe(res);
  else upstream.pipe(res);
}

/**
 * An answer the forwarder had to read whole first (a 429 or 401 it considered retrying on another
 * upstream key) goes to the client now. OpenAI's 401 means the gateway's own key was refused, and its
 * message echoes part of that key: the client gets a 502 that says so, with nothing of the key in it.
 */
export function relayReadAnswer(ctx: RequestContext, upstream: IncomingMessage, body: Buffer, res: ServerResponse): void {
  const status = noteAnswer(ctx, upstream);
  ctx.bytesOut += body.length;
  ctx.outcome = 'upstream_error';
  if (res.destroyed) return;
  if (status === 401) {
    const code = errorCodeOf(body) ?? 'unknown';
    ctx.status = 502;
    ctx.error = `upstream refused the gateway's key (401 ${code})`;
    return sendError(
      res,
      502,
      `OpenAI refused this gateway's upstream key (401, ${code}). This is a Keyward configuration problem: ask the operator to check OPENAI_API_KEY.`,
      'upstream_error',
      'upstream_auth_failed',
      null,
      { 'x-keyward-request-id': ctx.id, 'x-request-id': ctx.upstreamRequestId ?? ctx.id },
    );
  }
  const headers = answerHeaders(ctx, upstream);
  headers['content-length'] = body.length;
  res.writeHead(status, headers);
  res.end(body);
}

/** The `error.code` of an OpenAI error body, if it is one. */
export function errorCodeOf(body: Buffer): string | undefined {
  try {
    const code = (JSON.parse(body.toString('utf8')) as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

/** GET /v1/models for a key with a model list: the list shows only what the key may use. */
function relayFilteredModels(
  ctx: RequestContext,
  upstream: IncomingMessage,
  res: ServerResponse,
  allows: (model: string) => boolean,
): void {
  const tap = new JsonTap(ctx.endpoint, TAP_MAX_BYTES, true);
  upstream.on('data', (chunk: Buffer) => {
    ctx.bytesOut += chunk.length;
    tap.push(chunk);
  });
  upstream.on('error', () => {});
  upstream.on('end', () => {
    const list = tap.end().json as { data?: { id?: unknown }[] } | undefined;
    if (!list || !Array.isArray(list.data)) {
      ctx.outcome = 'upstream_error';
      ctx.status = 502;
      ctx.error = 'unreadable model list';
      return sendError(res, 502, 'The upstream model list could not be read.', 'upstream_error', 'upstream_bad_response');
    }
    list.data = list.data.filter((m) => m !== null && typeof m === 'object' && typeof m.id === 'string' && allows(m.id));
    const body = JSON.stringify(list);
    const headers = answerHeaders(ctx, upstream);
    delete headers['content-encoding'];
    headers['content-length'] = Buffer.byteLength(body);
    res.writeHead(200, headers);
    res.end(body);
  });
}
