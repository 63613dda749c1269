import { CappedBuffer } from './cappedBuffer.js';
import { modelAndUsage, USAGE_KEY, valueStart } from './jsonFields.js';
import type { Endpoint } from './endpoint.js';
import { usageFromJson, usageFromSseEvent } from './extract.js';
import { SseParser } from './sseParser.js';
import type { Extracted } from './types.js';

/** Reads a copy of a response body on the side and reports usage and model when it ends. */
export interface ResponseTap {
  push(chunk: Buffer): void;
  /** Called at the end of the body (or when it broke off): returns what was found. */
  end(): Extracted & { json?: unknown };
}

const USAGE_OBJECT = /"usage"\s*:\s*\{/;

function merge(into: Extracted, found: Extracted | undefined): void {
  if (!found) return;
  if (found.model) into.model = found.model;
  if (found.serviceTier) into.serviceTier = found.serviceTier;
  if (found.usage) into.usage = { ...into.usage, ...found.usage };
}

const LF = 0x0a;

/** Where the last complete event of a chunk ends (after its blank line), or -1. */
function lastEventEnd(chunk: Buffer): number {
  const n = chunk.length;
  // Upstreams write whole events: the chunk almost always ends with its blank line.
  if (n >= 2 && chunk[n - 1] === LF && chunk[n - 2] === LF) return n;
  const lf = chunk.lastIndexOf('\n\n');
  const crlf = chunk.lastIndexOf('\r\n\r\n');
  return Math.max(lf === -1 ? -1 : lf + 2, crlf === -1 ? -1 : crlf + 4);
}

/**
 * Whether the bytes hold `"usage"` followed by `:` and an object (not `null`: OpenAI's stream sends
 * `"usage":null` in every chunk when usage is asked for). Buffer#indexOf per occurrence: on the
 * 2-core VM of 2026-11-25 it took 0.5 µs a chunk against 0.9–1.3 µs for a byte loop in JS (on the
 * faster VM of the day before, the loop had measured cheaper than four such searches).
 */
function mayHoldUsage(bytes: Buffer): boolean {
  for (let i = bytes.indexOf(USAGE_KEY); i !== -1; i = bytes.indexOf(USAGE_KEY, i + USAGE_KEY.length)) {
    const value = valueStart(bytes, i + USAGE_KEY.length);
    if (value !== -1 && bytes[value] === 0x7b /* { */) return true;
  }
  return false;
}

/** Largest run of bytes without an event boundary that is kept (no real event is this big). */
const MAX_PENDING = 16 * 1024 * 1024;

/**
 * SSE: a stream of many small events, of which one or two carry usage. Bytes are only scanned
 * (mayHoldUsage: `"usage"` followed by an object, any spacing) until a run of complete events holds
 * one, or the model is still unknown; only those runs are decoded and parsed. Most chunks cost two
 * buffer searches (one finds the chunk's `"usage":null`, one finds nothing more).
 */
export class SseTap implements ResponseTap {
  private readonly found: Extracted = {};
  private readonly parser: SseParser;
  private pending: Buffer[] = [];
  private pendingSize = 0;

  constructor(endpoint: Endpoint) {
    this.parser = new SseParser((event, data) => {
      if (this.found.model !== undefined && !USAGE_OBJECT.test(data)) return;
      if (data === '[DONE]') return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(data);
      } catch {
        return;
      }
      merge(this.found, usageFromSseEvent(endpoint, event, parsed));
    });
  }

  push(chunk: Buffer): void {
    const cut = lastEventEnd(chunk);
    if (cut === -1) {
      if (this.pendingSize + chunk.length <= MAX_PENDING) {
        this.pending.push(chunk);
        this.pendingSize += chunk.length;
      }
      return;
    }
    // The common chunk is one or more whole events: no copy, no new Buffer view, no new array.
    const head = cut === chunk.length ? chunk : chunk.subarray(0, cut);
    const complete = this.pending.length ? Buffer.concat([...this.pending, head], this.pendingSize + cut) : head;
    if (cut < chunk.length) this.pending = [chunk.subarray(cut)];
    else if (this.pending.length) this.pending = [];
    this.pendingSize = chunk.length - cut;
    if (this.found.model === undefined || mayHoldUsage(complete)) this.parser.push(complete);
  }

  end(): Extracted {
    const rest = Buffer.concat(this.pending, this.pendingSize);
    this.pending = [];
    if (this.found.model === undefined || mayHoldUsage(rest)) this.parser.push(rest);
    this.parser.end();
    return this.found;
  }
}

/**
 * JSON: keeps the bytes (up to a cap) and reads `model` and `usage` from them at the end; the whole
 * body is parsed only when it is wanted (logBodies) or the quick read fails.
 */
export class JsonTap implements ResponseTap {
  private readonly copy: CappedBuffer;

  constructor(
    private readonly endpoint: Endpoint,
    maxBytes: number,
    private readonly keepJson = false,
  ) {
    this.copy = new CappedBuffer(maxBytes);
  }

  push(chunk: Buffer): void {
    this.copy.push(chunk);
  }

  end(): Extracted & { json?: unknown } {
    const bytes = this.copy.take();
    if (!bytes) return {};
    const fields = this.keepJson ? undefined : modelAndUsage(bytes);
    if (fields) return usageFromJson(this.endpoint, fields);
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch {
      return {};
    }
    const found: Extracted & { json?: unknown } = usageFromJson(this.endpoint, json);
    found.json = json;
    return found;
  }
}

/** Anything else (audio bytes, files): nothing to read. */
export const nullTap: ResponseTap = { push() {}, end: () => ({}) };
