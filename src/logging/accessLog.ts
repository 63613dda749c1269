import { mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import pino from 'pino';
import type { RequestContext } from '../http/context.js';
import type { UsageRow } from '../storage/usageStore.js';
import { isoTime } from '../util/isoTime.js';
import { redactBase64 } from './redactBodies.js';

interface Destination {
  destroyed: boolean;
  write(line: Buffer): boolean;
  end(): void;
  destroy(): void;
  on(event: 'error', listener: (err: Error) => void): void;
  once(event: 'close' | 'error', listener: () => void): void;
}

/** How long a stop waits for the last lines to reach the disk before it gives up on them. */
const CLOSE_TIMEOUT_MS = 5000;

/**
 * One JSON line per request in access.log, written asynchronously and in batches (pino's SonicBoom
 * destination) so logging never blocks a response. Only chosen fields are written: headers are never
 * logged, so no key, token or cookie can reach the file; bodies only with logBodies, base64 cut short.
 * The line is pino's format ({"level":30,"time":…}) but serialised by one JSON.stringify: pino's
 * field-by-field serialiser allocated ~10 KB per line (measured), all of it garbage to collect.
 */
export class AccessLog {
  private readonly dest: Destination;
  private closing: Promise<void> | undefined;

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
    // Lines are batched (32 KB, or 1 s at most) and kept as Buffers: in its default string mode
    // SonicBoom measures the whole pending batch on every write (~6 KB of garbage a line, measured).
    // 32 KB rather than 4 KB: each batch is one write on libuv's thread pool, and at 4 KB those cost
    // ~0.6 µs of CPU per line (measured: 3.2 against 3.6–3.9 µs a line in all).
    this.dest = pino.destination({
      dest: fd,
      sync: false,
      minLength: 32 * 1024,
      maxWrite: 64 * 1024, // SonicBoom wants minLength below it (its default is 16 KB)
      periodicFlush: 1000,
      contentMode: 'buffer',
    } as never) as never;
    // Without a listener a failed write would throw from an event and take the process down.
    this.dest.on('error', onError);
  }

  write(ctx: RequestContext, status: number, latencyMs: number, row: UsageRow | undefined): void {
    if (this.closing) return; // a closed destination throws on write
    const line: Record<string, unknown> = {
      level: 30,
      time: isoTime(Date.now()),
      request_id: ctx.id,
      key_id: ctx.principal?.id ?? null,
      key_name: ctx.principal?.name ?? null,
      key_email: ctx.principal?.email ?? null,
      method: ctx.method,
      path: ctx.path,
      status,
      latency_ms: latencyMs,
      ttfb_ms: row?.ttfb_ms ?? undefined,
      model: row?.model ?? ctx.requestModel ?? null,
      stream: ctx.stream,
      input_tokens: row?.input_tokens ?? null,
      output_tokens: row?.output_tokens ?? null,
      total_tokens: row?.total_tokens ?? null,
      cost_usd: row?.cost_nano_usd == null ? null : row.cost_nano_usd / 1e9,
      outcome: row?.outcome,
      upstream_request_id: ctx.upstreamRequestId ?? null,
    };
    if (row?.error) line.error = row.error;
    if (this.logBodies) {
      if (ctx.bodyJson !== undefined) line.request_body = redactBase64(ctx.bodyJson);
      if (ctx.responseJson !== undefined) line.response_body = redactBase64(ctx.responseJson);
    }
    this.dest.write(Buffer.from(`${JSON.stringify(line)}\n`));
  }

  /**
   * Writes every waiting line, in order, and closes the file. It waits for a batch already being
   * written on libuv's thread pool: a synchronous flush (what this did before) wrote the lines
   * queued behind that batch first, so the batch landed after them, or not at all if the process
   * exited first (test/unit/accessLog.test.ts has the case).
   */
  close(): Promise<void> {
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
      this.dest.end();
    });
    return this.closing;
  }
}
