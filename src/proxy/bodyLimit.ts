import type { RequestHandler } from 'express';
import { sendError } from '../http/errors.js';

export function tooLarge(res: Parameters<RequestHandler>[1], maxBytes: number): void {
  sendError(
    res,
    413,
    `Request body too large: the limit is ${Math.round(maxBytes / 1024 / 1024)} MB.`,
    'invalid_request_error',
    'request_too_large',
  );
}

/** Refuses a body whose declared length is over the limit before reading a byte of it. */
export function bodyLimit(maxBytes: number): RequestHandler {
  return (req, res, next) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > maxBytes) {
      res.setHeader('connection', 'close'); // don't read the rest of a body we refuse
      return tooLarge(res, maxBytes);
    }
    next();
  };
}
