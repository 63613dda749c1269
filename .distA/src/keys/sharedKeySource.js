import { resolvePolicy } from '../policy/policy.js';
import { keyIdOf, sha256Hex } from './hash.js';
/** PROXY_KEY: one key named "shared" for the simplest deployment, under config.json's defaults. */
export class SharedKeySource {
    name = 'PROXY_KEY';
    record;
    constructor(key, defaults = {}) {
        const digest = sha256Hex(key);
        this.record = {
            id: keyIdOf(digest),
            digest,
            name: 'shared',
            email: 'shared',
            disabled: false,
            expiresAt: undefined,
            source: this.name,
            policy: resolvePolicy(defaults),
        };
    }
    lookup(digest) {
        return digest === this.record.digest ? this.record : undefined;
    }
    list() {
        return [this.record];
    }
}
//# sourceMappingURL=sharedKeySource.js.map