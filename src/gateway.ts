import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { authenticate } from './auth/authenticate.js';
import type { Config } from './config/schema.js';
import type { RequestContext } from './http/context.js';
import { sendError } from './http/errors.js';
import type { ContextHooks } from './http/requestContext.js';
import { openContext } from './http/requestContext.js';
import type { KeyRing } from './keys/keyRing.js';
import { withinDeclaredLimit } from './proxy/bodyLimit.js';
import { createForwarder } from './proxy/forward.js';
import { mustReadBody, readAndShape } from './proxy/shapeRequest.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * The path of every /v1/ request, in order: context → CORS → authenticate → body limit → shape →
 * forward. Plain functions on node:http's request and response rather than Express middleware:
 * this path runs for every token anyone buys, and Express's router cost more than all of it.
 */
export function createGateway(parts: {
  config: Config;
  keys: KeyRing;
  hooks: ContextHooks;
  cors: (req: IncomingMessage, res: ServerResponse, next: () => void) => void;
  log: Logger;
}): Handler {
  const { config, keys, hooks, log } = parts;
  const forward = createForwarder({
    baseUrl: config.upstreamBaseUrl,
    upstreamKey: config.upstreamKey,
    timeoutMs: config.upstreamTimeoutMs,
    maxBodyBytes: config.maxBodyBytes,
  });

  const failed = (ctx: RequestContext, res: ServerResponse) => (err: unknown) => {
    log.error({ err, request_id: ctx.id }, 'request failed inside Keyward');
    sendError(res, 500, 'Keyward failed to handle this request.', 'server_error', 'internal_error');
  };

  return (req, res) => {
    const ctx = openContext(req, res, hooks);
    const proceed = () => {
      if (!authenticate(keys, ctx, req, res)) return;
      if (!withinDeclaredLimit(req, res, config.maxBodyBytes)) return;
      if (!mustReadBody(ctx, req)) return forward(ctx, req, res);
      readAndShape(ctx, req, res, config.maxBodyBytes, config.logBodies).then(
        (ok) => ok && forward(ctx, req, res),
        failed(ctx, res),
      );
    };
    // CORS concerns browsers only, and browsers always send Origin: SDKs and servers skip it.
    if (req.headers.origin !== undefined || req.method === 'OPTIONS') parts.cors(req, res, proceed);
    else proceed();
  };
}
