import cors from 'cors';
import express, { type ErrorRequestHandler, type Express } from 'express';
import type { Logger } from 'pino';
import { authenticate } from './auth/authenticate.js';
import type { Config } from './config/schema.js';
import { elapsedMs, type RequestContext } from './http/context.js';
import { sendError } from './http/errors.js';
import { requestContext } from './http/requestContext.js';
import type { KeyRing } from './keys/keyRing.js';
import type { AccessLog } from './logging/accessLog.js';
import { bodyLimit } from './proxy/bodyLimit.js';
import { forward } from './proxy/forward.js';
import { shapeRequest } from './proxy/shapeRequest.js';
import type { Meter } from './usage/meter.js';
import { VERSION } from './version.js';
import { health } from './web/health.js';

export interface AppParts {
  config: Config;
  keys: KeyRing;
  meter: Meter;
  accessLog: AccessLog;
  log: Logger;
  /** Requests still open (the server waits for them on shutdown). */
  inFlight: Set<RequestContext>;
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

/**
 * The request path, in order: context → CORS → /health → authenticate → body limit → shape → forward.
 * Every part lives in its own module; this file only wires them.
 */
export function createApp(parts: AppParts): Express {
  const { config, keys, meter, accessLog, inFlight } = parts;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.use(
    requestContext(
      (ctx) => inFlight.add(ctx),
      (ctx, _req, res) => {
        inFlight.delete(ctx);
        const row = meter.record(ctx, res.writableFinished);
        if (ctx.path !== '/health') accessLog.write(ctx, row?.status ?? res.statusCode, elapsedMs(ctx), row);
      },
    ),
  );
  app.use(
    cors({
      origin: config.corsOrigins === '*' ? '*' : config.corsOrigins,
      exposedHeaders: EXPOSED_HEADERS,
      maxAge: 600,
    }),
  );
  app.get('/health', health(Date.now(), VERSION));
  app.use(
    '/v1',
    authenticate(keys),
    bodyLimit(config.maxBodyBytes),
    shapeRequest(config.maxBodyBytes, config.logBodies),
    forward({
      baseUrl: config.upstreamBaseUrl,
      upstreamKey: config.upstreamKey,
      timeoutMs: config.upstreamTimeoutMs,
      maxBodyBytes: config.maxBodyBytes,
    }),
  );
  app.use((req, res) => {
    sendError(res, 404, `Invalid URL (${req.method} ${req.path}): Keyward serves the OpenAI API under /v1/.`, 'invalid_request_error', 'not_found');
  });
  const onError: ErrorRequestHandler = (err: unknown, _req, res, _next) => {
    parts.log.error({ err, request_id: res.locals.ctx?.id }, 'request failed inside Keyward');
    sendError(res, 500, 'Keyward failed to handle this request.', 'server_error', 'internal_error');
  };
  app.use(onError);
  return app;
}
