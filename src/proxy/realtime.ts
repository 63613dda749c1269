import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { createProxyMiddleware } from 'http-proxy-middleware';
import type { Logger } from 'pino';
import { checkKey } from '../auth/authenticate.js';
import { CLIENT_CREDENTIAL_HEADERS, extractKey } from '../auth/credentials.js';
import { elapsedMs, type RequestContext } from '../http/context.js';
import { errorBody } from '../http/errors.js';
import { pathOf } from '../http/requestContext.js';
import type { KeyRing } from '../keys/keyRing.js';
import { familyOf } from '../policy/families.js';
import type { UpstreamPool } from '../upstream/pool.js';
import { upstreamPath } from './upstreamPath.js';

/** Browsers cannot set headers on a WebSocket: OpenAI's clients send the key as a subprotocol. */
const KEY_PROTOCOL = 'openai-insecure-api-key.';

function keyFromProtocols(header: string | undefined): string | undefined {
  const entry = header?.split(',').map((p) => p.trim()).find((p) => p.startsWith(KEY_PROTOCOL));
  return entry?.slice(KEY_PROTOCOL.length) || undefined;
}

function refuse(socket: Duplex, status: number, reason: string, message: string, code: string): void {
  const body = JSON.stringify(errorBody(message, 'invalid_request_error', code));
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/**
 * WebSocket upgrades under /v1/ (the Realtime API), proxied by http-proxy-middleware, which handles
 * the upgrade handshake and the two-way pipe. Authentication and policy are the same as for HTTP;
 * the client's key (header or subprotocol) is replaced by an upstream key from the pool. Each session
 * leaves one usage row when it closes. Its tokens are not read from the frames yet, which is one
 * reason `realtime` is not among the families a key gets by default.
 */
export function createRealtimeUpgrade(parts: {
  baseUrl: URL;
  keys: KeyRing;
  pool: UpstreamPool;
  log: Logger;
  /** Opens the session's context; `finish` writes its usage row and log line. */
  open: (req: IncomingMessage) => RequestContext;
  finish: (ctx: RequestContext, clean: boolean) => void;
}): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const sessions = new WeakMap<IncomingMessage, RequestContext>();
  const proxy = createProxyMiddleware({
    target: parts.baseUrl.origin,
    changeOrigin: true,
    ws: true,
    ejectPlugins: true,
    pathRewrite: (path) => upstreamPath(parts.baseUrl, path.slice(3)),
    plugins: [
      (server) => {
        server.on('proxyReqWs', (proxyReq, req) => {
          const ctx = sessions.get(req);
          if (!ctx) return;
          proxyReq.on('response', (res) => (ctx.status = res.statusCode)); // refused upstream: no upgrade
          proxyReq.on('upgrade', (res, upstreamSocket) => {
            ctx.status = 101;
            ctx.ttfbMs = elapsedMs(ctx);
            const id = res.headers['x-request-id'];
            if (typeof id === 'string') ctx.upstreamRequestId = id;
            upstreamSocket.on('data', (chunk: Buffer) => (ctx.bytesOut += chunk.length));
          });
        });
        const onError = (err: NodeJS.ErrnoException, _req: IncomingMessage, socket: Duplex) => {
          parts.log.warn({ err: err.code ?? err.message }, 'realtime upstream connection failed');
          socket.destroy();
        };
        server.on('error', onError as never);
      },
    ],
  });

  return (req, socket, head) => {
    const path = pathOf(req.url);
    if (!path.startsWith('/v1/')) return refuse(socket, 404, 'Not Found', `Invalid URL (${path})`, 'not_found');
    const key = extractKey(req.headers) ?? keyFromProtocols(req.headers['sec-websocket-protocol']);
    if (!key) return refuse(socket, 401, 'Unauthorized', "You didn't provide an API key.", 'missing_api_key');
    const check = checkKey(parts.keys, key);
    if (!check.ok) return refuse(socket, 401, 'Unauthorized', check.message, check.code);
    const family = familyOf('GET', path);
    if (!check.record.policy.families.has(family)) {
      return refuse(socket, 403, 'Forbidden', `This key may not use the "${family}" endpoints.`, 'endpoint_not_allowed');
    }
    const upstreamKey = (parts.pool.pick() ?? parts.pool.fallback())!;
    // http-proxy copies req.headers: rewrite them in place, keeping the upgrade headers it needs.
    for (const name of CLIENT_CREDENTIAL_HEADERS) delete req.headers[name];
    const protocols = req.headers['sec-websocket-protocol']
      ?.split(',')
      .map((p) => p.trim())
      .filter((p) => !p.startsWith(KEY_PROTOCOL));
    if (protocols?.length) req.headers['sec-websocket-protocol'] = protocols.join(', ');
    else delete req.headers['sec-websocket-protocol'];
    Object.assign(req.headers, upstreamKey.headers);

    const ctx = parts.open(req);
    ctx.principal = check.record;
    ctx.forwarded = true;
    ctx.upstreamKeyId = upstreamKey.id;
    sessions.set(req, ctx);
    ctx.cut = () => socket.destroy();
    socket.on('data', (chunk: Buffer) => (ctx.bytesIn += chunk.length));
    socket.once('close', (hadError: boolean) => {
      ctx.status ??= 502;
      if (ctx.status !== 101) ctx.outcome = 'upstream_error';
      parts.finish(ctx, !hadError);
    });
    proxy.upgrade(req, socket as never, head);
  };
}
