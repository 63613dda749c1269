import cors from 'cors';
import express from 'express';
import { createGateway } from './gateway.js';
import { elapsedMs } from './http/context.js';
import { sendError } from './http/errors.js';
import { newContext, openContext } from './http/requestContext.js';
import { createRealtimeUpgrade } from './proxy/realtime.js';
import { checkKey } from './auth/authenticate.js';
import { extractKey } from './auth/credentials.js';
import { settle } from './policy/authorize.js';
import { keyFromBasicAuth, statusPage } from './web/statusPage.js';
import { VERSION } from './version.js';
import { health } from './web/health.js';
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
 * The whole server's request handlers: /v1/ goes through the gateway (src/gateway.ts), WebSocket
 * upgrades through src/proxy/realtime.ts, everything else (health, the status page) is an Express
 * app. This file only wires the parts.
 */
export function createApp(parts) {
    const { config, meter, engine, accessLog, inFlight } = parts;
    /** Every request and session ends here: one usage row (if forwarded), one access-log line. */
    const finish = (ctx, complete, statusSent) => {
        inFlight.delete(ctx);
        const row = meter.record(ctx, complete);
        settle(engine, ctx, row);
        if (ctx.path !== '/health' && ctx.path !== '/')
            accessLog.write(ctx, row?.status ?? statusSent, elapsedMs(ctx), row);
    };
    const hooks = {
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
    const web = express();
    web.disable('x-powered-by');
    web.set('etag', false);
    web.use((req, res, next) => {
        openContext(req, res, hooks);
        next();
    });
    web.use(corsHandler);
    web.get('/health', health(startedAt, VERSION));
    web.get('/', statusPage({
        access: config.statusPage,
        isAuthorized: (req) => {
            const key = extractKey(req.headers) ?? keyFromBasicAuth(req.headers.authorization);
            return key !== undefined && checkKey(parts.keys, key).ok;
        },
        data: () => statusData(parts, startedAt),
    }));
    web.use((req, res) => {
        sendError(res, 404, `Invalid URL (${req.method} ${req.path}): Keyward serves the OpenAI API under /v1/.`, 'invalid_request_error', 'not_found');
    });
    const onError = (err, _req, res, _next) => {
        parts.log.error({ err }, 'request failed inside Keyward');
        sendError(res, 500, 'Keyward failed to handle this request.', 'server_error', 'internal_error');
    };
    web.use(onError);
    return {
        handle: (req, res) => {
            const url = req.url ?? '/';
            if (url.startsWith('/v1/') || url === '/v1' || url.startsWith('/v1?'))
                gateway(req, res);
            else
                web(req, res);
        },
        upgrade,
    };
}
/** What the status page shows: counts and masked keys only, never a secret. */
function statusData(parts, startedAt) {
    const now = Date.now();
    const keys = { active: 0, disabled: 0, expired: 0 };
    for (const k of parts.keys.list()) {
        if (k.disabled)
            keys.disabled++;
        else if (k.expiresAt !== undefined && k.expiresAt <= now)
            keys.expired++;
        else
            keys.active++;
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
//# sourceMappingURL=app.js.map