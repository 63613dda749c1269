import { readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from 'pino';
import { KeyFileError, parseKeyFile } from './keyFile.js';
import type { PolicyFields } from '../policy/schema.js';
import type { KeyRecord, KeySource } from './types.js';

/**
 * keys.json, hot-reloaded, including editors that write a temp file and rename it over keys.json
 * (a new inode) and a file deleted and created again. A file that fails to
 * parse or validate never replaces the last good set: everyone keeps working, the problem is logged.
 */
export class FileKeySource implements KeySource {
  readonly name = 'keys.json';
  private byDigest = new Map<string, KeyRecord>();
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private followUp: NodeJS.Timeout | undefined;
  /** The text last read, good or bad: the same text is neither applied nor reported twice. */
  private lastText: string | undefined;

  constructor(
    readonly path: string,
    private readonly log: Logger,
    private readonly defaults: PolicyFields = {},
  ) {
    this.path = resolve(path);
  }

  /**
   * Loads once; a missing file is an empty set (create the first key with `npm run create`). A file
   * that is there but unreadable or invalid throws KeyFileError: at start-up there is no last good set to keep,
   * and refusing to start names the problem more plainly than answering 401 to everyone.
   */
  load(): void {
    this.reload(true);
  }

  lookup(digest: string): KeyRecord | undefined {
    return this.byDigest.get(digest);
  }

  list(): Iterable<KeyRecord> {
    return this.byDigest.values();
  }

  get size(): number {
    return this.byDigest.size;
  }

  async watch(): Promise<void> {
    // Polled (one stat every 500 ms) rather than watched with inotify: while keys.json does not exist
    // chokidar watches its folder instead, and that folder usually holds usage.sqlite and access.log,
    // whose every write would wake the watcher (measured: several stat calls per request under load).
    // Polling also follows editors that write a new file and rename it over keys.json.
    this.watcher = watch(this.path, { ignoreInitial: true, usePolling: true, interval: 500 });
    this.watcher.on('all', () => this.schedule());
    this.watcher.on('error', (err) => this.log.error({ err }, 'keys file watcher failed'));
    await new Promise<void>((ok) => this.watcher!.once('ready', ok));
  }

  /**
   * Coalesces a burst of events (write + rename) into one read, then reads once more a little later:
   * chokidar drops a change that follows a rename within ~100 ms, and that write must not be lost.
   */
  private schedule(): void {
    clearTimeout(this.timer);
    clearTimeout(this.followUp);
    this.timer = setTimeout(() => this.reload(false), 30);
    this.followUp = setTimeout(() => this.reload(false), 300);
  }

  private reload(initial: boolean): void {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        if (initial) this.log.warn({ file: this.path }, 'no keys file yet: create a key with `npm run create -- <name> <email>`');
        else this.log.error({ file: this.path }, 'keys file was removed; keeping the last good keys');
      } else if (initial) {
        // Unreadable (permissions, a folder …): no key would work, so do not start answering 401s.
        throw new KeyFileError(`cannot read ${this.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      } else {
        this.log.error({ file: this.path, err: (err as Error).message }, 'cannot read keys file; keeping the last good keys');
      }
      return;
    }
    if (text === this.lastText) return;
    this.lastText = text;
    try {
      const records = parseKeyFile(text, basename(this.path), this.name, this.defaults);
      this.byDigest = new Map(records.map((r) => [r.digest, r]));
      this.log.info({ file: this.path, keys: records.length }, initial ? 'keys loaded' : 'keys reloaded');
    } catch (err) {
      if (initial) throw err;
      const message = err instanceof KeyFileError ? err.message : String(err);
      this.log.error({ problem: message, keptKeys: this.byDigest.size }, 'keys file rejected; keeping the last good keys');
    }
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    clearTimeout(this.followUp);
    await this.watcher?.close();
  }
}
