import type { UsageRow } from '../../src/storage/usageStore.js';

/** A plain answered chat row for storage tests; `over` changes any field. */
export const usageRow = (id: string, over: Partial<UsageRow> = {}): UsageRow => ({
  ts: '2026-11-25T01:02:03.004Z', ts_ms: 1_795_568_523_004, request_id: id, key_id: 'key-id', key_name: 'Alice',
  key_email: 'alice@example.com', key_source: 'file', method: 'POST', path: '/v1/chat/completions',
  endpoint: 'chat.completions', model: 'gpt-4o-mini', status: 200, stream: false, input_tokens: 1,
  cached_input_tokens: null, cache_write_tokens: null, output_tokens: 1, reasoning_tokens: null, total_tokens: 2, input_audio_tokens: null,
  output_audio_tokens: null, input_image_tokens: null, output_image_tokens: null, audio_seconds: null,
  input_characters: null, cost_nano_usd: 1, latency_ms: 1, ttfb_ms: null, upstream_request_id: null,
  outcome: 'ok', error: null, bytes_in: 1, bytes_out: 1, upstream_key: null, retries: 0, reserved_nano_usd: null,
  ...over,
});
