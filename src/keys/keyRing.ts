import type { KeyRecord, KeySource } from './types.js';

/** Asks each source in turn; the first that knows a digest answers. */
export class KeyRing {
  constructor(private readonly sources: KeySource[]) {}

  lookup(digest: string): KeyRecord | undefined {
    for (const source of this.sources) {
      const hit = source.lookup(digest);
      if (hit) return hit;
    }
    return undefined;
  }

  *list(): Iterable<KeyRecord> {
    for (const source of this.sources) yield* source.list();
  }

  async close(): Promise<void> {
    await Promise.all(this.sources.map((s) => s.close?.()));
  }
}
