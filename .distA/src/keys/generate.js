import { randomBytes } from 'node:crypto';
/** Recognisable in logs and secret scanners; the rest is 32 random bytes (256 bits). */
export const KEY_PREFIX = 'sk-kw-';
export function generateKey() {
    return KEY_PREFIX + randomBytes(32).toString('base64url');
}
//# sourceMappingURL=generate.js.map