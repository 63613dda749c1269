/**
 * Where a client path goes upstream. OPENAI_BASE_URL may carry a prefix, with or without the
 * trailing /v1 that SDK base URLs have: https://api.openai.com, https://api.openai.com/v1 and
 * https://gw.example.com/openai/v1 all work. `rest` is the path after /v1, with its query string.
 */
export function upstreamPath(base, rest) {
    const prefix = base.pathname.replace(/\/+$/, '');
    return prefix.endsWith('/v1') ? prefix + rest : `${prefix}/v1${rest}`;
}
//# sourceMappingURL=upstreamPath.js.map