import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { endpointOf } from '../usage/endpoint.js';
import { tagResponse, type RequestContext } from './context.js';
import { closeWithConnection } from './queuedAnswers.js';

export interface ContextHooks {
  onStart(ctx: RequestContext): void;
  onDone(ctx: RequestContext, res: ServerResponse): void;
}

/** The URL path without its query string. */
export function pathOf(url: string | undefined): string {
  const u = url ?? '/';
  const q = u.indexOf('?');
  return q === -1 ? u : u.slice(0, q);
}

/** A new request's context: every field set (see the comment inside). */
export function newContext(req: IncomingMessage): RequestContext {
  const path = pathOf(req.url);
  // Every field from the start, in one order: fields added later, in an order that depends on the
  // request, gave the contexts many hidden classes, and every read of them a slower lookup.
  return {
    id: randomUUID(),
    startedAt: Date.now(),
    t0: process.hrtime.bigint(),
    method: req.method ?? 'GET',
    path,
    endpoint: endpointOf(path),
    principal: undefined,
    requestModel: undefined,
    modelConflict: undefined,
    stream: false,
    withholdUsage: false,
    body: undefined,
    bodyJson: undefined,
    inputCharacters: undefined,
    forwarded: false,
    upstreamKeyId: undefined,
    upstreamKey: undefined,
    retries: undefined,
    reservation: undefined,
    modelFilter: undefined,
    status: undefined,
    ttfbMs: undefined,
    upstreamRequestId: undefined,
    responseModel: undefined,
    serviceTier: undefined,
    keepResponseJson: undefined,
    responseJson: undefined,
    usage: {},
    outcome: undefined,
    error: undefined,
    timedOut: false,
    finishTap: undefined,
    cut: undefined,
    abortUpstream: undefined,
    proxyReq: undefined,
    bytesIn: 0,
    bytesOut: 0,
    inFlightSlot: undefined,
  };
}

/**
 * Opens the request's context and closes it exactly once, on the response's 'close' (which Node
 * emits after a normal end, a client disconnect, or a destroyed socket alike; for an answer queued
 * behind a pipelined one, queuedAnswers.ts makes sure of it). A client that goes away takes the
 * upstream request down with it at once.
 */
export function openContext(req: IncomingMessage, res: ServerResponse, hooks: ContextHooks): RequestContext {
  const ctx = newContext(req);
  const id = ctx.id;
  tagResponse(res, id);
  hooks.onStart(ctx);
  res.once('close', () => {
    if (!res.writableFinished) ctx.abortUpstream?.();
    ctx.abortUpstream = undefined; // it holds undici's controller and the answer's raw headers
    hooks.onDone(ctx, res);
  });
  if (res.socket === null && req.socket) closeWithConnection(res, req.socket);
  return ctx;
}
