import { requestIdOf } from './context.js';
export function errorBody(message, type, code = null, param = null) {
    return { error: { message, type, param, code } };
}
/** Writes an OpenAI-shaped error unless the response has already started. */
export function sendError(res, status, message, type, code = null, param = null, headers = {}) {
    if (res.headersSent) {
        // Too late for a status: cut the response so the client sees an error, not a clean end.
        res.destroy();
        return;
    }
    const body = JSON.stringify(errorBody(message, type, code, param));
    const id = requestIdOf(res);
    res.writeHead(status, {
        ...(id ? { 'x-request-id': id, 'x-keyward-request-id': id } : {}),
        ...headers,
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(body),
    });
    res.end(body);
}
//# sourceMappingURL=errors.js.map