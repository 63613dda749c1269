import { readFileSync } from 'node:fs';
/** The package version, read once (package.json sits two levels above dist/src/). */
export const VERSION = (() => {
    for (const rel of ['../package.json', '../../package.json']) {
        try {
            return JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')).version;
        }
        catch {
            // try the next layout
        }
    }
    return '0.0.0';
})();
//# sourceMappingURL=version.js.map