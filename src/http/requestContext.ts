import { randomUUID } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import { endpointOf } from '../usage/endpoint.js';
import type { RequestContext } from './context.js';

/**
 * Opens the request's context and closes it exactly once, on the response's 'close' (which Node
 * emits after a normal end, a client disconnect, or a destroyed socket alike). A client that goes
 * away takes the upstream request down with it at once.
 */
export function requestContext(
  onStart: (ctx: RequestContext) => void,
  onDone: (ctx: RequestContext, req: Request, res: Response) => void,
): RequestHandler {
  return (req, res, next) => {
    const id = randomUUID();
    const path = req.path;
    const ctx: RequestContext = {
      id,
      startedAt: Date.now(),
      t0: process.hrtime.bigint(),
      method: req.method,
      path,
      endpoint: endpointOf(path),
      stream: false,
      withholdUsage: false,
      forwarded: false,
      usage: {},
      timedOut: false,
      bytesIn: 0,
      bytesOut: 0,
    };
    res.locals.ctx = ctx;
    onStart(ctx);
    res.setHeader('x-request-id', id);
    res.setHeader('x-keyward-request-id', id);
    res.once('close', () => {
      if (!res.writableFinished) {
        ctx.proxyReq?.destroy();
        ctx.proxyRes?.destroy();
      }
      onDone(ctx, req, res);
    });
    next();
  };
}
