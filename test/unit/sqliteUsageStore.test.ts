import { describe, expect, it } from 'vitest';
import { SqliteUsageStore } from '../../src/storage/sqlite/sqliteUsageStore.js';
import type { UsageRow } from '../../src/storage/usageStore.js';

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
      reserved_nano_usd: 28,
    };
    const store = new SqliteUsageStore(':memory:');
    store.insert(row);
    store.flush();
    const [stored] = store.rows();
    const { stream, ...rest } = row;
    expect(stored).toMatchObject({ ...rest, stream: 1 });
    store.close();
  });

  it('keeps SQLite\'s 2 MB page cache, not better-sqlite3\'s 16 MB (it filled and stayed as RSS under load)', () => {
    const store = new SqliteUsageStore(':memory:');
    const db = (store as unknown as { db: { pragma(sql: string, o: { simple: true }): unknown } }).db;
    expect(db.pragma('cache_size', { simple: true })).toBe(-2000);
    store.close();
  });
});
