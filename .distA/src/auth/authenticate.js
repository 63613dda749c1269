import { sendError } from '../http/errors.js';
import { DigestCache } from '../keys/hash.js';
import { extractKey } from './credentials.js';
const digests = new DigestCache();
/** Whether a presented key is known, enabled and unexpired: the one rule for every door. */
export function checkKey(ring, key, now = Date.now()) {
    const digest = digests.digest(key);
    const record = ring.lookup(digest);
    if (record)
        digests.remember(key, digest);
    if (!record)
        return { ok: false, code: 'invalid_api_key', message: 'Incorrect API key provided. Ask your Keyward operator for a key.' };
    if (record.disabled)
        return { ok: false, code: 'key_disabled', message: `The key of ${record.name} has been disabled.` };
    if (record.expiresAt !== undefined && record.expiresAt <= now) {
        return { ok: false, code: 'key_expired', message: `The key of ${record.name} expired at ${new Date(record.expiresAt).toISOString()}.` };
    }
    return { ok: true, record };
}
/**
 * Resolves the caller's proxy key to a principal, or answers 401 in OpenAI's shape with a code that
 * says why. Returns whether the request may go on. (The client's credentials never reach OpenAI:
 * the forwarder builds the upstream headers without them.)
 */
export function authenticate(ring, ctx, req, res) {
    const key = extractKey(req.headers);
    if (key === undefined) {
        sendError(res, 401, "You didn't provide an API key. Send your Keyward key as 'Authorization: Bearer <key>' or 'api-key: <key>'.", 'invalid_request_error', 'missing_api_key');
        return false;
    }
    const check = checkKey(ring, key);
    if (!check.ok) {
        sendError(res, 401, check.message, 'invalid_request_error', check.code);
        return false;
    }
    ctx.principal = check.record;
    return true;
}
//# sourceMappingURL=authenticate.js.map