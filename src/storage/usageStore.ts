import type { Outcome } from '../http/context.js';
import type { UsageCounts } from '../usage/types.js';

/** One proxied request, as stored. Money in integer nano-dollars (USD × 1e9). */
export interface UsageRow extends UsageCounts {
  ts: string;
  ts_ms: number;
  request_id: string;
  key_id: string;
  key_name: string;
  key_email: string;
  key_source: string;
  method: string;
  path: string;
  endpoint: string;
  model: string | null;
  status: number | null;
  stream: boolean;
  cost_nano_usd: number | null;
  latency_ms: number;
  ttfb_ms: number | null;
  upstream_request_id: string | null;
  outcome: Outcome;
  error: string | null;
  bytes_in: number;
  bytes_out: number;
  /** The pool key that served it: its label or `key_` + digest prefix, never the key. */
  upstream_key: string | null;
  retries: number;
  /** The budget reservation it held (charged when the cost stays unknown). */
  reserved_nano_usd: number | null;
}

export interface UsageFilter {
  email?: string;
  /** Inclusive, epoch ms. */
  sinceMs?: number;
  /** Exclusive, epoch ms. */
  untilMs?: number;
}

export interface UserTotals {
  email: string;
  name: string;
  requests: number;
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  cost_usd: number;
}

export interface GroupTotals {
  group: string;
  requests: number;
  input_tokens: number;
  cached_input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  cost_usd: number;
  unpriced_requests: number;
}

/** Where usage rows go. SQLite is the default; PostgreSQL plugs in behind the same interface. */
export interface UsageStore {
  /** Must not throw on the request path; rows are durable after flush(). */
  insert(row: UsageRow): void;
  flush(): void;
  totalsByUser(filter: UsageFilter): UserTotals[];
  totalsBy(dimension: 'model' | 'day', filter: UsageFilter): GroupTotals[];
  /** Spend per key id in nano-dollars: since dayStartMs, since monthStartMs, and in all. */
  spendByKey(dayStartMs: number, monthStartMs: number): Array<[string, { day: number; month: number; total: number }]>;
  /** Requests, tokens and cost since a time (the status page's "today"). */
  totalsSince(sinceMs: number): { requests: number; input_tokens: number; output_tokens: number; total_tokens: number; cost_usd: number };
  close(): void;
}
