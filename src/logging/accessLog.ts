import { mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import pino from 'pino';
import type { RequestContext } from '../http/context.js';
import type { KeyRecord } from '../keys/types.js';
import type { UsageRow } from '../storage/usageStore.js';
import { isoTime } from '../util/isoTime.js';
import { redactBase64 } from './redactBodies.js';

interface Destination {
  destroyed: boolean;
  write(line: Buffer): boolean;
  flushSync(): void;
  end(): void;
  destroy(): void;
  on(event: 'error', listener: (err: Error) => void): void;
  once(event: 'close' | 'error', listener: () => void): void;
}

/** How long a stop waits for the last lines to reach the disk before it gives up on them. */
const CLOSE_TIMEOUT_MS = 5000;
/** Lines are gathered into batches of this many bytes, each one write on libuv's thread pool. */
const BATCH_BYTES = 32 * 1024;
/** A lone line waits at most this long for its batch to fill. */
const FLUSH_MS = 1000;

/**
 * One JSON line per request in access.log, written asynchronously and in batches (pino's SonicBoom
 * destination) so logging never blocks a response. Only chosen fields are written: headers are never
 * logged, so no key, token or cookie can reach the file; bodies only with logBodies, base64 cut short.
 * The line is pino's format ({"level":30,"time":…}), written field by field (see write).
 */
export class AccessLog {
  private readonly dest: Destination;
  private closing: Promise<void> | undefined;
  /**
   * The batch being filled: each line is encoded straight into it, where a Buffer per line handed
   * to SonicBoom cost a typed array and SonicBoom's bookkeeping per line (with the one-object
   * JSON.stringify: ~23,000 CPU instructions a line, against ~9,000 now; counted with callgrind).
   */
  private batch = Buffer.allocUnsafe(2 * BATCH_BYTES);
  private used = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The key's three fields as JSON, per key record (the same for every request of the key). */
  private readonly keyFields = new WeakMap<KeyRecord, string>();
  /**
   * A process that exits without close() (a crash) still writes the lines it has: pino's own exit
   * hook flushes SonicBoom, but the batch being filled here is not SonicBoom's yet.
   */
  private readonly onExit = () => {
    this.pushBatch();
    try {
      if (!this.dest.destroyed) this.dest.flushSync();
    } catch {
      // A failing disk at exit: those lines are lost, the exit is not held.
    }
  };

  constructor(
    file: string,
    private readonly logBodies: boolean,
    /** A failed write (disk full …): the lines of that batch are lost, the next batch is tried. */
    onError: (err: Error) => void = () => {},
  ) {
    // Opened here, synchronously: SonicBoom opens a path asynchronously, and a close() (a stop)
    // before that open completed could not write the lines waiting in memory (seen in CI).
    mkdirSync(dirname(file), { recursive: true });
    const fd = openSync(file, 'a');
    // Batches come whole from write(), so SonicBoom writes each as it comes (or queues it behind
    // the one being written). Buffers, not strings: in its string mode SonicBoom measures the
    // whole pending batch on every write.
    this.dest = pino.destination({ dest: fd, sync: false, minLength: 0, contentMode: 'buffer' } as never) as never;
    // Without a listener a failed write would throw from an event and take the process down.
    this.dest.on('error', onError);
    process.on('exit', this.onExit);
  }

  /**
   * Spelled out rather than one JSON.stringify of an object, which scanned every key name and
   * value for characters to escape. Strings that come from clients or key files go through
   * JSON.stringify; the rest (numbers, UUIDs, ISO times, Keyward's own words) need no escaping.
   * Undefined fields are left out, as pino does.
   */
  write(ctx: RequestContext, status: number, latencyMs: number, row: UsageRow | undefined): void {
    if (this.closing) return; // a closed destination throws on write
    const p = ctx.principal;
    let line = `{"level":30,"time":"${isoTime(Date.now())}","request_id":"${ctx.id}",${p ? this.keyJson(p) : '"key_id":null,"key_name":null,"key_email":null'},"method":${JSON.stringify(ctx.method)},"path":${JSON.stringify(ctx.path)},"status":${status},"latency_ms":${num(latencyMs)}`;
    if (row?.ttfb_ms != null) line += `,"ttfb_ms":${num(row.ttfb_ms)}`;
    line += `,"model":${str(row?.model ?? ctx.requestModel)},"stream":${ctx.stream},"input_tokens":${num(row?.input_tokens)},"output_tokens":${num(row?.output_tokens)},"total_tokens":${num(row?.total_tokens)},"cost_usd":${row?.cost_nano_usd == null ? 'null' : num(row.cost_nano_usd / 1e9)}`;
    if (row) line += `,"outcome":"${row.outcome}"`;
    line += `,"upstream_request_id":${str(ctx.upstreamRequestId)}`;
    if (row?.error) line += `,"error":${JSON.stringify(row.error)}`;
    if (this.logBodies) {
      if (ctx.bodyJson !== undefined) line += `,"request_body":${JSON.stringify(redactBase64(ctx.bodyJson))}`;
      if (ctx.responseJson !== undefined) line += `,"response_body":${JSON.stringify(redactBase64(ctx.responseJson))}`;
    }
    this.append(`${line}}\n`);
  }

  private keyJson(p: KeyRecord): string {
    let json = this.keyFields.get(p);
    if (json === undefined) {
      json = `"key_id":${JSON.stringify(p.id)},"key_name":${JSON.stringify(p.name)},"key_email":${JSON.stringify(p.email)}`;
      this.keyFields.set(p, json);
    }
    return json;
  }

  /** Encodes a line into the batch, and hands the batch on once it is full (or FLUSH_MS later). */
  private append(line: string): void {
    // A UTF-16 code unit is at most 3 bytes of UTF-8: a line that might not fit goes into the next batch.
    if (this.used + line.length * 3 > this.batch.length) {
      this.pushBatch();
      if (line.length * 3 > this.batch.length) return void this.dest.write(Buffer.from(line)); // a long line (bodies)
    }
    this.used += this.batch.write(line, this.used);
    if (this.used >= BATCH_BYTES) this.pushBatch();
    else this.timer ??= setTimeout(() => this.pushBatch(), FLUSH_MS).unref();
  }

  /** The lines gathered so far go to SonicBoom as one write; later lines go into a new batch. */
  private pushBatch(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.used === 0) return;
    const full = this.batch.subarray(0, this.used);
    // SonicBoom keeps the Buffer until the thread pool has written it: the next batch is a new one.
    this.batch = Buffer.allocUnsafe(this.batch.length);
    this.used = 0;
    if (!this.dest.destroyed) this.dest.write(full);
  }

  /**
   * Writes every waiting line, in order, and closes the file. It waits for a batch already being
   * written on libuv's thread pool: a synchronous flush (what this did before) wrote the lines
   * queued behind that batch first, so the batch landed after them, or not at all if the process
   * exited first (test/unit/accessLog.test.ts has the case).
   */
  close(): Promise<void> {
    process.off('exit', this.onExit);
    this.closing ??= new Promise<void>((resolve) => {
      // A write that fails while closing (or a disk that never answers) must not hold the stop,
      // and the destination is then destroyed: pino flushes a live one synchronously at exit, and
      // that flush retries a failing write forever.
      const giveUp = () => {
        clearTimeout(timer);
        if (!this.dest.destroyed) this.dest.destroy();
        resolve();
      };
      const timer = setTimeout(giveUp, CLOSE_TIMEOUT_MS);
      this.dest.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.dest.once('error', giveUp);
      this.pushBatch();
      this.dest.end();
    });
    return this.closing;
  }
}

/** A number as JSON (null for none; never NaN or Infinity, which JSON lacks). */
function num(n: number | null | undefined): string {
  return n == null || !Number.isFinite(n) ? 'null' : String(n);
}

/** A string as JSON, or null. */
function str(s: string | null | undefined): string {
  return s == null ? 'null' : JSON.stringify(s);
}
