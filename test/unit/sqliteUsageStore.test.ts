import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SqliteUsageStore } from '../../src/storage/sqlite/sqliteUsageStore.js';
import { MIGRATIONS } from '../../src/storage/sqlite/migrations.js';
import type { UsageRow } from '../../src/storage/usageStore.js';
import { usageRow } from './usageRow.js';

describe('SqliteUsageStore', () => {
  it('writes every field of a row to its own column (the spelled-out value order matches the columns)', () => {
    // Every field a different value, so a value written to a neighbour's column shows.
    const row: UsageRow = {
      ts: '2026-11-25T01:02:03.004Z', ts_ms: 1_795_568_523_004, request_id: 'req-1', key_id: 'key-id', key_name: 'Alice',
      key_email: 'alice@example.com', key_source: 'file', method: 'POST', path: '/v1/chat/completions',
      endpoint: 'chat.completions', model: 'gpt-4o-mini', status: 201, stream: true, input_tokens: 11,
      cached_input_tokens: 12, output_tokens: 13, reasoning_tokens: 14, total_tokens: 15, input_audio_tokens: 16,
      output_audio_tokens: 17, input_image_tokens: 18, output_image_tokens: 19, audio_seconds: 20.5,
      input_characters: 21, cost_nano_usd: 22, latency_ms: 23.5, ttfb_ms: 24.5, upstream_request_id: 'req_up',
      outcome: 'stream_broken', error: 'boom', bytes_in: 25, bytes_out: 26, upstream_key: 'main', retries: 27,
      reserved_nano_usd: 28, cache_write_tokens: 29,
    };
    const store = new SqliteUsageStore(':memory:');
    store.insert(row);
    store.flush();
    const [stored] = store.rows();
    const { stream, ...rest } = row;
    expect(stored).toMatchObject({ ...rest, stream: 1 });
    store.close();
  });

  it('a database of the previous release gets the new column on open; its rows stay as they were', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'keyward-migrate-')), 'usage.sqlite');
    const old = new Database(file);
    for (const [i, sql] of MIGRATIONS.slice(0, 3).entries()) {
      old.exec(sql);
      old.pragma(`user_version = ${i + 1}`);
    }
    old.prepare("INSERT INTO usage (ts, ts_ms, request_id, key_id, key_name, key_email, key_source, method, path, endpoint, stream, latency_ms, outcome, bytes_in, bytes_out, input_tokens) VALUES ('t', 1, 'old', 'k', 'n', 'e@x', 'f', 'POST', '/v1/x', 'other', 0, 1, 'ok', 1, 1, 7)").run();
    old.close();
    const store = new SqliteUsageStore(file);
    store.insert(usageRow('new', { cache_write_tokens: 6 }));
    store.flush();
    expect(store.rows().map((r) => [r.request_id, r.input_tokens, r.cache_write_tokens])).toEqual([['old', 7, null], ['new', 1, 6]]);
    store.close();
  });

  it('keeps SQLite\'s 2 MB page cache, not better-sqlite3\'s 16 MB (it filled and stayed as RSS under load)', () => {
    const store = new SqliteUsageStore(':memory:');
    const db = (store as unknown as { db: { pragma(sql: string, o: { simple: true }): unknown } }).db;
    expect(db.pragma('cache_size', { simple: true })).toBe(-2000);
    store.close();
  });

  const row = usageRow;

  it('commits rows within moments on its own, for other processes (the usage CLI) to read', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'kw-store-')), 'usage.sqlite');
    const store = new SqliteUsageStore(file);
    for (let i = 0; i < 3; i++) store.insert(row(`r${i}`));
    const reader = new Database(file, { readonly: true });
    const count = () => (reader.prepare('SELECT COUNT(*) AS n FROM usage').get() as { n: number }).n;
    const deadline = Date.now() + 2000;
    while (count() < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(count()).toBe(3);
    // And again, after the first batch was committed: a new transaction, committed the same way.
    store.insert(row('r3'));
    while (count() < 4 && Date.now() < deadline + 2000) await new Promise((r) => setTimeout(r, 20));
    expect(count()).toBe(4);
    reader.close();
    store.close();
  });

  it('a row SQLite refuses is reported and lost alone: the rest of its batch is kept', () => {
    const errors: Array<[string, number]> = [];
    const store = new SqliteUsageStore(':memory:', (err, rows) => errors.push([(err as { code?: string }).code ?? '', rows]));
    store.insert(row('a'));
    store.insert(row('bad', { key_id: null as unknown as string })); // NOT NULL
    store.insert(row('c'));
    store.flush();
    expect(errors).toEqual([['SQLITE_CONSTRAINT_NOTNULL', 1]]);
    expect(store.rows().map((r) => r.request_id)).toEqual(['a', 'c']);
    store.close();
  });

  it('leaves SQLite\'s write lock free between batches: another writer (sqlite3 maintenance) gets in while rows keep coming', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'kw-store-')), 'usage.sqlite');
    const store = new SqliteUsageStore(file);
    const other = new Database(file);
    other.pragma('busy_timeout = 1000');
    for (let i = 0; i < 30; i++) {
      store.insert(row(`r${i}`));
      await new Promise((r) => setTimeout(r, 2));
      if (i % 10 === 9) {
        // A lock held by this process's own store could never be released while this write waits.
        expect(() => other.prepare("DELETE FROM usage WHERE request_id = 'none'").run()).not.toThrow();
      }
    }
    store.close();
    expect((other.prepare('SELECT COUNT(*) AS n FROM usage').get() as { n: number }).n).toBe(30);
    other.close();
  });
});
