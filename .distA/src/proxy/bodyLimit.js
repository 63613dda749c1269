import { sendError } from '../http/errors.js';
export function tooLarge(res, maxBytes) {
    sendError(res, 413, `Request body too large: the limit is ${Math.round(maxBytes / 1024 / 1024)} MB.`, 'invalid_request_error', 'request_too_large');
}
/** Refuses a body whose declared length is over the limit before reading a byte of it. */
export function withinDeclaredLimit(req, res, maxBytes) {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared <= maxBytes)
        return true;
    // Read and discard the body, so the client, still sending, gets the 413 rather than a reset
    // connection. A body declared far beyond the limit is not worth reading: close instead.
    if (declared > 4 * maxBytes)
        res.setHeader('connection', 'close');
    else
        req.resume();
    tooLarge(res, maxBytes);
    return false;
}
//# sourceMappingURL=bodyLimit.js.map