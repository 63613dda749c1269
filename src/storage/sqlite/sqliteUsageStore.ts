import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import type { GroupTotals, UsageFilter, UsageRow, UsageStore, UserTotals } from '../usageStore.js';
import { MIGRATIONS } from './migrations.js';
import { WalCheckpointer, type FileSync } from './walCheckpointer.js';

const COLUMNS = [
  'ts', 'ts_ms', 'request_id', 'key_id', 'key_name', 'key_email', 'key_source', 'method', 'path',
  'endpoint', 'model', 'status', 'stream', 'input_tokens', 'cached_input_tokens', 'output_tokens',
  'reasoning_tokens', 'total_tokens', 'input_audio_tokens', 'output_audio_tokens', 'input_image_tokens',
  'output_image_tokens', 'audio_seconds', 'input_characters', 'cost_nano_usd', 'latency_ms', 'ttfb_ms',
  'upstream_request_id', 'outcome', 'error', 'bytes_in', 'bytes_out', 'upstream_key', 'retries',
  'reserved_nano_usd', 'cache_write_tokens',
] as const;

/**
 * Writes one row, its values in COLUMNS order, spelled out and passed as arguments rather than in
 * an array: better-sqlite3 reads an array's elements one V8 lookup each (counted with callgrind:
 * ~10,000 CPU instructions a row more, a sixth of the row's cost), and named parameters cost more still.
 * test/unit/sqliteUsageStore.test.ts checks the order.
 */
function insertRow(stmt: Database.Statement, r: UsageRow): void {
  stmt.run(
    r.ts, r.ts_ms, r.request_id, r.key_id, r.key_name, r.key_email, r.key_source, r.method, r.path,
    r.endpoint, r.model, r.status, r.stream ? 1 : 0, r.input_tokens, r.cached_input_tokens,
    r.output_tokens, r.reasoning_tokens, r.total_tokens, r.input_audio_tokens, r.output_audio_tokens,
    r.input_image_tokens, r.output_image_tokens, r.audio_seconds, r.input_characters,
    r.cost_nano_usd, r.latency_ms, r.ttfb_ms, r.upstream_request_id, r.outcome, r.error, r.bytes_in,
    r.bytes_out, r.upstream_key, r.retries, r.reserved_nano_usd, r.cache_write_tokens,
  );
}

/** What a row counts against its key's budget: its cost, or for an answered request of unknown cost its reservation (as settle() charges it). */
const CHARGED = 'COALESCE(cost_nano_usd, CASE WHEN status < 400 THEN reserved_nano_usd END)';

const SUMS = `COUNT(*) AS requests,
  COALESCE(SUM(input_tokens), 0) AS input_tokens,
  COALESCE(SUM(cached_input_tokens), 0) AS cached_input_tokens,
  COALESCE(SUM(output_tokens), 0) AS output_tokens,
  COALESCE(SUM(total_tokens), 0) AS total_tokens,
  COALESCE(SUM(cost_nano_usd), 0) / 1e9 AS cost_usd`;

/**
 * Rows wait in memory at most this long (or until this many are queued) and are then written in one
 * transaction: under load one commit per row cost more CPU than the rest of the metering. Not
 * longer: rows that waited 50 ms outlived young-generation collections and were promoted (measured: a
 * quarter of what each request promoted). A transaction left open between batches instead would
 * hold SQLite's write lock all the time and shut out any other writer (sqlite3 maintenance, a
 * second process). A stop (SIGTERM) flushes them; only a hard kill could lose the last rows.
 */
const FLUSH_MS = 10;
const FLUSH_ROWS = 500;
/**
 * While a checkpoint runs (a few ms), rows wait in memory; past this many, or once the oldest has
 * waited this long, they are written anyway: a disk slow to sync must neither grow the queue nor
 * keep rows from the disk.
 */
const HOLD_ROWS = 5_000;
const HOLD_MS = 100;

export interface SqliteStoreOptions {
  /**
   * A checkpoint failed (the disk …); no row is lost. `walKept`: the database's sync failed, and the
   * WAL is kept as it is until the process ends (it grows meanwhile); else SQLite's own automatic
   * checkpoint runs again.
   */
  onCheckpointError?: (err: unknown, walKept: boolean) => void;
  /** Tests: the file syncs used by the checkpointer. */
  fileSync?: FileSync;
}

/** SQLite in WAL mode, written in batches (see FLUSH_MS), checkpointed off the event loop (see WalCheckpointer). */
export class SqliteUsageStore implements UsageStore {
  private readonly db: Database.Database;
  private readonly stmt: Database.Statement;
  private readonly begin: Database.Statement;
  private readonly commit: Database.Statement;
  private readonly rollback: Database.Statement;
  private queue: UsageRow[] = [];
  /** When the oldest queued row was queued (performance.now()). */
  private queuedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly checkpointer: WalCheckpointer | undefined;

  constructor(
    readonly file: string,
    private readonly onError: (err: unknown, rows: number) => void = () => {},
    options: SqliteStoreOptions = {},
  ) {
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    // SQLite's own default page cache (2 MB). better-sqlite3 builds with 16 MB, which the server's
    // appends filled within ~60,000 rows and then held as RSS; its reads (spend per key at start,
    // the status page's totals) are few, and the OS's file cache still serves them.
    this.db.pragma('cache_size = -2000');
    this.migrate();
    this.stmt = this.db.prepare(`INSERT INTO usage (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')})`);
    this.begin = this.db.prepare('BEGIN');
    this.commit = this.db.prepare('COMMIT');
    this.rollback = this.db.prepare('ROLLBACK');
    const onCheckpointError = options.onCheckpointError ?? (() => {});
    if (file !== ':memory:') {
      try {
        this.checkpointer = new WalCheckpointer(this.db, file, () => this.write(false), onCheckpointError, options.fileSync);
      } catch (err) {
        onCheckpointError(err, false); // SQLite's own automatic checkpoint stays on
      }
    }
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  insert(row: UsageRow): void {
    if (this.queue.length === 0) this.queuedAt = performance.now();
    this.queue.push(row);
    if (this.queue.length >= FLUSH_ROWS) this.write(false);
    else this.timer ??= setTimeout(() => this.write(false), FLUSH_MS);
  }

  /** Writes the queued rows now, even while a checkpoint runs. Never throws (see write). */
  flush(): void {
    this.write(true);
  }

  /**
   * Writes the queued rows in one transaction. Never throws: a failure is reported with the rows
   * it lost. Unless `now`, rows wait while a checkpoint runs (it ends by calling this), so that
   * the checkpoint finds the whole WAL in the database and the next commit can start it over.
   */
  private write(now: boolean): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.queue.length || !this.db.open) return;
    if (!now && this.checkpointer?.busy && this.queue.length < HOLD_ROWS && performance.now() - this.queuedAt < HOLD_MS) {
      this.timer = setTimeout(() => this.write(false), FLUSH_MS);
      return;
    }
    const rows = this.queue;
    this.queue = [];
    let refused = 0;
    try {
      this.begin.run();
      for (const row of rows) {
        try {
          insertRow(this.stmt, row);
        } catch (err) {
          // Disk full, I/O: SQLite rolled the transaction back itself, and the batch went with it.
          if (!this.db.inTransaction) throw err;
          refused++;
          this.onError(err, 1); // this row alone (a constraint): the rest of the batch is kept
        }
      }
      this.commit.run();
      this.checkpointer?.committed(rows.length - refused);
    } catch (err) {
      try {
        if (this.db.inTransaction) this.rollback.run();
      } catch {
        // The connection is broken: the batch is reported lost below either way.
      }
      this.onError(err, rows.length - refused);
    }
  }

  private where(filter: UsageFilter): { sql: string; params: Record<string, unknown> } {
    const parts: string[] = [];
    const params: Record<string, unknown> = {};
    if (filter.email !== undefined) {
      parts.push('key_email = @email');
      params.email = filter.email.toLowerCase();
    }
    if (filter.sinceMs !== undefined) {
      parts.push('ts_ms >= @since');
      params.since = filter.sinceMs;
    }
    if (filter.untilMs !== undefined) {
      parts.push('ts_ms < @until');
      params.until = filter.untilMs;
    }
    return { sql: parts.length ? `WHERE ${parts.join(' AND ')}` : '', params };
  }

  totalsByUser(filter: UsageFilter): UserTotals[] {
    const { sql, params } = this.where(filter);
    // The name shown is the newest one the key holder had.
    return this.db
      .prepare(
        `SELECT key_email AS email,
           (SELECT key_name FROM usage u2 WHERE u2.key_email = usage.key_email ORDER BY ts_ms DESC LIMIT 1) AS name,
           ${SUMS}
         FROM usage ${sql} GROUP BY key_email ORDER BY cost_usd DESC, requests DESC, email`,
      )
      .all(params) as UserTotals[];
  }

  totalsBy(dimension: 'model' | 'day', filter: UsageFilter): GroupTotals[] {
    const { sql, params } = this.where(filter);
    const group = dimension === 'model' ? "COALESCE(model, '(unknown)')" : 'substr(ts, 1, 10)';
    const order = dimension === 'model' ? 'cost_usd DESC, requests DESC, "group"' : '"group"';
    return this.db
      .prepare(
        `SELECT ${group} AS "group", ${SUMS},
           SUM(CASE WHEN cost_nano_usd IS NULL THEN 1 ELSE 0 END) AS unpriced_requests
         FROM usage ${sql} GROUP BY 1 ORDER BY ${order}`,
      )
      .all(params) as GroupTotals[];
  }

  spendByKey(dayStartMs: number, monthStartMs: number): Array<[string, { day: number; month: number; total: number }]> {
    this.flush();
    const rows = this.db
      .prepare(
        `SELECT key_id,
           COALESCE(SUM(CASE WHEN ts_ms >= @day THEN ${CHARGED} END), 0) AS day,
           COALESCE(SUM(CASE WHEN ts_ms >= @month THEN ${CHARGED} END), 0) AS month,
           COALESCE(SUM(${CHARGED}), 0) AS total
         FROM usage GROUP BY key_id`,
      )
      .all({ day: dayStartMs, month: monthStartMs }) as { key_id: string; day: number; month: number; total: number }[];
    return rows.map((r) => [r.key_id, { day: r.day, month: r.month, total: r.total }]);
  }

  totalsSince(sinceMs: number): { requests: number; input_tokens: number; output_tokens: number; total_tokens: number; cost_usd: number } {
    this.flush();
    return this.db
      .prepare(`SELECT ${SUMS} FROM usage WHERE ts_ms >= ?`)
      .get(sinceMs) as { requests: number; input_tokens: number; output_tokens: number; total_tokens: number; cost_usd: number };
  }

  /** All rows, oldest first (tests and exports). */
  rows(): Record<string, unknown>[] {
    return this.db.prepare('SELECT *, cost_usd FROM usage ORDER BY id').all() as Record<string, unknown>[];
  }

  /** Writes the rows still queued and closes; SQLite's close checkpoints the WAL (with its fsyncs). */
  close(): void {
    this.checkpointer?.stop();
    this.flush();
    if (this.db.open) this.db.close();
    this.checkpointer?.closeFiles();
  }
}
