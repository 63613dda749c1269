import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type ErrorRequestHandler } from 'express';
import type { AppParts } from '../app.js';
import { checkKey } from '../auth/authenticate.js';
import { extractKey } from '../auth/credentials.js';
import { sendError } from '../http/errors.js';
import { openContext, type ContextHooks } from '../http/requestContext.js';
import { VERSION } from '../version.js';
import { keyFromBasicAuth, statusPage, type StatusData } from './statusPage.js';

/**
 * Everything outside /v1/ and /health: the status page at / and OpenAI-shaped 404s. An Express app,
 * loaded by src/app.ts on the first request that needs it.
 */
export function createWebApp(
  parts: AppParts & {
    hooks: ContextHooks;
    cors: (req: IncomingMessage, res: ServerResponse, next: () => void) => void;
    startedAt: number;
  },
): (req: IncomingMessage, res: ServerResponse) => void {
  const { config, hooks, startedAt } = parts;
  const web = express();
  web.disable('x-powered-by');
  web.set('etag', false);
  web.use((req, res, next) => {
    openContext(req, res, hooks);
    next();
  });
  web.use(parts.cors);
  web.get(
    '/',
    statusPage({
      access: config.statusPage,
      isAuthorized: (req) => {
        const key = extractKey(req.headers) ?? keyFromBasicAuth(req.headers.authorization);
        return key !== undefined && checkKey(parts.keys, key).ok;
      },
      data: () => statusData(parts, startedAt),
    }),
  );
  web.use((req, res) => {
    sendError(res, 404, `Invalid URL (${req.method} ${req.path}): Keyward serves the OpenAI API under /v1/.`, 'invalid_request_error', 'not_found');
  });
  const onError: ErrorRequestHandler = (err: unknown, _req, res, _next) => {
    parts.log.error({ err }, 'request failed inside Keyward');
    sendError(res, 500, 'Keyward failed to handle this request.', 'server_error', 'internal_error');
  };
  web.use(onError);

  return web;
}

/** What the status page shows: counts and masked keys only, never a secret. */
function statusData(parts: AppParts, startedAt: number): StatusData {
  const now = Date.now();
  const keys = { active: 0, disabled: 0, expired: 0 };
  for (const k of parts.keys.list()) {
    if (k.disabled) keys.disabled++;
    else if (k.expiresAt !== undefined && k.expiresAt <= now) keys.expired++;
    else keys.active++;
  }
  const d = new Date(now);
  const t = parts.store.totalsSince(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  return {
    version: VERSION,
    startedAt,
    keys,
    pool: parts.pool.status(),
    today: { requests: t.requests, input_tokens: t.input_tokens, output_tokens: t.output_tokens, total_tokens: t.total_tokens, cost_usd: t.cost_usd },
  };
}
