import { sendError } from '../http/errors.js';
import { AUTH_REQUIRED_HTML, statusHtml } from './statusHtml.js';
// A stale status page misleads, and a keyed one must not sit in a shared cache.
const COMMON_HEADERS = { 'cache-control': 'no-store', vary: 'Accept' };
// The page has no scripts and loads nothing: a policy that forbids both costs nothing and blunts any escaping slip.
const HTML_HEADERS = {
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
};
const BASIC_CHALLENGE = 'Basic realm="Keyward", charset="UTF-8"';
/** The password of `Authorization: Basic base64(user:password)`; the user part is ignored. */
export function keyFromBasicAuth(header) {
    const m = header ? /^Basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header) : null;
    if (!m)
        return undefined;
    const decoded = Buffer.from(m[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0)
        return undefined;
    const key = decoded.slice(colon + 1).trim();
    return key || undefined;
}
/**
 * `<origin>/v1` as this client reached the server, for SDK configuration. x-forwarded-proto wins so a
 * TLS-terminating proxy shows https; only http/https are believed, the first of a comma list.
 */
export function baseUrlOf(req) {
    const forwarded = req.get('x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase();
    const proto = forwarded === 'http' || forwarded === 'https' ? forwarded : req.protocol;
    return `${proto}://${req.get('host') ?? 'localhost'}/v1`;
}
/** Copies the declared fields one by one, so a stray property on what data() returns never reaches the client. */
export function statusJson(data, baseUrl, now) {
    const { keys, today } = data;
    return {
        version: data.version,
        uptime_s: Math.max(0, Math.round((now - data.startedAt) / 1000)),
        base_url: baseUrl,
        keys: { active: keys.active, disabled: keys.disabled, expired: keys.expired },
        upstream_keys: data.pool.map((k) => ({
            id: k.id,
            masked: k.masked,
            state: k.state,
            served: k.served,
            failures: k.failures,
            last_error: k.last_error,
            last_error_at: k.last_error_at,
            cool_until: k.cool_until,
        })),
        today: {
            requests: today.requests,
            input_tokens: today.input_tokens,
            output_tokens: today.output_tokens,
            total_tokens: today.total_tokens,
            cost_usd: today.cost_usd,
        },
    };
}
function wantsJson(req) {
    return req.query['format'] === 'json' || req.accepts(['html', 'json']) === 'json';
}
/** A browser gets the Basic challenge, so it shows a prompt; an API client gets OpenAI's 401. */
function isBrowser(req) {
    return /\btext\/html\b/i.test(req.get('accept') ?? '');
}
/** GET /: version, uptime, base URL, key counts, upstream pool and today's usage, as HTML or JSON. */
export function statusPage(opts) {
    const { access, data, isAuthorized } = opts;
    const now = opts.now ?? Date.now;
    // The value comes from configuration: a typo must not quietly make the page public.
    if (access !== 'public' && access !== 'keyed' && access !== 'off') {
        throw new Error(`statusPage: unknown access ${JSON.stringify(access)}`);
    }
    return (req, res) => {
        if (access === 'off') {
            // The same answer as any unknown path: an 'off' page is indistinguishable from none.
            sendError(res, 404, `Invalid URL (${req.method} ${req.path}): Keyward serves the OpenAI API under /v1/.`, 'invalid_request_error', 'not_found', null, { ...COMMON_HEADERS });
            return;
        }
        if (access === 'keyed' && !isAuthorized(req)) {
            if (isBrowser(req)) {
                res.status(401).set({ ...COMMON_HEADERS, ...HTML_HEADERS, 'www-authenticate': BASIC_CHALLENGE }).type('html').send(AUTH_REQUIRED_HTML);
            }
            else {
                sendError(res, 401, "The status page needs a valid Keyward key: send it as 'Authorization: Bearer <key>' or 'api-key: <key>'.", 'invalid_request_error', 'invalid_api_key', null, { ...COMMON_HEADERS });
            }
            return;
        }
        const status = data();
        const baseUrl = baseUrlOf(req);
        const t = now();
        res.set(COMMON_HEADERS);
        if (wantsJson(req))
            res.json(statusJson(status, baseUrl, t));
        else
            res.set(HTML_HEADERS).type('html').send(statusHtml(status, baseUrl, t));
    };
}
//# sourceMappingURL=statusPage.js.map