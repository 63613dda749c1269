import { copyFileSync, fdatasync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SqliteUsageStore } from '../../src/storage/sqlite/sqliteUsageStore.js';
import type { SyncFile } from '../../src/storage/sqlite/walCheckpointer.js';
import type { UsageRow } from '../../src/storage/usageStore.js';

const row = (id: string): UsageRow => ({
  ts: '2026-11-25T01:02:03.004Z', ts_ms: 1_795_568_523_004, request_id: id, key_id: 'key-id', key_name: 'Alice',
  key_email: 'alice@example.com', key_source: 'file', method: 'POST', path: '/v1/chat/completions',
  endpoint: 'chat.completions', model: 'gpt-4o-mini', status: 200, stream: false, input_tokens: 1,
  cached_input_tokens: null, output_tokens: 1, reasoning_tokens: null, total_tokens: 2, input_audio_tokens: null,
  output_audio_tokens: null, input_image_tokens: null, output_image_tokens: null, audio_seconds: null,
  input_characters: null, cost_nano_usd: 1, latency_ms: 1, ttfb_ms: null, upstream_request_id: `up-${'x'.repeat(100)}`,
  outcome: 'ok', error: null, bytes_in: 1, bytes_out: 1, upstream_key: null, retries: 0, reserved_nano_usd: null,
});

const tick = () => new Promise((r) => setImmediate(r));
const dbFile = () => join(mkdtempSync(join(tmpdir(), 'kw-ckpt-')), 'usage.sqlite');
const count = (db: Database.Database) => (db.prepare('SELECT COUNT(*) AS n FROM usage').get() as { n: number }).n;

/**
 * Inserts `n` rows as a server under load does: a burst of rows, then a short wait in which the
 * store's own timer commits them (and a checkpoint may run).
 */
async function writeRows(store: SqliteUsageStore, n: number, burst = 80): Promise<void> {
  for (let i = 0; i < n; i++) {
    store.insert(row(`r${i}`));
    if (i % burst === burst - 1) await new Promise((r) => setTimeout(r, 2));
  }
  await new Promise((r) => setTimeout(r, 20)); // the last timer's commit
}

/** A sync that waits for the test to let it finish, noting which file it was for. */
function heldSync() {
  const calls: Array<{ fd: number; release: () => void }> = [];
  const sync: SyncFile = (fd, done) => calls.push({ fd, release: () => fdatasync(fd, done) });
  return { sync, calls };
}

describe('WAL checkpoints off the event loop', () => {
  it('turns SQLite\'s automatic checkpoint off: no commit ever waits for the disk', () => {
    const store = new SqliteUsageStore(dbFile());
    const db = (store as unknown as { db: Database.Database }).db;
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
    expect(db.pragma('synchronous', { simple: true })).toBe(1); // NORMAL, restored after each checkpoint
    store.close();
  });

  it('keeps the WAL small under a steady stream of commits and copies the rows into the database file', async () => {
    const file = dbFile();
    const store = new SqliteUsageStore(file);
    await writeRows(store, 20_000);
    // Without checkpoints the WAL would hold every commit's pages: ~70 MB for these rows.
    expect(statSync(`${file}-wal`).size).toBeLessThan(4 * 1024 * 1024);
    // The database file alone (no WAL) already holds nearly all of them.
    const copy = `${file}.copy`;
    copyFileSync(file, copy);
    const alone = new Database(copy, { readonly: true });
    expect(count(alone)).toBeGreaterThan(18_000);
    alone.close();
    store.close();
    const reopened = new Database(file, { readonly: true });
    expect(count(reopened)).toBe(20_000);
    reopened.close();
  });

  it('syncs the WAL before copying and the database after, and holds the WAL until then', async () => {
    const file = dbFile();
    const { sync, calls } = heldSync();
    const store = new SqliteUsageStore(file, undefined, { syncFile: sync });
    const other = new Database(file);
    other.pragma('busy_timeout = 0');
    const walFrames = () => (other.pragma('wal_checkpoint(PASSIVE)') as Array<{ log: number; checkpointed: number }>)[0]!;
    // A checkpoint from another connection while ours is pinned cannot start the WAL over.
    const truncateBusy = () => (other.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number }>)[0]!.busy;

    await writeRows(store, 1_040);
    expect(calls).toHaveLength(1); // the WAL's sync, waiting
    const reader = new Database(file, { readonly: true });
    const before = count(reader);
    // Rows that come during the checkpoint wait in memory (flush() would force them).
    store.insert(row('held'));
    await new Promise((r) => setTimeout(r, 30));
    expect(count(reader)).toBe(before);
    expect(truncateBusy()).toBe(1);

    calls[0]!.release();
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toHaveLength(2); // the copy ran; now the database's sync waits
    expect(truncateBusy()).toBe(1); // still pinned: the copied pages are not on the disk yet
    expect(walFrames().checkpointed).toBe(walFrames().log); // and every frame was copied

    calls[1]!.release();
    await new Promise((r) => setTimeout(r, 50));
    expect(count(reader)).toBe(before + 1); // the held row is written once the checkpoint ends
    expect(truncateBusy()).toBe(0); // the pin is gone
    expect(new Set(calls.map((c) => c.fd)).size).toBe(2); // two files: the WAL, then the database
    reader.close();
    other.close();
    store.close();
  });

  it('a failing sync turns SQLite\'s own checkpoint back on, reports once, and loses no row', async () => {
    const file = dbFile();
    const errors: unknown[] = [];
    const failing: SyncFile = (_fd, done) => setImmediate(() => done(Object.assign(new Error('EIO: i/o error'), { code: 'EIO' })));
    const store = new SqliteUsageStore(file, undefined, { syncFile: failing, onCheckpointError: (err) => errors.push(err) });
    await writeRows(store, 3_000);
    await new Promise((r) => setTimeout(r, 30));
    expect(errors).toHaveLength(1);
    const db = (store as unknown as { db: Database.Database }).db;
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    store.close();
    const reopened = new Database(file, { readonly: true });
    expect(count(reopened)).toBe(3_000);
    reopened.close();
  });

  it('closing while a sync is still out writes every row and does not fail when the sync returns', async () => {
    const file = dbFile();
    const { sync, calls } = heldSync();
    const store = new SqliteUsageStore(file, undefined, { syncFile: sync });
    await writeRows(store, 1_040);
    store.insert(row('last'));
    expect(calls).toHaveLength(1);
    store.close();
    calls[0]!.release();
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toHaveLength(1); // no copy after the close
    const reopened = new Database(file, { readonly: true });
    expect(count(reopened)).toBe(1_041);
    reopened.close();
  });
});
