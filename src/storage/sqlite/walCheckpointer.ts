import { closeSync, fdatasync, fdatasyncSync, openSync, realpathSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';

/** Flushes a file's data to the disk: off the event loop (libuv's thread pool), and at once (at close). */
export interface FileSync {
  later(fd: number, done: (err: Error | null) => void): void;
  now(fd: number): void;
}

const DISK: FileSync = { later: fdatasync, now: fdatasyncSync };

/**
 * A checkpoint is due after this many rows or this many commits, whichever comes first: ~200 WAL
 * frames under load (~5 rows a frame at ~80 rows a commit), whose copy into the database takes
 * ~0.5 ms on the event loop; at most ~1,000 frames when rows come one per commit.
 */
const CHECKPOINT_ROWS = 1_000;
const CHECKPOINT_COMMITS = 200;
/**
 * Between two checkpoints the WAL is left unpinned at least as long as the last one took (and
 * this long): a time in which SQLite may start the WAL over, or its backstop run.
 */
const MIN_GAP_MS = 50;
/**
 * SQLite's own automatic checkpoint stays on as a backstop at this many WAL pages (8 MB), far above
 * what the WAL reaches between checkpoints here. Should they fall behind (a disk that takes long to
 * sync, commits that could not wait), SQLite checkpoints inside a commit as it always did, and the
 * WAL cannot grow without bound.
 */
const BACKSTOP_PAGES = 2_000;

type Phase = 'idle' | 'syncing-wal' | 'syncing-db';

/**
 * Moves the WAL's pages into the database without waiting for the disk on the event loop.
 *
 * SQLite's own automatic checkpoint (every 1,000 WAL pages) runs inside the commit that crosses the
 * line and fsyncs the WAL and then the database there: 7 ms on a calm disk and up to 28 ms under
 * load (measured with strace), during which no stream chunk moves. Here the same steps run in the
 * same order, with the two fsyncs on libuv's thread pool:
 *
 * 1. pin: a read transaction on a connection of its own holds the WAL as it is now. Its read mark
 *    keeps the checkpoint from copying frames written after this point, and keeps SQLite from
 *    starting the WAL over (overwriting frames) until the pin is released;
 * 2. fdatasync the WAL: every frame the pin sees is on the disk;
 * 3. checkpoint (PASSIVE, synchronous=OFF for that statement alone): copies those frames into the
 *    database file, ~2.6 µs a frame, no fsync;
 * 4. fdatasync the database: the copied pages are on the disk;
 * 5. release the pin: the next commit may start the WAL over (its header is still fsynced on the
 *    event loop, as SQLite requires: ~0.3–3 ms, once per checkpoint).
 *
 * A power cut at any step leaves the frames in the WAL, on the disk, and SQLite's recovery copies
 * them again, as after its own checkpoint. The store holds its commits while a checkpoint runs (up
 * to 100 ms) so that the whole WAL reaches the database and the next commit starts it over; what
 * could not be copied (commits that did not wait, another process's open read) waits for the next
 * checkpoint. If syncing the WAL fails, SQLite's own checkpoint takes over. If syncing the
 * database fails, the copied pages may not be on the disk: the pin is then kept until the process
 * ends, so that SQLite can neither start the WAL over nor delete it, and the next start recovers
 * from it (the WAL grows until then).
 *
 * The files are opened once and closed only after every SQLite connection to them: closing any
 * descriptor of a file drops all of the process's POSIX locks on it, SQLite's included
 * (sqlite.org/howtocorrupt.html §2.2).
 */
export class WalCheckpointer {
  private readonly pin: Database.Database;
  private readonly begin: Database.Statement;
  private readonly read: Database.Statement;
  private readonly end: Database.Statement;
  private walFd: number | undefined;
  private dbFd: number | undefined;
  private rows = 0;
  private commits = 0;
  private phase: Phase = 'idle';
  private startedAt = 0;
  /** No checkpoint starts before this time (performance.now()): the gap after the last one. */
  private notBefore = 0;
  /** Set when the database's sync failed: the pin stays until the process ends. */
  private pinKept = false;
  private stopped = false;
  private reported = false;
  /** The database file as SQLite opened it: SQLite resolves symbolic links, and so must the syncs. */
  private readonly real: string;

  constructor(
    private readonly db: Database.Database,
    file: string,
    /** Called when a checkpoint has ended (the store writes the rows it held). */
    private readonly onDone: () => void,
    /**
     * Called once if a checkpoint fails (see the class comment): `walKept` when the database's sync
     * failed and the WAL is kept until the process ends, else SQLite checkpoints on its own again.
     */
    private readonly onError: (err: unknown, walKept: boolean) => void,
    private readonly sync: FileSync = DISK,
  ) {
    this.real = realpathSync(file);
    this.pin = new Database(file, { readonly: true, fileMustExist: true });
    try {
      this.pin.pragma('cache_size = -64'); // it reads one page: the pin needs no cache
      this.pin.pragma('busy_timeout = 0'); // a pin that cannot start skips that checkpoint, never blocks
      this.begin = this.pin.prepare('BEGIN');
      this.read = this.pin.prepare('SELECT 1 FROM sqlite_master LIMIT 1');
      this.end = this.pin.prepare('COMMIT');
      db.pragma(`wal_autocheckpoint = ${BACKSTOP_PAGES}`);
    } catch (err) {
      this.pin.close();
      throw err;
    }
  }

  /** True while a checkpoint runs: the store holds its commits until onDone. */
  get busy(): boolean {
    return this.phase !== 'idle';
  }

  /** The store committed `rows` rows in one transaction; starts a checkpoint when one is due. */
  committed(rows: number): void {
    this.rows += rows;
    this.commits++;
    if (this.phase !== 'idle' || this.stopped || this.rows === 0) return;
    if (this.rows < CHECKPOINT_ROWS && this.commits < CHECKPOINT_COMMITS) return;
    if (performance.now() < this.notBefore) return;
    this.start();
  }

  private start(): void {
    this.rows = 0;
    this.commits = 0;
    try {
      this.begin.run();
      this.read.get();
    } catch (err) {
      this.unpin();
      // Busy (a recovery in another process …): the next one will try again.
      if (String((err as { code?: string }).code).startsWith('SQLITE_BUSY')) return;
      return this.fail(err);
    }
    this.phase = 'syncing-wal';
    this.startedAt = performance.now();
    try {
      this.walFd ??= openSync(`${this.real}-wal`, 'r+');
      this.dbFd ??= openSync(this.real, 'r+');
      this.sync.later(this.walFd, (err) => (err ? this.fail(err) : this.copy()));
    } catch (err) {
      this.fail(err);
    }
  }

  private copy(): void {
    if (this.stopped) return this.finish();
    try {
      this.db.pragma('synchronous = OFF');
      this.db.pragma('wal_checkpoint(PASSIVE)');
    } catch (err) {
      // Nothing was marked copied: SQLite starts the WAL over only after a full checkpoint of its own.
      return this.fail(err); // which restores synchronous
    }
    // Copied: whatever else fails now, the database is synced before the pin may go.
    const restored = this.restoreSynchronous();
    this.phase = 'syncing-db';
    try {
      this.sync.later(this.dbFd!, (err) => {
        if (err) return this.fail(err, true);
        if (restored !== true) return this.fail(restored);
        this.finish();
      });
    } catch (err) {
      this.fail(err, true);
    }
  }

  /** The writer's synchronous back to NORMAL: true, or the error that kept it from it. */
  private restoreSynchronous(): true | unknown {
    try {
      this.db.pragma('synchronous = NORMAL');
      return true;
    } catch (err) {
      return err;
    }
  }

  private finish(): void {
    this.unpin();
    this.phase = 'idle';
    const now = performance.now();
    this.notBefore = now + Math.max(MIN_GAP_MS, now - this.startedAt);
    if (!this.stopped) this.done();
  }

  /** `keepPin`: the database's sync failed after the copy (see the class comment). */
  private fail(err: unknown, keepPin = false): void {
    if (keepPin) this.pinKept = true;
    else this.unpin();
    this.phase = 'idle';
    if (this.stopped) return;
    this.stopped = true;
    this.restoreSynchronous();
    try {
      // SQLite's own checkpoint takes over; with the pin kept it could copy nothing more.
      this.db.pragma(`wal_autocheckpoint = ${this.pinKept ? 0 : 1000}`);
    } catch {
      // The connection itself is broken: the store reports its failed writes.
    }
    this.report(err);
    this.done();
  }

  private report(err: unknown): void {
    if (this.reported) return;
    this.reported = true;
    try {
      this.onError(err, this.pinKept);
    } catch {
      // A failing report must not undo the commit that started this checkpoint.
    }
  }

  private done(): void {
    try {
      this.onDone();
    } catch {
      // The store reports its own failures; nothing may escape into libuv's callback.
    }
  }

  private unpin(): void {
    if (this.pinKept) return;
    try {
      if (this.pin.open && this.pin.inTransaction) this.end.run();
    } catch {
      // Only a broken connection fails to end a read; closing it releases the pin as well.
    }
  }

  /**
   * Stops checkpointing before the store closes (its close checkpoints the rest, with SQLite's own
   * fsyncs). Pages already copied are synced first: once the pin goes, SQLite may consider the WAL
   * done and delete it. A kept pin stays, and its connection open, until the process ends.
   */
  stop(): void {
    if (this.pinKept || !this.pin.open) return; // stopped already, its pin kept or released
    this.stopped = true;
    if (this.phase === 'syncing-db') {
      try {
        this.sync.now(this.dbFd!);
      } catch (err) {
        this.pinKept = true;
        this.report(err);
      }
    }
    if (this.pinKept) return;
    this.unpin();
    this.pin.close();
  }

  /**
   * Closes the files, once the store's connection is closed. Not while a sync is still out on the
   * thread pool, nor while the pin is kept (its connection is open): those stay open until the
   * process ends, and a kept WAL is synced once more.
   */
  closeFiles(): void {
    if (this.pinKept) {
      // Nothing checkpoints a kept WAL, nor syncs it: the rows written since the failure, the last
      // ones included, reach the disk now if the disk lets them.
      try {
        if (this.walFd !== undefined) this.sync.now(this.walFd);
      } catch {
        // Reported already; the WAL stays for recovery either way.
      }
      return;
    }
    if (this.phase !== 'idle') return;
    const fds = [this.walFd, this.dbFd];
    this.walFd = this.dbFd = undefined;
    for (const fd of fds) {
      if (fd === undefined) continue;
      try {
        closeSync(fd);
      } catch {
        // Nothing to do: the descriptor is gone either way.
      }
    }
  }
}
