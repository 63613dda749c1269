import { randomUUID } from 'node:crypto';
import { endpointOf } from '../usage/endpoint.js';
import { tagResponse } from './context.js';
/** The URL path without its query string. */
export function pathOf(url) {
    const u = url ?? '/';
    const q = u.indexOf('?');
    return q === -1 ? u : u.slice(0, q);
}
/**
 * Opens the request's context and closes it exactly once, on the response's 'close' (which Node
 * emits after a normal end, a client disconnect, or a destroyed socket alike). A client that goes
 * away takes the upstream request down with it at once.
 */
export function newContext(req) {
    const path = pathOf(req.url);
    return {
        id: randomUUID(),
        startedAt: Date.now(),
        t0: process.hrtime.bigint(),
        method: req.method ?? 'GET',
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
}
export function openContext(req, res, hooks) {
    const ctx = newContext(req);
    const id = ctx.id;
    tagResponse(res, id);
    hooks.onStart(ctx);
    res.once('close', () => {
        if (!res.writableFinished)
            ctx.abortUpstream?.();
        hooks.onDone(ctx, res);
    });
    return ctx;
}
//# sourceMappingURL=requestContext.js.map