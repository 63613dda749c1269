import { readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { watch } from 'chokidar';
import { KeyFileError, parseKeyFile } from './keyFile.js';
/**
 * keys.json, hot-reloaded, including editors that write a temp file and rename it over keys.json
 * (a new inode) and a file deleted and created again. A file that fails to
 * parse or validate never replaces the last good set: everyone keeps working, the problem is logged.
 */
export class FileKeySource {
    path;
    log;
    defaults;
    name = 'keys.json';
    byDigest = new Map();
    watcher;
    timer;
    followUp;
    /** The text last read, good or bad: the same text is neither applied nor reported twice. */
    lastText;
    constructor(path, log, defaults = {}) {
        this.path = path;
        this.log = log;
        this.defaults = defaults;
        this.path = resolve(path);
    }
    /**
     * Loads once; a missing file is an empty set (create the first key with `npm run create`). A file
     * that is there but invalid throws KeyFileError: at start-up there is no last good set to keep,
     * and refusing to start names the problem more plainly than answering 401 to everyone.
     */
    load() {
        this.reload(true);
    }
    lookup(digest) {
        return this.byDigest.get(digest);
    }
    list() {
        return this.byDigest.values();
    }
    get size() {
        return this.byDigest.size;
    }
    async watch() {
        // Polled (one stat every 500 ms) rather than watched with inotify: while keys.json does not exist
        // chokidar watches its folder instead, and that folder usually holds usage.sqlite and access.log,
        // whose every write would wake the watcher (measured: several stat calls per request under load).
        // Polling also follows editors that write a new file and rename it over keys.json.
        this.watcher = watch(this.path, { ignoreInitial: true, usePolling: true, interval: 500 });
        this.watcher.on('all', () => this.schedule());
        this.watcher.on('error', (err) => this.log.error({ err }, 'keys file watcher failed'));
        await new Promise((ok) => this.watcher.once('ready', ok));
    }
    /**
     * Coalesces a burst of events (write + rename) into one read, then reads once more a little later:
     * chokidar drops a change that follows a rename within ~100 ms, and that write must not be lost.
     */
    schedule() {
        clearTimeout(this.timer);
        clearTimeout(this.followUp);
        this.timer = setTimeout(() => this.reload(false), 30);
        this.followUp = setTimeout(() => this.reload(false), 300);
    }
    reload(initial) {
        let text;
        try {
            text = readFileSync(this.path, 'utf8');
        }
        catch (err) {
            if (err.code === 'ENOENT') {
                if (initial)
                    this.log.warn({ file: this.path }, 'no keys file yet: create a key with `npm run create -- <name> <email>`');
                else
                    this.log.error({ file: this.path }, 'keys file was removed; keeping the last good keys');
            }
            else {
                this.log.error({ file: this.path, err: err.message }, 'cannot read keys file; keeping the last good keys');
            }
            return;
        }
        if (text === this.lastText)
            return;
        this.lastText = text;
        try {
            const records = parseKeyFile(text, basename(this.path), this.name, this.defaults);
            this.byDigest = new Map(records.map((r) => [r.digest, r]));
            this.log.info({ file: this.path, keys: records.length }, initial ? 'keys loaded' : 'keys reloaded');
        }
        catch (err) {
            if (initial)
                throw err;
            const message = err instanceof KeyFileError ? err.message : String(err);
            this.log.error({ problem: message, keptKeys: this.byDigest.size }, 'keys file rejected; keeping the last good keys');
        }
    }
    async close() {
        clearTimeout(this.timer);
        clearTimeout(this.followUp);
        await this.watcher?.close();
    }
}
//# sourceMappingURL=fileKeySource.js.map