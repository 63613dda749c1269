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
import { checkAdmission, type PolicyEngine } from '../policy/authorize.js';
import { UpstreamPool } from '../upstream/pool.js';
import { SessionKeyWatch } from './sessionKeyWatch.js';
import { readBody } from './readBody.js';
import { errorCodeOf } from './relay.js';
import { upstreamPath } from './upstreamPath.js';

/** A refused handshake's body is read for OpenAI's error code up to this size. */
const MAX_REFUSAL_BODY = 64 * 1024;

/** Browsers cannot set headers on a WebSocket: OpenAI's clients send the key as a subprotocol. */
const KEY_PROTOCOL = 'openai-insecure-api-key.';
/**
 * Subprotocols that stand for headers a client may not send (credentials/credentials.ts): its key,
 * and the organization and project OpenAI would bill (the pool key's own are sent instead).
 */
const WITHHELD_PROTOCOLS = [KEY_PROTOCOL, 'openai-organization.', 'openai-project.'];

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
 * WebSocket upgrades of /v1/realtime (the Realtime API), proxied by http-proxy-middleware, which
 * handles the upgrade handshake and the two-way pipe. Only for keys granted the `realtime` family;
 * model list, rate limit and budget are checked as for HTTP; the client's key (header or
 * subprotocol) is replaced by an upstream key from the pool. Each session leaves one usage row when
 * it closes. Its tokens are not read from the frames yet, so a session counts its estimate against
 * the budget; that is why `realtime` is not among the families a key gets by default.
 */
export function createRealtimeUpgrade(parts: {
  baseUrl: URL;
  keys: KeyRing;
  pool: UpstreamPool;
  engine: PolicyEngine;
  log: Logger;
  /** Opens the session's context; `finish` writes its usage row and log line. */
  open: (req: IncomingMessage) => RequestContext;
  finish: (ctx: RequestContext, clean: boolean) => void;
}): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const sessions = new WeakMap<IncomingMessage, RequestContext>();
  const watch = new SessionKeyWatch(parts.keys);
  const proxy = createProxyMiddleware({
    target: parts.baseUrl.origin,
    changeOrigin: true,
    ws: true,
    ejectPlugins: true,
    pathRewrite: (path) => upstreamPath(parts.baseUrl, path.slice(3)),
    plugins: [
      (server) => {
        server.on('proxyReqWs', (proxyReq, req, socket) => {
          const ctx = sessions.get(req);
          if (!ctx) return;
          ctx.proxyReq = proxyReq;
          // Refused upstream (no upgrade): http-proxy would relay OpenAI's answer verbatim, and a 401
          // echoes part of the upstream key. This listener runs first: answer for it and close.
          proxyReq.on('response', (res) => {
            const status = res.statusCode ?? 502;
            ctx.status = 502; // what the client gets (the row's status is always that)
            ctx.outcome = 'upstream_error';
            ctx.error = `upstream refused the WebSocket (${status})`;
            const key = ctx.upstreamKey;
            // Its body says why (insufficient_quota exhausts a key, a plain 429 cools it): read, bounded.
            readBody(res, MAX_REFUSAL_BODY, (err, body) => {
              const code = err || !body ? null : (errorCodeOf(body) ?? null);
              if (key) parts.pool.report(key, { status, code, retryAfterMs: UpstreamPool.retryAfterMs(res.headers) });
            });
            refuse(socket as Duplex, 502, 'Bad Gateway', `The upstream API refused the WebSocket (${status}).`, 'upstream_error');
            (socket as Duplex).destroy();
          });
          proxyReq.on('upgrade', (res, upstreamSocket) => {
            ctx.status = 101;
            ctx.ttfbMs = elapsedMs(ctx);
            // A key that opens a session works: news for the pool (it may have been tried as a fallback).
            if (ctx.upstreamKey) parts.pool.report(ctx.upstreamKey, { status: 101, sentAt: ctx.startedAt });
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
    // Node takes its own error listener off an upgraded socket: without this one, a client that
    // resets the connection would take the process down.
    socket.on('error', () => socket.destroy());
    if (String(req.headers.upgrade).toLowerCase() !== 'websocket') {
      return refuse(socket, 400, 'Bad Request', 'Only WebSocket upgrades are supported (HTTP/2 is not).', 'upgrade_not_supported');
    }
    const path = pathOf(req.url);
    if (path !== '/v1/realtime') return refuse(socket, 404, 'Not Found', `No WebSocket endpoint at ${path}.`, 'not_found');
    const key = extractKey(req.headers) ?? keyFromProtocols(req.headers['sec-websocket-protocol']);
    if (!key) return refuse(socket, 401, 'Unauthorized', "You didn't provide an API key.", 'missing_api_key');
    const check = checkKey(parts.keys, key);
    if (!check.ok) return refuse(socket, 401, 'Unauthorized', check.message, check.code);
    if (!check.record.policy.families.has('realtime')) {
      return refuse(socket, 403, 'Forbidden', 'This key may not use the "realtime" endpoints.', 'endpoint_not_allowed');
    }
    const ctx = parts.open(req);
    ctx.principal = check.record;
    const models = new URLSearchParams((req.url ?? '').split('?')[1] ?? '').getAll('model');
    if (models[0]) ctx.requestModel = models[0];
    if (models.length > 1) ctx.modelConflict = true;
    const refusal = admitSession(parts.engine, ctx);
    if (refusal) {
      ctx.status = refusal.status;
      parts.finish(ctx, true);
      return refuse(socket, refusal.status, refusal.reason, refusal.message, refusal.code);
    }

    const upstreamKey = (parts.pool.pick() ?? parts.pool.fallback())!;
    // http-proxy copies req.headers: rewrite them in place, keeping the upgrade headers it needs.
    for (const name of CLIENT_CREDENTIAL_HEADERS) delete req.headers[name];
    const protocols = req.headers['sec-websocket-protocol']
      ?.split(',')
      .map((p) => p.trim())
      .filter((p) => !WITHHELD_PROTOCOLS.some((prefix) => p.toLowerCase().startsWith(prefix)));
    if (protocols?.length) req.headers['sec-websocket-protocol'] = protocols.join(', ');
    else delete req.headers['sec-websocket-protocol'];
    Object.assign(req.headers, upstreamKey.headers);

    ctx.forwarded = true;
    ctx.upstreamKeyId = upstreamKey.id;
    ctx.upstreamKey = upstreamKey;
    sessions.set(req, ctx);
    ctx.cut = () => socket.destroy();
    watch.add(ctx);
    socket.on('data', (chunk: Buffer) => (ctx.bytesIn += chunk.length));
    socket.once('close', (hadError: boolean) => {
      watch.delete(ctx);
      ctx.proxyReq?.destroy(); // a client gone during the handshake takes the upstream attempt along
      ctx.status ??= 502;
      if (ctx.status !== 101) ctx.outcome ??= 'upstream_error';
      parts.finish(ctx, !hadError);
    });
    proxy.upgrade(req, socket as never, head);
  };
}

/** Model list, rate limit and budget for a session, as for an HTTP request. */
function admitSession(
  engine: PolicyEngine,
  ctx: RequestContext,
): { status: number; reason: string; message: string; code: string } | undefined {
  const models = ctx.principal!.policy.models;
  if (models && (!ctx.requestModel || ctx.modelConflict || !models.allows(ctx.requestModel))) {
    return { status: 403, reason: 'Forbidden', message: `This key may not use the model "${ctx.requestModel ?? ''}".`, code: 'model_not_allowed' };
  }
  const a = checkAdmission(engine, ctx, 0);
  return a.ok ? undefined : { status: 429, reason: 'Too Many Requests', message: a.message, code: a.code };
}
