import type { PolicyFields } from '../policy/schema.js';
import { resolvePolicy } from '../policy/policy.js';
import { keyIdOf, sha256Hex } from './hash.js';
import type { KeyRecord, KeySource } from './types.js';

/** PROXY_KEY: one key named "shared" for the simplest deployment, under config.json's defaults. */
export class SharedKeySource implements KeySource {
  readonly name = 'PROXY_KEY';
  private readonly record: KeyRecord;

  constructor(key: string, defaults: PolicyFields = {}) {
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

  lookup(digest: string): KeyRecord | undefined {
    return digest === this.record.digest ? this.record : undefined;
  }

  list(): Iterable<KeyRecord> {
    return [this.record];
  }
}
