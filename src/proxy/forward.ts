import http from 'node:http';
import https from 'node:https';
import type { RequestContext } from '../http/context.js';
import { sendError } from '../http/errors.js';
import { tooLarge } from './bodyLimit.js';
import { upstreamRequestHeaders } from './headers.js';
import { sniffMultipart } from './multipartFields.js';
import { relayResponse } from './relay.js';
import { upstreamPath } from './upstreamPath.js';

export interface ForwardOptions {
  baseUrl: URL;
  upstreamKey: string;
  /** Idle time on the upstream connection before the request fails with 504. */
  timeoutMs: number;
  maxBodyBytes: number;
}

export type Forward = (ctx: RequestContext, req: http.IncomingMessage, res: http.ServerResponse) => void;

const MULTIPART_ENDPOINTS = new Set(['audio.transcriptions', 'audio.translations', 'images.edits', 'images.variations']);

/**
 * Sends the request upstream over pooled keep-alive connections and hands the answer to
 * relayResponse. Plain node:http: on this path every microsecond is paid on every request, and
 * http-proxy's generic machinery measured ~20–70 % more CPU per request than this (see bench/).
 * Request bodies stream unless shapeRequest already read them.
 */
export function createForwarder(opts: ForwardOptions): Forward {
  const secure = opts.baseUrl.protocol === 'https:';
  const transport = secure ? https : http;
  // The idle timeout lives on the pooled sockets, set once, not armed and disarmed per request.
  const agent = new transport.Agent({ keepAlive: true, maxSockets: 256, timeout: opts.timeoutMs });
  const hostname = opts.baseUrl.hostname.replace(/^\[|\]$/g, '');
  const port = opts.baseUrl.port || (secure ? 443 : 80);
  const host = opts.baseUrl.host;
  const authorization = `Bearer ${opts.upstreamKey}`;

  return (ctx, req, res) => {
    if (res.destroyed) return;
    const extra: http.OutgoingHttpHeaders = { host, authorization };
    if (ctx.body) extra['content-length'] = ctx.body.length;
    // A reshaped answer (stream usage withheld, model list filtered) must come uncompressed.
    if (ctx.withholdUsage || ctx.modelFilter) extra['accept-encoding'] = 'identity';
    const headers = upstreamRequestHeaders(req.headers, extra);
    ctx.forwarded = true;

    const upstream = transport.request({
      hostname,
      port,
      method: req.method,
      path: upstreamPath(opts.baseUrl, (req.url ?? '/').slice(3)), // after "/v1"
      headers,
      agent,
    });
    ctx.proxyReq = upstream;
    upstream.on('timeout', () => {
      ctx.timedOut = true;
      upstream.destroy(new Error('upstream timeout'));
    });
    upstream.on('response', (upRes) => relayResponse(ctx, upRes, res));
    upstream.on('error', (err: NodeJS.ErrnoException) => upstreamFailed(ctx, err, res, opts.timeoutMs));

    if (ctx.body) {
      upstream.end(ctx.body);
      return;
    }
    tapRequestBody(ctx, req, res, opts.maxBodyBytes);
    req.pipe(upstream);
  };
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
