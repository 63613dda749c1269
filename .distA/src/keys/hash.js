import { hash } from 'node:crypto';
/** Keys are looked up by their SHA-256, so a keys file may hold digests instead of keys. */
export function sha256Hex(key) {
    return hash('sha256', key, 'hex');
}
/** The public id of a key: a digest prefix, safe to log and store. */
export function keyIdOf(digest) {
    return digest.slice(0, 12);
}
/**
 * Digests of keys recently presented and found, so a busy key is hashed once, not on every request.
 * Only found keys are kept (a stream of made-up keys cannot crowd them out), and the map is bounded.
 */
export class DigestCache {
    limit;
    known = new Map();
    constructor(limit = 10_000) {
        this.limit = limit;
    }
    digest(key) {
        return this.known.get(key) ?? sha256Hex(key);
    }
    remember(key, digest) {
        if (this.known.size >= this.limit)
            this.known.clear();
        this.known.set(key, digest);
    }
}
//# sourceMappingURL=hash.js.map