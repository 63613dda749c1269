/** Asks each source in turn; the first that knows a digest answers. */
export class KeyRing {
    sources;
    constructor(sources) {
        this.sources = sources;
    }
    lookup(digest) {
        for (const source of this.sources) {
            const hit = source.lookup(digest);
            if (hit)
                return hit;
        }
        return undefined;
    }
    *list() {
        for (const source of this.sources)
            yield* source.list();
    }
    async close() {
        await Promise.all(this.sources.map((s) => s.close?.()));
    }
}
//# sourceMappingURL=keyRing.js.map