import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestContext } from '../http/context.js';
import type { Endpoint } from '../usage/endpoint.js';
import { isJson, isMultipart } from './bodyKind.js';
import { tooLarge } from './bodyLimit.js';
import { sniffMultipart } from './multipartFields.js';
import { BodyTooLarge, readBody } from './readBody.js';

/**
 * JSON bodies Keyward must read before forwarding: to learn `model` and `stream`, and to add
 * stream_options.include_usage. Others (embeddings, files, multipart audio …) stream straight through
 * unread: their answer names the model, and a 20 MB embeddings body is never materialised.
 */
const READ_JSON: ReadonlySet<Endpoint> = new Set<Endpoint>([
  'chat.completions',
  'completions',
  'responses',
  'responses.compact',
  'audio.speech',
  'images.generations',
]);

/** Only these two accept stream_options; OpenAI answers 400 to it anywhere else. */
const INJECT_USAGE: ReadonlySet<Endpoint> = new Set<Endpoint>(['chat.completions', 'completions']);

type Json = Record<string, unknown>;

/** Applies what Keyward needs from a parsed body; returns true when the body was changed. */
export function shapeBody(ctx: RequestContext, body: Json): boolean {
  if (typeof body.model === 'string') ctx.requestModel = body.model;
  else if (body.model !== undefined) ctx.modelConflict = true; // a model that is not a string cannot be checked
  if (ctx.endpoint === 'audio.speech') {
    ctx.stream = body.stream_format === 'sse';
    if (typeof body.input === 'string') ctx.inputCharacters = [...body.input].length;
    return false;
  }
  ctx.stream = body.stream === true;
  if (!ctx.stream || !INJECT_USAGE.has(ctx.endpoint)) return false;
  const options = body.stream_options;
  if (options && typeof options === 'object' && (options as Json).include_usage === true) return false;
  body.stream_options = { ...(options && typeof options === 'object' ? options : {}), include_usage: true };
  ctx.withholdUsage = true;
  return true;
}

/**
 * Whether the JSON body must be read before forwarding: the endpoints in READ_JSON, and any JSON
 * body of a key with limits (its model checked before a byte goes out, its size estimated).
 */
export function mustReadJson(ctx: RequestContext, req: IncomingMessage, keyHasLimits: boolean): boolean {
  return req.method === 'POST' && (READ_JSON.has(ctx.endpoint) || keyHasLimits) && isJson(req.headers['content-type']);
}

/** Reads the whole body into ctx.body and passes it on, or answers 413 and passes undefined. */
function readWhole(
  ctx: RequestContext,
  req: IncomingMessage,
  res: ServerResponse,
  maxBytes: number,
  done: (err: unknown, raw?: Buffer) => void,
): void {
  readBody(req, maxBytes, (err, body) => {
    if (err instanceof BodyTooLarge) {
      tooLarge(res, maxBytes);
      return done(undefined, undefined);
    }
    if (err || !body) return done(err);
    ctx.body = body;
    ctx.bytesIn = body.length;
    done(undefined, body);
  });
}

/** A multipart upload to read whole before forwarding: its model (a key's model list) or its size must be known. */
export function mustReadMultipart(req: IncomingMessage, mustKnow: boolean): boolean {
  return mustKnow && req.method === 'POST' && isMultipart(req.headers['content-type']);
}

/** Reads a whole multipart upload to learn its model field before it is forwarded. */
export async function readMultipartFields(ctx: RequestContext, req: IncomingMessage, res: ServerResponse, maxBytes: number): Promise<boolean> {
  const raw = await new Promise<Buffer | undefined>((resolve, reject) =>
    readWhole(ctx, req, res, maxBytes, (err, body) => (err ? reject(err) : resolve(body))),
  );
  if (!raw) return false;
  await new Promise<void>((done) => {
    const sniffer = sniffMultipart(req.headers, (name, value) => {
      if (name === 'model') {
        if (ctx.requestModel !== undefined && ctx.requestModel !== value) ctx.modelConflict = true;
        ctx.requestModel = value;
      } else if (name === 'stream') ctx.stream = value === 'true';
    }, done);
    if (!sniffer) return done();
    sniffer.write(raw);
    sniffer.end();
  });
  return true;
}

/**
 * Reads the JSON body, notes model and stream, and rewrites it if usage must be asked for; then
 * `done(undefined, true)`. Answers 413 itself (and passes false) when the body is over the limit.
 */
export function readAndShape(
  ctx: RequestContext,
  req: IncomingMessage,
  res: ServerResponse,
  maxBytes: number,
  needParsed: boolean,
  done: (err: unknown, ok: boolean) => void,
): void {
  readWhole(ctx, req, res, maxBytes, (err, raw) => {
    if (err || !raw) return done(err, false);
    try {
      shape(ctx, raw, needParsed);
    } catch (failure) {
      return done(failure, false); // called from the request's 'end' event: nothing may throw into it
    }
    done(undefined, true);
  });
}

function shape(ctx: RequestContext, raw: Buffer, needParsed: boolean): void {
  // Nothing to learn from a body that does not stream, when its answer names the model and no
  // policy or log needs the body: skip the parse (it is on every chat request).
  // (A key written with a \u escape could spell "stream" in other bytes: such a body is parsed.)
  if (!needParsed && ANSWER_NAMES_MODEL.has(ctx.endpoint) && raw.indexOf(STREAM_KEY) === -1 && raw.indexOf(ESCAPE_U) === -1) {
    return;
  }
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    return; // forwarded as sent: OpenAI's own 400 explains the JSON error best
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) return;
  ctx.bodyJson = body;
  const hadStreamOptions = 'stream_options' in body;
  if (shapeBody(ctx, body as Json)) ctx.body = withIncludeUsage(raw, body as Json, hadStreamOptions);
}

// Searched as Buffers: a string needle is converted on every call (~70 ns a search, measured).
const STREAM_KEY = Buffer.from('"stream"');
const ESCAPE_U = Buffer.from('\\u');

/** Endpoints whose answers (JSON or stream) carry the model, so the request's need not be read. */
const ANSWER_NAMES_MODEL: ReadonlySet<Endpoint> = new Set<Endpoint>(['chat.completions', 'completions', 'responses']);

/**
 * The body with stream_options.include_usage set. Where the client sent no stream_options at all,
 * the field is inserted into the original text, so every other byte (numbers too large for a
 * double, key order, spacing) reaches OpenAI as the client wrote it.
 */
function withIncludeUsage(raw: Buffer, parsed: Json, hadStreamOptions: boolean): Buffer {
  const open = raw.indexOf('{');
  if (!hadStreamOptions && open !== -1) {
    return Buffer.concat([raw.subarray(0, open + 1), Buffer.from('"stream_options":{"include_usage":true},'), raw.subarray(open + 1)]);
  }
  return Buffer.from(JSON.stringify(parsed), 'utf8');
}
