import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import cors from 'cors';
import type { Logger } from 'pino';
import type { Config } from './config/schema.js';
import { createGateway } from './gateway.js';
import { elapsedMs, type RequestContext } from './http/context.js';
import type { InFlight } from './http/inFlight.js';
import { sendError } from './http/errors.js';
import { newContext, openContext, type ContextHooks } from './http/requestContext.js';
import { createRealtimeUpgrade } from './proxy/realtime.js';
import type { KeyRing } from './keys/keyRing.js';
import type { AccessLog } from './logging/accessLog.js';
import { settle, type PolicyEngine } from './policy/authorize.js';
import type { Forward } from './proxy/forward.js';
import type { UsageStore } from './storage/usageStore.js';
import type { UpstreamPool } from './upstream/pool.js';
import type { Meter } from './usage/meter.js';
import { VERSION } from './version.js';
import { health } from './web/health.js';

export interface AppParts {
  config: Config;
  keys: KeyRing;
  engine: PolicyEngine;
  forward: Forward;
  pool: UpstreamPool;
  store: UsageStore;
  meter: Meter;
  accessLog: AccessLog;
  log: Logger;
  /** Requests still open (the server waits for them on shutdown). */
  inFlight: InFlight;
}

/** Headers a browser client may read from answers (CORS hides the rest). */
const EXPOSED_HEADERS = [
  'x-request-id',
  'x-keyward-request-id',
  'openai-processing-ms',
  'openai-version',
  'x-ratelimit-limit-requests',
  'x-ratelimit-limit-tokens',
  'x-ratelimit-remaining-requests',
  'x-ratelimit-remaining-tokens',
  'x-ratelimit-reset-requests',
  'x-ratelimit-reset-tokens',
  'retry-after',
];

export interface App {
  handle: (req: IncomingMessage, res: ServerResponse) => void;
  /** WebSocket upgrades (the Realtime API). */
  upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
}

/**
 * The whole server's request handlers: /v1/ goes through the gateway (src/gateway.ts), WebSocket
 * upgrades through src/proxy/realtime.ts, everything else (health, the status page) is an Express
 * app. This file only wires the parts.
 */
export function createApp(parts: AppParts): App {
  const { config, meter, engine, accessLog, inFlight } = parts;
  /** Every request and session ends here: one usage row (if forwarded), one access-log line. */
  const finish = (ctx: RequestContext, complete: boolean, statusSent: number) => {
    inFlight.delete(ctx);
    // Runs in a 'close' event: anything thrown here would end the process, and every other
    // request and queued row with it.
    try {
      const row = meter.record(ctx, complete);
      settle(engine, ctx, row);
      if (ctx.path !== '/health') accessLog.write(ctx, row?.status ?? statusSent, elapsedMs(ctx), row);
    } catch (err) {
      parts.log.error({ err, request_id: ctx.id }, 'could not record a finished request');
    }
  };
  const hooks: ContextHooks = {
    onStart: (ctx) => inFlight.add(ctx),
    onDone: (ctx, res) => finish(ctx, res.writableFinished, res.statusCode),
  };
  const upgrade = createRealtimeUpgrade({
    baseUrl: config.upstreamBaseUrl,
    keys: parts.keys,
    pool: parts.pool,
    engine,
    log: parts.log,
    open: (req) => {
      const ctx = newContext(req);
      inFlight.add(ctx);
      return ctx;
    },
    finish: (ctx, clean) => finish(ctx, clean, ctx.status ?? 502),
  });
  const corsHandler = cors({
    origin: config.corsOrigins === '*' ? '*' : config.corsOrigins,
    exposedHeaders: EXPOSED_HEADERS,
    maxAge: 600,
  });
  const gateway = createGateway({ ...parts, hooks, cors: corsHandler });

  const startedAt = Date.now();
  const healthCheck = health(startedAt, VERSION);
  // Express serves the pages (status page, 404s) and is loaded on the first such request: the API
  // under /v1/ and /health never need it, and loaded it is ~3 MB of heap every full GC walks.
  let web: Promise<(req: IncomingMessage, res: ServerResponse) => void> | undefined;
  const pages = (req: IncomingMessage, res: ServerResponse) => {
    web ??= import('./web/webApp.js').then((m) => m.createWebApp({ ...parts, hooks, cors: corsHandler, startedAt }));
    web.then((handle) => handle(req, res)).catch((err: unknown) => {
      parts.log.error({ err }, 'request failed inside Keyward');
      if (!res.headersSent) sendError(res, 500, 'Keyward failed to handle this request.', 'server_error', 'internal_error');
    });
  };

  return {
    handle: (req, res) => {
      const url = req.url ?? '/';
      if (url.startsWith('/v1/') || url === '/v1' || url.startsWith('/v1?')) gateway(req, res);
      else if (isHealthCheck(req, url)) {
        openContext(req, res, hooks);
        corsHandler(req, res, () => healthCheck(req, res));
      } else pages(req, res);
    },
    upgrade,
  };
}

/** GET or HEAD /health (a query or a trailing slash allowed, as Express routes them). */
function isHealthCheck(req: IncomingMessage, url: string): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const path = url.split('?', 1)[0];
  return path === '/health' || path === '/health/';
}
