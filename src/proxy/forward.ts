import http from 'node:http';
import https from 'node:https';
import type { Request, RequestHandler, Response } from 'express';
import { createProxyMiddleware } from 'http-proxy-middleware';
import { ctxOf } from '../http/context.js';
import { sendError } from '../http/errors.js';
import { tooLarge } from './bodyLimit.js';
import { stripRequestHopHeaders } from './headers.js';
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

const MULTIPART_ENDPOINTS = new Set(['audio.transcriptions', 'audio.translations', 'images.edits', 'images.variations']);

/**
 * Sends the request upstream with http-proxy-middleware over pooled keep-alive connections (its
 * default opens a connection per request). Request bodies stream unless shapeRequest already read
 * them; the response is handed to relayResponse.
 */
export function forward(opts: ForwardOptions): RequestHandler {
  const secure = opts.baseUrl.protocol === 'https:';
  const agent = secure
    ? new https.Agent({ keepAlive: true, maxSockets: 256 })
    : new http.Agent({ keepAlive: true, maxSockets: 256 });
  const authorization = `Bearer ${opts.upstreamKey}`;

  const proxy = createProxyMiddleware<Request, Response>({
    target: opts.baseUrl.origin,
    changeOrigin: true,
    agent,
    selfHandleResponse: true,
    ejectPlugins: true,
    pathRewrite: (path) => upstreamPath(opts.baseUrl, path),
    plugins: [
      (server) => {
        // Before http-proxy pipes the request: read a copy of a streamed body for its size and fields.
        server.on('start', (req: Request, res: Response) => {
          const ctx = ctxOf(res);
          if (ctx.body) return;
          const sniffer = MULTIPART_ENDPOINTS.has(ctx.endpoint)
            ? sniffMultipart(req.headers, (name, value) => {
                if (name === 'model') ctx.requestModel = value;
                else if (name === 'stream') ctx.stream = value === 'true';
              })
            : undefined;
          req.on('data', (chunk: Buffer) => {
            ctx.bytesIn += chunk.length;
            if (ctx.bytesIn > opts.maxBodyBytes) {
              if (!res.headersSent) tooLarge(res, opts.maxBodyBytes);
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
        });
        server.on('proxyReq', (proxyReq, _req: Request, res: Response) => {
          const ctx = ctxOf(res);
          ctx.proxyReq = proxyReq;
          if (res.destroyed) return void proxyReq.destroy();
          proxyReq.setTimeout(opts.timeoutMs, () => {
            ctx.timedOut = true;
            proxyReq.destroy(new Error('upstream timeout'));
          });
          if (ctx.body) proxyReq.write(ctx.body);
        });
        server.on('proxyRes', (proxyRes, _req: Request, res: Response) => relayResponse(ctxOf(res), proxyRes, res));
        server.on('error', (err: NodeJS.ErrnoException, _req: Request, res: Response | import('node:net').Socket) => {
          if (!('locals' in res)) return;
          const ctx = ctxOf(res);
          if (res.writableEnded || res.destroyed) return;
          if (res.headersSent) {
            ctx.outcome ??= 'stream_broken';
            ctx.error ??= ctx.timedOut ? 'upstream timeout mid-response' : `upstream failed mid-response: ${err.code ?? err.message}`;
            return void res.destroy();
          }
          ctx.outcome = 'upstream_error';
          if (ctx.timedOut) {
            ctx.status = 504;
            ctx.error = 'upstream timeout';
            return sendError(res, 504, `The upstream API did not answer within ${opts.timeoutMs / 1000} s.`, 'upstream_error', 'upstream_timeout');
          }
          ctx.status = 502;
          ctx.error = `upstream unreachable: ${err.code ?? err.message}`;
          sendError(res, 502, `Keyward could not reach the upstream API (${err.code ?? 'connection failed'}).`, 'upstream_error', 'upstream_unreachable');
        });
      },
    ],
  });

  return (req, res, next) => {
    const ctx = ctxOf(res);
    const headers = req.headers;
    stripRequestHopHeaders(headers);
    headers.authorization = authorization;
    if (ctx.body) {
      headers['content-length'] = String(ctx.body.length);
    }
    // A reshaped stream is edited event by event, which needs it uncompressed.
    if (ctx.withholdUsage) headers['accept-encoding'] = 'identity';
    ctx.forwarded = true;
    void proxy(req, res, next);
  };
}
