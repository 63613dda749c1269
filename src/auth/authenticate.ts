import type { RequestHandler } from 'express';
import { sendError } from '../http/errors.js';
import { ctxOf } from '../http/context.js';
import { sha256Hex } from '../keys/hash.js';
import type { KeyRing } from '../keys/keyRing.js';
import { extractKey, stripClientCredentials } from './credentials.js';

/**
 * Resolves the caller's proxy key to a principal, or answers 401 in OpenAI's shape with a code that
 * says why. On success the client's credentials are removed so nothing of theirs reaches OpenAI.
 */
export function authenticate(ring: KeyRing, now: () => number = Date.now): RequestHandler {
  return (req, res, next) => {
    const key = extractKey(req.headers);
    if (key === undefined) {
      return sendError(
        res,
        401,
        "You didn't provide an API key. Send your Keyward key as 'Authorization: Bearer <key>' or 'api-key: <key>'.",
        'invalid_request_error',
        'missing_api_key',
      );
    }
    const record = ring.lookup(sha256Hex(key));
    if (!record) {
      return sendError(res, 401, 'Incorrect API key provided. Ask your Keyward operator for a key.', 'invalid_request_error', 'invalid_api_key');
    }
    if (record.disabled) {
      return sendError(res, 401, `The key of ${record.name} has been disabled.`, 'invalid_request_error', 'key_disabled');
    }
    if (record.expiresAt !== undefined && record.expiresAt <= now()) {
      return sendError(
        res,
        401,
        `The key of ${record.name} expired at ${new Date(record.expiresAt).toISOString()}.`,
        'invalid_request_error',
        'key_expired',
      );
    }
    ctxOf(res).principal = record;
    stripClientCredentials(req.headers);
    next();
  };
}
