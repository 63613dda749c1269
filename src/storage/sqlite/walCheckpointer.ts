import { closeSync, fdatasync, fdatasyncSync, openSync } from 'node:fs';
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
 * SQLite's own automatic checkpoint stays on as a backstop at this many WAL pages (8 MB), far above
 * what the WAL reaches between checkpoints here: should they fall behind (a disk that takes
 * seconds to sync, commits that could not wait), the WAL still cannot grow without bound.
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
 * them again, as after its own checkpoint. The store holds its commits while a checkpoint runs
 * (`busy`) so that the whole WAL reaches the database and the next commit starts it over; frames
 * committed anyway are copied by a checkpoint started at once after. If the database's sync fails
 * the pin is kept for good: those frames stay in the WAL for the next start to recover.
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
  /** Frames were committed past the pin during the last checkpoint: another one is due at once. */
  private behind = false;
  private stopped = false;
  private closed = false;

  constructor(
    private readonly db: Database.Database,
    private readonly file: string,
    /** Called when a checkpoint has ended (the store writes the rows it held). */
    private readonly onDone: () => void,
    /** Called once if checkpoints fail; SQLite's automatic checkpoint then runs at its default again. */
    private readonly onError: (err: unknown) => void,
    private readonly sync: FileSync = DISK,
  ) {
    this.pin = new Database(file, { readonly: true, fileMustExist: true });
    this.pin.pragma('cache_size = -64'); // it reads one page: the pin needs no cache
    this.begin = this.pin.prepare('BEGIN');
    this.read = this.pin.prepare('SELECT 1 FROM sqlite_master LIMIT 1');
    this.end = this.pin.prepare('COMMIT');
    db.pragma(`wal_autocheckpoint = ${BACKSTOP_PAGES}`);
  }

  /** True while a checkpoint runs: the store holds its commits until onDone. */
  get busy(): boolean {
    return this.phase !== 'idle';
  }

  /** How long the running checkpoint has taken so far, in ms (0 when none runs). */
  get busyMs(): number {
    return this.phase === 'idle' ? 0 : Date.now() - this.startedAt;
  }

  /** The store committed `rows` rows in one transaction; starts a checkpoint when one is due. */
  committed(rows: number): void {
    this.rows += rows;
    this.commits++;
    if (this.phase !== 'idle' || this.stopped || this.rows === 0) return;
    if (this.rows >= CHECKPOINT_ROWS || this.commits >= CHECKPOINT_COMMITS) this.start();
  }

  private start(): void {
    this.rows = 0;
    this.commits = 0;
    this.behind = false;
    this.phase = 'syncing-wal';
    this.startedAt = Date.now();
    try {
      this.begin.run();
      this.read.get();
      this.walFd ??= openSync(`${this.file}-wal`, 'r+');
      this.dbFd ??= openSync(this.file, 'r+');
    } catch (err) {
      return this.fail(err);
    }
    this.sync.later(this.walFd, (err) => (err ? this.fail(err) : this.copy()));
  }

  private copy(): void {
    if (this.stopped) return this.finish();
    try {
      this.db.pragma('synchronous = OFF');
      let result: { log: number; checkpointed: number } | undefined;
      try {
        result = (this.db.pragma('wal_checkpoint(PASSIVE)') as Array<{ log: number; checkpointed: number }>)[0];
      } finally {
        this.db.pragma('synchronous = NORMAL');
      }
      this.behind = result !== undefined && result.checkpointed < result.log;
    } catch (err) {
      return this.fail(err);
    }
    this.phase = 'syncing-db';
    this.sync.later(this.dbFd!, (err) => {
      if (!err) return this.finish();
      // The copied pages may not be on the disk, and the next commit would start the WAL over:
      // the pin stays, so those frames stay in the WAL for SQLite's recovery at the next start.
      this.fail(err, true);
    });
  }

  private finish(): void {
    this.unpin();
    this.phase = 'idle';
    if (this.closed) return this.closeFiles();
    if (this.stopped) return;
    if (this.behind) this.start();
    if (this.phase === 'idle') this.onDone();
  }

  private fail(err: unknown, keepPin = false): void {
    if (!keepPin) this.unpin();
    this.phase = 'idle';
    if (this.closed) return this.closeFiles();
    if (this.stopped) return;
    this.stopped = true;
    try {
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('wal_autocheckpoint = 1000');
    } catch {
      // The connection itself is broken: the store reports its failed writes.
    }
    try {
      this.onError(err);
    } catch {
      // A failing report must not undo the commit that started this checkpoint.
    }
    this.onDone();
  }

  private unpin(): void {
    try {
      if (this.pin.open && this.pin.inTransaction) this.end.run();
    } catch {
      // Only a broken connection fails to end a read; closing it releases the pin as well.
    }
  }

  /**
   * Stops checkpointing before the store closes (its close checkpoints the rest, with SQLite's own
   * fsyncs). Pages already copied are synced first: once the pin goes, SQLite may consider the WAL
   * done and delete it. Call closeFiles() once the store's connection is closed.
   */
  stop(): void {
    if (this.stopped && !this.pin.open) return;
    if (this.phase === 'syncing-db' && this.dbFd !== undefined) {
      try {
        this.sync.now(this.dbFd);
      } catch {
        this.stopped = true;
        return; // the pin stays until the process ends: the frames stay in the WAL
      }
    }
    this.stopped = true;
    this.unpin();
    if (this.pin.open) this.pin.close();
  }

  /** Closes the files, now or when a sync still running on the thread pool returns. */
  closeFiles(): void {
    this.closed = true;
    if (this.phase !== 'idle') return;
    for (const fd of [this.walFd, this.dbFd]) {
      if (fd === undefined) continue;
      try {
        closeSync(fd);
      } catch {
        // Nothing to do: the descriptor is gone either way.
      }
    }
    this.walFd = this.dbFd = undefined;
  }
}
