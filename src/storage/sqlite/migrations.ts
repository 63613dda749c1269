/** Schema steps; PRAGMA user_version records how many have run. Append, never edit. */
export const MIGRATIONS: string[] = [
  `CREATE TABLE usage (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_name TEXT NOT NULL,
    key_email TEXT NOT NULL,
    key_source TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    model TEXT,
    status INTEGER,
    stream INTEGER NOT NULL,
    input_tokens INTEGER,
    cached_input_tokens INTEGER,
    output_tokens INTEGER,
    reasoning_tokens INTEGER,
    total_tokens INTEGER,
    input_audio_tokens INTEGER,
    output_audio_tokens INTEGER,
    input_image_tokens INTEGER,
    output_image_tokens INTEGER,
    audio_seconds REAL,
    input_characters INTEGER,
    cost_nano_usd INTEGER,
    cost_usd REAL GENERATED ALWAYS AS (cost_nano_usd / 1e9) VIRTUAL,
    latency_ms REAL NOT NULL,
    ttfb_ms REAL,
    upstream_request_id TEXT,
    outcome TEXT NOT NULL,
    error TEXT,
    bytes_in INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL
  );
  CREATE INDEX usage_email_ts ON usage (key_email, ts_ms);
  CREATE INDEX usage_ts ON usage (ts_ms);`,
  // Which upstream key of the pool served the request (label or digest prefix), and how often it
  // was sent again on another key.
  `ALTER TABLE usage ADD COLUMN upstream_key TEXT;
  ALTER TABLE usage ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;`,
  // What the request reserved against its key's budget: charged instead of the cost when an
  // answered request's cost stays unknown, so budgets rebuilt from this table after a restart agree.
  `ALTER TABLE usage ADD COLUMN reserved_nano_usd INTEGER;`,
  // Input tokens written to the prompt cache (part of input_tokens): some models price them apart.
  `ALTER TABLE usage ADD COLUMN cache_write_tokens INTEGER;`,
];
