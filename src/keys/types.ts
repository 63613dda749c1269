import type { Policy } from '../policy/policy.js';

/** One proxy key as every key source presents it, whatever it was read from. */
export interface KeyRecord {
  /** Digest prefix: the id stored in usage rows and logs. */
  id: string;
  /** SHA-256 of the key, hex. */
  digest: string;
  name: string;
  email: string;
  disabled: boolean;
  /** Epoch ms, or undefined for no expiry. */
  expiresAt: number | undefined;
  /** Which source issued it ("keys.json", "PROXY_KEY", later "portal", "token" …). */
  source: string;
  /** What it may do: its own fields over config.json's defaults. */
  policy: Policy;
}

/**
 * A place keys come from. keys.json is one; temporary portal keys and signed tokens plug in beside
 * it. Lookups are synchronous and by digest: they sit on every request's path.
 */
export interface KeySource {
  readonly name: string;
  lookup(digest: string): KeyRecord | undefined;
  /** Every key the source knows now (for status and reports). */
  list(): Iterable<KeyRecord>;
  close?(): Promise<void>;
}
