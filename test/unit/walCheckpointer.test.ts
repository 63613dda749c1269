import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, fdatasync, fdatasyncSync, fstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SqliteUsageStore } from '../../src/storage/sqlite/sqliteUsageStore.js';
import type { FileSync } from '../../src/storage/sqlite/walCheckpointer.js';
import { usageRow } from './usageRow.js';

// Rows with a longer upstream id, so that the WAL fills as it does in a server.
const row = (id: string) => usageRow(id, { upstream_request_id: `up-${'x'.repeat(100)}` });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Waits until `check` holds (a slow disk's sync may take a while), or fails after `ms`. */
async function until(check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`still not so after ${ms} ms: ${check.toString()}`);
    await sleep(5);
  }
}
const dbFile = () => join(mkdtempSync(join(tmpdir(), 'kw-ckpt-')), 'usage.sqlite');
const count = (db: Database.Database) => (db.prepare('SELECT COUNT(*) AS n FROM usage').get() as { n: number }).n;
const internals = (store: SqliteUsageStore) => store as unknown as { db: Database.Database; checkpointer: { pin: Database.Database; notBefore: number } };

/** A sync that always fails, as a failing disk's would. */
const failing: FileSync = { later: (_fd, done) => setImmediate(() => done(new Error('EIO'))), now: () => {} };

/** The rows a fresh connection finds. */
function rowsIn(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return count(db);
  } finally {
    db.close();
  }
}

/** Closes the store and counts the rows a fresh connection finds. */
function rowsAfterClose(store: SqliteUsageStore, file: string): number {
  store.close();
  return rowsIn(file);
}

/** Rows in the database file alone, without its WAL (what a checkpoint has copied into it). */
function rowsInDatabaseFile(file: string): number {
  const copy = `${file}.copy-${Math.random()}`;
  copyFileSync(file, copy);
  const db = new Database(copy, { readonly: true });
  try {
    return db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'usage'").get() ? count(db) : 0;
  } finally {
    db.close();
  }
}

/**
 * Inserts `n` rows as a server under load does: a burst of rows, then a short wait in which the
 * store's own timer commits them (and a checkpoint may run).
 */
async function writeRows(store: SqliteUsageStore, n: number, burst = 80, prefix = 'r'): Promise<void> {
  for (let i = 0; i < n; i++) {
    store.insert(row(`${prefix}${i}`));
    if (i % burst === burst - 1) await sleep(2);
  }
  await sleep(20); // the last timer's commit
}

/** Syncs that wait for the test to let them finish, noting the file each was for. */
function heldSyncs() {
  const later: Array<{ fd: number; release: () => void; fail: () => void }> = [];
  const now: number[] = [];
  const sync: FileSync = {
    later: (fd, done) => later.push({ fd, release: () => fdatasync(fd, done), fail: () => done(Object.assign(new Error('EIO'), { code: 'EIO' })) }),
    now: (fd) => {
      now.push(fd);
      fdatasyncSync(fd);
    },
  };
  return { sync, later, now };
}
const sameFile = (fd: number, path: string) => fstatSync(fd).ino === statSync(path).ino;

/** A store with enough rows written for a checkpoint, which now waits on its first (the WAL's) sync. */
async function storeInCheckpoint(onCheckpointError?: (err: unknown, walKept: boolean) => void) {
  const file = dbFile();
  const syncs = heldSyncs();
  const store = new SqliteUsageStore(file, undefined, { fileSync: syncs.sync, onCheckpointError });
  await writeRows(store, 1_040);
  return { file, store, ...syncs };
}

describe('WAL checkpoints off the event loop', () => {
  it('leaves SQLite\'s automatic checkpoint only as a backstop, and synchronous NORMAL after a checkpoint', async () => {
    const { store, later } = await storeInCheckpoint();
    const { db } = internals(store);
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(2000);
    later[0]!.release();
    await until(() => later.length === 2); // the copy (with synchronous OFF) has run
    expect(db.pragma('synchronous', { simple: true })).toBe(1); // NORMAL again
    later[1]!.release();
    store.close();
  });

  it('keeps the WAL small under a steady stream of commits and copies the rows into the database file', async () => {
    const file = dbFile();
    // Syncs that take no time: on a disk slow to sync, SQLite's backstop bounds the WAL instead (below).
    const instant: FileSync = { later: (_fd, done) => setImmediate(() => done(null)), now: () => {} };
    const store = new SqliteUsageStore(file, undefined, { fileSync: instant });
    await writeRows(store, 20_000);
    // Without checkpoints the WAL would hold every commit's pages (~70 MB); the backstop alone, 8 MB.
    expect(statSync(`${file}-wal`).size).toBeLessThan(3 * 1024 * 1024); // so it was started over, again and again
    expect(rowsAfterClose(store, file)).toBe(20_000);
  });

  it('syncs the WAL, copies, syncs the database, then lets the WAL go; rows wait meanwhile', async () => {
    const { file, store, later } = await storeInCheckpoint();
    const { checkpointer } = internals(store);
    expect(later).toHaveLength(1);
    expect(sameFile(later[0]!.fd, `${file}-wal`)).toBe(true); // the WAL first
    expect(rowsInDatabaseFile(file)).toBe(0); // nothing copied before the WAL is on the disk
    expect(checkpointer.pin.inTransaction).toBe(true);

    later[0]!.release();
    await until(() => later.length === 2);
    expect(sameFile(later[1]!.fd, file)).toBe(true); // then the database
    const reader = new Database(file, { readonly: true });
    const committed = count(reader);
    // Copied whole before the database's sync (no commit came in between: the database file
    // alone is then the whole database; after a partial copy it need not be).
    expect(rowsInDatabaseFile(file)).toBe(committed);
    expect(checkpointer.pin.inTransaction).toBe(true); // still pinned until the database is on the disk
    store.insert(row('held'));
    await sleep(30);
    expect(count(reader)).toBe(committed); // held while the checkpoint runs (up to 100 ms)

    later[1]!.release();
    await until(() => !checkpointer.pin.inTransaction);
    await until(() => count(reader) === committed + 1); // the held row is written once it ends
    reader.close();
    store.close();
  });

  it('writes held rows anyway once they have waited 100 ms', async () => {
    const { file, store, later } = await storeInCheckpoint();
    const reader = new Database(file, { readonly: true });
    const committed = count(reader);
    store.insert(row('late'));
    await sleep(20);
    expect(count(reader)).toBe(committed);
    await until(() => count(reader) === committed + 1, 1_000);
    expect(later).toHaveLength(1); // the WAL's sync is still out
    later[0]!.release();
    await until(() => later.length === 2);
    later[1]!.release();
    reader.close();
    store.close();
  });

  it('another connection\'s open read does not make it spin, nor keep rows from the disk', async () => {
    // Its snapshot keeps a checkpoint from copying what came after it: that waits for the next one.
    const file = dbFile();
    let syncs = 0;
    const store = new SqliteUsageStore(file, undefined, { fileSync: { later: (fd, done) => (syncs++, fdatasync(fd, done)), now: fdatasyncSync } });
    await writeRows(store, 500);
    const other = new Database(file, { readonly: true });
    other.prepare('BEGIN').run();
    other.prepare('SELECT COUNT(*) FROM usage').get(); // holds its snapshot from here on
    const reader = new Database(file, { readonly: true });
    await writeRows(store, 3_000, 80, 'b'); // three checkpoints fall due, each blocked by the read
    await sleep(200);
    expect(syncs).toBeLessThanOrEqual(8); // two a checkpoint, not a loop of them
    expect(count(reader)).toBe(3_500); // and every row committed meanwhile
    other.prepare('COMMIT').run();
    other.close();
    reader.close();
    store.close();
  });

  it('with a disk slow to sync, the WAL stays bounded (SQLite\'s backstop at 2,000 pages)', async () => {
    const file = dbFile();
    const slow: FileSync = { later: (fd, done) => setTimeout(() => fdatasync(fd, done), 150), now: fdatasyncSync };
    const store = new SqliteUsageStore(file, undefined, { fileSync: slow });
    // ~4,000 rows a second for 4 s: rows wait at most 100 ms, less than a checkpoint takes here,
    // so commits keep landing past the pin.
    for (let i = 0; i < 400; i++) {
      for (let j = 0; j < 40; j++) store.insert(row(`s${i}-${j}`));
      await sleep(10);
    }
    expect(statSync(`${file}-wal`).size).toBeLessThan(10 * 1024 * 1024);
    expect(rowsAfterClose(store, file)).toBe(16_000);
  }, 20_000);

  it('commits made during a checkpoint (flush) are left for the next, which copies all and lets the WAL start over', async () => {
    const { file, store, later } = await storeInCheckpoint();
    for (let i = 0; i < 200; i++) store.insert(row(`f${i}`));
    store.flush(); // written now, past the pin
    later[0]!.release();
    await until(() => later.length === 2);
    later[1]!.release();
    await until(() => !internals(store).checkpointer.pin.inTransaction);
    await until(() => performance.now() > internals(store).checkpointer.notBefore); // the gap after a checkpoint
    await writeRows(store, 1_000, 80, 'n'); // the next checkpoint falls due
    await until(() => later.length === 3);
    later[2]!.release();
    await until(() => later.length === 4);
    later[3]!.release();
    await until(() => !internals(store).checkpointer.pin.inTransaction);
    await sleep(20); // the held rows' commit, the first after the checkpoint: it starts the WAL over
    const walBefore = statSync(`${file}-wal`).size;
    await writeRows(store, 10, 10, 'x');
    expect(statSync(`${file}-wal`).size).toBe(walBefore); // started over from the top, not appended
    expect(rowsAfterClose(store, file)).toBe(2_250);
  });

  it('a failing WAL sync turns SQLite\'s own checkpoint back on, reports once, and loses no row', async () => {
    const file = dbFile();
    const errors: boolean[] = [];
    const store = new SqliteUsageStore(file, undefined, { fileSync: failing, onCheckpointError: (_err, walKept) => errors.push(walKept) });
    await writeRows(store, 3_000);
    await until(() => errors.length > 0);
    expect(errors).toEqual([false]); // reported once, SQLite checkpointing again
    expect(internals(store).db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    expect(internals(store).db.pragma('synchronous', { simple: true })).toBe(1);
    expect(rowsAfterClose(store, file)).toBe(3_000);
  });

  it('after a failure, keeps its descriptors of the files open while SQLite\'s are: closing one would drop SQLite\'s locks', async () => {
    // Closing any descriptor of a file drops all of the process's POSIX locks on it, SQLite's own
    // included: sqlite3 (the CLI) would then think itself the last connection, checkpoint and
    // delete the WAL this store still writes to.
    const file = dbFile();
    const store = new SqliteUsageStore(file, undefined, { fileSync: failing });
    const descriptors = () => readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`) === file;
      } catch {
        return false;
      }
    }).length;
    const linux = existsSync('/proc/self/fd');
    const before = linux ? descriptors() : 0;
    await writeRows(store, 1_500);
    await sleep(30);
    if (linux) expect(descriptors()).toBe(before + 1); // its own, opened for the sync and still open
    const cli = spawnSync('sqlite3', [file, 'SELECT COUNT(*) FROM usage;'], { encoding: 'utf8' });
    if (!cli.error) {
      expect(cli.stdout.trim()).toBe('1500');
      expect(existsSync(`${file}-wal`)).toBe(true);
    }
    await writeRows(store, 500, 80, 'after');
    expect(rowsAfterClose(store, file)).toBe(2_000);
    if (linux) expect(descriptors()).toBe(0); // all closed with the store
  });

  it('a failing database sync keeps the WAL pinned, through the close, so its frames stay for recovery', async () => {
    const errors: boolean[] = [];
    const { file, store, later } = await storeInCheckpoint((_err, walKept) => errors.push(walKept));
    later[0]!.release();
    await until(() => later.length === 2);
    later[1]!.fail();
    await until(() => errors.length > 0);
    expect(errors).toEqual([true]); // reported as a WAL kept for recovery
    expect(internals(store).checkpointer.pin.inTransaction).toBe(true);
    const other = new Database(file);
    other.pragma('busy_timeout = 0');
    // The WAL cannot be started over (a TRUNCATE checkpoint needs every reader gone).
    expect((other.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number }>)[0]!.busy).toBe(1);
    other.close();
    store.close();
    expect(internals(store).checkpointer.pin.open).toBe(true); // kept until the process ends
    expect(existsSync(`${file}-wal`)).toBe(true); // not deleted by SQLite's close
    expect(rowsIn(file)).toBe(1_040);
  });

  it('syncs the files SQLite writes, through a symbolic link to the database', async () => {
    // SQLite resolves the link; a WAL named after the link would be another file (here a stray one).
    const dir = mkdtempSync(join(tmpdir(), 'kw-ckpt-link-'));
    const real = join(dir, 'data', 'usage.sqlite');
    mkdirSync(dirname(real));
    new SqliteUsageStore(real).close();
    const link = join(dir, 'usage.sqlite');
    symlinkSync(real, link);
    writeFileSync(`${link}-wal`, 'not a WAL');
    const { sync, later } = heldSyncs();
    const errors: unknown[] = [];
    const store = new SqliteUsageStore(link, undefined, { fileSync: sync, onCheckpointError: (err) => errors.push(err) });
    await writeRows(store, 1_040);
    expect(later).toHaveLength(1);
    expect(sameFile(later[0]!.fd, `${real}-wal`)).toBe(true);
    later[0]!.release();
    await until(() => later.length === 2);
    expect(sameFile(later[1]!.fd, real)).toBe(true);
    later[1]!.release();
    await until(() => !internals(store).checkpointer.pin.inTransaction);
    expect(errors).toEqual([]);
    expect(rowsAfterClose(store, link)).toBe(1_040);
  });

  it('closing while the WAL sync is out: no copy after, every row kept', async () => {
    const { file, store, later } = await storeInCheckpoint();
    store.insert(row('last'));
    expect(later).toHaveLength(1);
    store.close();
    later[0]!.release();
    await sleep(50);
    expect(later).toHaveLength(1);
    expect(rowsIn(file)).toBe(1_041);
  });

  it('closing while the database sync is out syncs the database first, then lets SQLite close', async () => {
    const { file, store, later, now } = await storeInCheckpoint();
    later[0]!.release();
    await until(() => later.length === 2); // copied; the database's sync is out
    store.close();
    expect(now).toHaveLength(1);
    expect(now[0]).toBe(later[1]!.fd); // the database file, synced before the pin went
    later[1]!.release();
    await sleep(20);
    expect(rowsIn(file)).toBe(1_040);
  });

  it('a database sync failing at close keeps the WAL for recovery, and says so', async () => {
    const errors: boolean[] = [];
    const { file, store, later } = await storeInCheckpoint((_err, walKept) => errors.push(walKept));
    later[0]!.release();
    await until(() => later.length === 2);
    const { checkpointer } = internals(store);
    (checkpointer as unknown as { sync: FileSync }).sync = { later: () => {}, now: () => { throw new Error('EIO'); } };
    store.close();
    expect(errors).toEqual([true]);
    expect(checkpointer.pin.inTransaction).toBe(true);
    expect(existsSync(`${file}-wal`)).toBe(true);
    expect(rowsIn(file)).toBe(1_040);
  });
});
