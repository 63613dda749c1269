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
  if (found.usage) into.usage = { ...into.usage, ...found.usage };
}

/** SSE: parses only the events that can carry usage (or the first, for the model); the rest are skipped. */
export class SseTap implements ResponseTap {
  private readonly found: Extracted = {};
  private readonly parser: SseParser;

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
    this.parser.push(chunk);
  }

  end(): Extracted {
    this.parser.end();
    return this.found;
  }
}

/** JSON: keeps the bytes (up to a cap) and parses once at the end. */
export class JsonTap implements ResponseTap {
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(
    private readonly endpoint: Endpoint,
    private readonly maxBytes: number,
  ) {}

  push(chunk: Buffer): void {
    if (this.size > this.maxBytes) return;
    this.size += chunk.length;
    if (this.size > this.maxBytes) this.chunks = [];
    else this.chunks.push(chunk);
  }

  end(): Extracted & { json?: unknown } {
    if (this.size > this.maxBytes || this.size === 0) return {};
    let json: unknown;
    try {
      json = JSON.parse(Buffer.concat(this.chunks, this.size).toString('utf8'));
    } catch {
      return {};
    } finally {
      this.chunks = [];
    }
    return { ...usageFromJson(this.endpoint, json), json };
  }
}

/** Anything else (audio bytes, files): nothing to read. */
export const nullTap: ResponseTap = { push() {}, end: () => ({}) };
