import http from 'node:http';
import https from 'node:https';
import type { RequestContext } from '../http/context.js';
import { sendError } from '../http/errors.js';
import { UpstreamPool } from '../upstream/pool.js';
import { tooLarge } from './bodyLimit.js';
import { readableAcceptEncoding, upstreamRequestHeaders } from './headers.js';
import { sniffMultipart } from './multipartFields.js';
import { readBody } from './readBody.js';
import { decoded } from '../usage/compressedTap.js';
import { errorCodeOf, relayReadAnswer, relayResponse } from './relay.js';
import { upstreamPath } from './upstreamPath.js';

export interface ForwardOptions {
  baseUrl: URL;
  pool: UpstreamPool;
  /** Idle time on the upstream connection before the request fails with 504. */
  timeoutMs: number;
  maxBodyBytes: number;
  /** Upstream keys tried for one request at most (429 / 401 move it to the next). */
  maxAttempts?: number;
}

export type Forward = (ctx: RequestContext, req: http.IncomingMessage, res: http.ServerResponse) => void;

const MULTIPART_ENDPOINTS = new Set(['audio.transcriptions', 'audio.translations', 'images.edits', 'images.variations']);

/**
 * Sends the request upstream over pooled keep-alive connections, with a key from the upstream pool,
 * and hands the answer to relayResponse. A 429 or 401 is tried again on another key while nothing
 * has reached the client and the body can be sent again (it was read, or there is none).
 * Plain node:http: on this path every microsecond is paid on every request, and http-proxy's
 * generic machinery measured ~20–70 % more CPU per request than this (see bench/).
 */
export function createForwarder(opts: ForwardOptions): Forward {
  const secure = opts.baseUrl.protocol === 'https:';
  const transport = secure ? https : http;
  // The idle timeout lives on the pooled sockets, set once, not armed and disarmed per request.
  const agent = new transport.Agent({ keepAlive: true, maxSockets: 256, timeout: opts.timeoutMs });
  const hostname = opts.baseUrl.hostname.replace(/^\[|\]$/g, '');
  const port = opts.baseUrl.port || (secure ? 443 : 80);
  const host = opts.baseUrl.host;
  const { pool } = opts;
  const maxAttempts = Math.min(opts.maxAttempts ?? 3, pool.size);

  const attempt = (ctx: RequestContext, req: http.IncomingMessage, res: http.ServerResponse, tried: Set<string>): void => {
    // Never undefined on the first attempt; later attempts are only made when hasUsable() said so.
    const key = (pool.pick(tried) ?? pool.fallback(tried))!;
    tried.add(key.id);
    ctx.upstreamKeyId = key.id;
    const extra: http.OutgoingHttpHeaders = { host, ...key.headers };
    if (ctx.body) extra['content-length'] = ctx.body.length;
    else if (hasBody(req) && req.headers['content-length'] === undefined) {
      // Say how the body is framed, whatever the method: Node does not chunk a GET or DELETE body by
      // itself, and unframed bytes on a shared keep-alive connection would be read as a new request.
      extra['transfer-encoding'] = 'chunked';
    }
    // A reshaped answer (stream usage withheld, model list filtered) must come uncompressed; any
    // other may be compressed only in a coding the tap can read.
    const encoding = ctx.withholdUsage || ctx.modelFilter ? 'identity' : readableAcceptEncoding(req.headers['accept-encoding']);
    if (encoding !== undefined) extra['accept-encoding'] = encoding;

    const upstream = transport.request({
      hostname,
      port,
      method: req.method,
      path: upstreamPath(opts.baseUrl, (req.url ?? '/').slice(3)), // after "/v1"
      headers: upstreamRequestHeaders(req.headers, extra),
      agent,
    });
    ctx.proxyReq = upstream;
    upstream.on('timeout', () => {
      ctx.timedOut = true;
      upstream.destroy(new Error('upstream timeout'));
    });
    upstream.on('error', (err: NodeJS.ErrnoException) => upstreamFailed(ctx, err, res, opts.timeoutMs));
    upstream.on('response', (upRes) => {
      const status = upRes.statusCode ?? 502;
      if (!pool.shouldRetry(status)) {
        pool.report(key, { status });
        return relayResponse(ctx, upRes, res);
      }
      // Small error body: read it to learn OpenAI's code (rate limit or out of quota) before deciding.
      readBody(upRes, 256 * 1024).then(
        (raw) => {
          const body = decoded(raw, upRes.headers['content-encoding']);
          if (body !== raw) delete upRes.headers['content-encoding']; // relayed decoded, with its new length
          pool.report(key, { status, code: errorCodeOf(body) ?? null, retryAfterMs: UpstreamPool.retryAfterMs(upRes.headers) });
          const replayable = ctx.body !== undefined || !hasBody(req);
          if (replayable && tried.size < maxAttempts && !res.destroyed && pool.hasUsable(tried)) {
            ctx.retries = (ctx.retries ?? 0) + 1;
            return attempt(ctx, req, res, tried);
          }
          relayReadAnswer(ctx, upRes, body, res);
        },
        (err: NodeJS.ErrnoException) => upstreamFailed(ctx, err, res, opts.timeoutMs),
      );
    });

    if (ctx.body) return void upstream.end(ctx.body);
    if (!hasBody(req)) return void upstream.end();
    tapRequestBody(ctx, req, res, opts.maxBodyBytes);
    req.pipe(upstream);
  };

  return (ctx, req, res) => {
    if (res.destroyed) return;
    ctx.forwarded = true;
    attempt(ctx, req, res, new Set());
  };
}

/** Whether the client sends a body (one not read yet cannot be sent twice). */
function hasBody(req: http.IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** Reads a copy of a streamed body on the side: its size (for the limit) and multipart fields. */
function tapRequestBody(ctx: RequestContext, req: http.IncomingMessage, res: http.ServerResponse, maxBytes: number): void {
  const sniffer = MULTIPART_ENDPOINTS.has(ctx.endpoint)
    ? sniffMultipart(req.headers, (name, value) => {
        if (name === 'model') ctx.requestModel = value;
        else if (name === 'stream') ctx.stream = value === 'true';
      })
    : undefined;
  req.on('data', (chunk: Buffer) => {
    ctx.bytesIn += chunk.length;
    if (ctx.bytesIn > maxBytes) {
      if (!res.headersSent) tooLarge(res, maxBytes);
      ctx.status = 413;
      ctx.outcome = 'upstream_error';
      ctx.error = 'request body over the limit';
      ctx.proxyReq?.destroy();
      req.unpipe();
      req.resume();
      return;
    }
    sniffer?.write(chunk);
  });
  if (sniffer) req.on('end', () => sniffer.end());
}

function upstreamFailed(ctx: RequestContext, err: NodeJS.ErrnoException, res: http.ServerResponse, timeoutMs: number): void {
  if (res.writableEnded || res.destroyed) return; // the client left first, or the answer was already given
  if (res.headersSent) {
    ctx.outcome ??= 'stream_broken';
    ctx.error ??= ctx.timedOut ? 'upstream timeout mid-response' : `upstream failed mid-response: ${err.code ?? err.message}`;
    res.destroy();
    return;
  }
  ctx.outcome = 'upstream_error';
  if (ctx.timedOut) {
    ctx.status = 504;
    ctx.error = 'upstream timeout';
    sendError(res, 504, `The upstream API did not answer within ${timeoutMs / 1000} s.`, 'upstream_error', 'upstream_timeout');
    return;
  }
  ctx.status = 502;
  ctx.error = `upstream unreachable: ${err.code ?? err.message}`;
  sendError(res, 502, `Keyward could not reach the upstream API (${err.code ?? 'connection failed'}).`, 'upstream_error', 'upstream_unreachable');
}

