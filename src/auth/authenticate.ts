import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestContext } from '../http/context.js';
import { sendError } from '../http/errors.js';
import { sha256Hex } from '../keys/hash.js';
import type { KeyRing } from '../keys/keyRing.js';
import { extractKey } from './credentials.js';

/**
 * Resolves the caller's proxy key to a principal, or answers 401 in OpenAI's shape with a code that
 * says why. Returns whether the request may go on. (The client's credentials never reach OpenAI:
 * the forwarder builds the upstream headers without them.)
 */
export function authenticate(
  ring: KeyRing,
  ctx: RequestContext,
  req: IncomingMessage,
  res: ServerResponse,
  now: number = Date.now(),
): boolean {
  const key = extractKey(req.headers);
  if (key === undefined) {
    sendError(
      res,
      401,
      "You didn't provide an API key. Send your Keyward key as 'Authorization: Bearer <key>' or 'api-key: <key>'.",
      'invalid_request_error',
      'missing_api_key',
    );
    return false;
  }
  const record = ring.lookup(sha256Hex(key));
  if (!record) {
    sendError(res, 401, 'Incorrect API key provided. Ask your Keyward operator for a key.', 'invalid_request_error', 'invalid_api_key');
    return false;
  }
  if (record.disabled) {
    sendError(res, 401, `The key of ${record.name} has been disabled.`, 'invalid_request_error', 'key_disabled');
    return false;
  }
  if (record.expiresAt !== undefined && record.expiresAt <= now) {
    const when = new Date(record.expiresAt).toISOString();
    sendError(res, 401, `The key of ${record.name} expired at ${when}.`, 'invalid_request_error', 'key_expired');
    return false;
  }
  ctx.principal = record;
  return true;
}
