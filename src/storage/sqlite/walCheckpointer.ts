import { closeSync, fdatasync, openSync } from 'node:fs';
import Database from 'better-sqlite3';

/** Flushes a file's data to the disk off the event loop (libuv's thread pool). Replaceable in tests. */
export type SyncFile = (fd: number, done: (err: Error | null) => void) => void;

/**
 * A checkpoint is due after this many rows or this many commits, whichever comes first: ~200 WAL
 * frames under load (~5 rows a frame at ~80 rows a commit), whose copy into the database takes
 * ~0.5 ms on the event loop; at most ~1,000 frames when rows come one per commit.
 */
const CHECKPOINT_ROWS = 1_000;
const CHECKPOINT_COMMITS = 200;

/**
 * Moves the WAL's pages into the database without waiting for the disk on the event loop.
 *
 * SQLite's own automatic checkpoint (every 1,000 WAL pages) runs inside the commit that crosses the
 * line and fsyncs the WAL and then the database there: 7 ms on a calm disk and up to 28 ms under
 * load (measured with strace), during which no stream chunk moves. Here the same steps run in the
 * same order, with the two fsyncs on libuv's thread pool:
 *
 * 1. pin: a read transaction on a connection of its own holds the WAL as it is now. Its mark keeps
 *    the checkpoint from copying frames written after this point, and keeps SQLite from starting
 *    the WAL over (overwriting frames) until the pin is released;
 * 2. fdatasync the WAL: every frame the pin sees is on the disk;
 * 3. checkpoint (PASSIVE, synchronous=OFF for that statement alone): copies those frames into the
 *    database file, ~2.6 µs a frame, no fsync;
 * 4. fdatasync the database: the copied pages are on the disk;
 * 5. release the pin: the next commit may start the WAL over.
 *
 * A power cut at any step leaves the frames in the WAL, on the disk, and SQLite's recovery copies
 * them again, as with its own checkpoint. The store holds its commits while a checkpoint runs
 * (`busy`), so that the WAL is whole in the database when the pin goes and the next commit starts
 * it over; commits that come anyway (a full queue, another process) are simply left for the next
 * round. On any failure SQLite's automatic checkpoint is turned back on.
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
  private running = false;
  private stopped = false;

  constructor(
    private readonly db: Database.Database,
    private readonly file: string,
    /** Called when a checkpoint has ended (the store writes the rows it held). */
    private readonly onDone: () => void,
    /** Called once if checkpoints fail; SQLite's automatic checkpoint has then been turned back on. */
    private readonly onError: (err: unknown) => void,
    private readonly sync: SyncFile = fdatasync,
  ) {
    db.pragma('wal_autocheckpoint = 0');
    this.pin = new Database(file, { readonly: true, fileMustExist: true });
    this.pin.pragma('cache_size = -64'); // it reads one page: the pin needs no cache
    this.begin = this.pin.prepare('BEGIN');
    this.read = this.pin.prepare('SELECT 1 FROM sqlite_master LIMIT 1');
    this.end = this.pin.prepare('COMMIT');
  }

  /** True while a checkpoint runs: the store holds its commits until onDone. */
  get busy(): boolean {
    return this.running;
  }

  /** The store committed `rows` rows in one transaction; starts a checkpoint when one is due. */
  committed(rows: number): void {
    this.rows += rows;
    this.commits++;
    if (this.running || this.stopped || (this.rows < CHECKPOINT_ROWS && this.commits < CHECKPOINT_COMMITS)) return;
    this.rows = 0;
    this.commits = 0;
    this.running = true;
    try {
      this.begin.run();
      this.read.get();
      this.walFd ??= openSync(`${this.file}-wal`, 'r+');
      this.dbFd ??= openSync(this.file, 'r+');
    } catch (err) {
      return this.fail(err);
    }
    this.sync(this.walFd, (err) => (err ? this.fail(err) : this.copy()));
  }

  private copy(): void {
    if (this.stopped) return this.finish();
    try {
      this.db.pragma('synchronous = OFF');
      try {
        this.db.pragma('wal_checkpoint(PASSIVE)');
      } finally {
        this.db.pragma('synchronous = NORMAL');
      }
    } catch (err) {
      return this.fail(err);
    }
    this.sync(this.dbFd!, (err) => (err ? this.fail(err) : this.finish()));
  }

  private finish(): void {
    this.unpin();
    this.running = false;
    if (this.stopped) this.closeFiles();
    else this.onDone();
  }

  private fail(err: unknown): void {
    const first = !this.stopped;
    this.stopped = true;
    this.unpin();
    this.running = false;
    this.closeFiles();
    if (!first) return;
    try {
      if (this.db.open) this.db.pragma('wal_autocheckpoint = 1000');
    } catch {
      // The connection itself is broken: the store reports its failed writes.
    }
    this.onError(err);
    this.onDone();
  }

  private unpin(): void {
    try {
      if (this.pin.open && this.pin.inTransaction) this.end.run();
    } catch {
      // Only a broken connection fails to end a read; closing it releases the pin as well.
    }
  }

  /** Stops checkpointing (the store is closing; its close checkpoints the rest itself). */
  close(): void {
    this.stopped = true;
    this.unpin();
    if (this.pin.open) this.pin.close();
    // A sync still running on the thread pool closes the files when it comes back.
    if (!this.running) this.closeFiles();
  }

  private closeFiles(): void {
    for (const fd of [this.walFd, this.dbFd]) if (fd !== undefined) closeSync(fd);
    this.walFd = this.dbFd = undefined;
  }
}
