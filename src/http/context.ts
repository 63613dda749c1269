import type { ClientRequest, ServerResponse } from 'node:http';
import type { KeyRecord } from '../keys/types.js';
import type { UpstreamKey } from '../upstream/pool.js';
import type { Endpoint } from '../usage/endpoint.js';
import type { PricedTier, UsageCounts } from '../usage/types.js';

export type Outcome = 'ok' | 'upstream_error' | 'client_aborted' | 'stream_broken';

/** Everything known about one request as it moves along the path; read by the meter and the log. */
export interface RequestContext {
  id: string;
  startedAt: number;
  t0: bigint;
  method: string;
  /** URL path without the query string. */
  path: string;
  endpoint: Endpoint;
  principal?: KeyRecord;
  requestModel?: string;
  /** The request names its model ambiguously (twice, or not as a string). */
  modelConflict?: boolean;
  stream: boolean;
  /** Keyward added stream_options.include_usage: hide the extra usage chunk from this client. */
  withholdUsage: boolean;
  /** The (possibly reshaped) request body when it had to be read before forwarding. */
  body?: Buffer;
  /** The parsed JSON request body, when it was read (estimates, logBodies). */
  bodyJson?: unknown;
  /** Speech input length, billed per character for tts-1. */
  inputCharacters?: number;
  forwarded: boolean;
  /** Which upstream key served the request (its label or digest prefix, never the key). */
  upstreamKeyId?: string;
  /** That key itself, where the answer must still be reported to the pool (WebSocket). */
  upstreamKey?: UpstreamKey;
  /** How many times it was sent again on another upstream key. */
  retries?: number;
  /** What admit() reserved for rate limits and budgets, released by settle(). */
  reservation?: { tokens: number; costNano: number };
  /** GET /v1/models for a key with a model list: only the allowed models are shown. */
  modelFilter?: (model: string) => boolean;
  status?: number;
  ttfbMs?: number;
  upstreamRequestId?: string;
  responseModel?: string;
  /** The service tier the answer says served it, when it is one priced apart. */
  serviceTier?: PricedTier;
  /** Parse and keep the whole JSON answer (logBodies); otherwise only model and usage are read. */
  keepResponseJson?: boolean;
  /** Parsed JSON response body, kept only for logBodies. */
  responseJson?: unknown;
  usage: Partial<UsageCounts>;
  outcome?: Outcome;
  error?: string;
  timedOut: boolean;
  /** Ends the response tap and moves what it found into usage/model (idempotent). */
  finishTap?: () => void;
  /** Ends a connection that is not the HTTP server's to close (an upgraded WebSocket). */
  cut?: () => void;
  /** Gives up the upstream request (the client went away, or its body went over the limit). */
  abortUpstream?: () => void;
  /** The upstream handshake of a WebSocket session. */
  proxyReq?: ClientRequest;
  bytesIn: number;
  bytesOut: number;
  /** Where the request sits in the list of requests in flight (src/http/inFlight.ts). */
  inFlightSlot?: number;
}

/** Milliseconds since the request arrived, to 0.01 ms. */
export function elapsedMs(ctx: RequestContext): number {
  return Math.round(Number(process.hrtime.bigint() - ctx.t0) / 1e4) / 100;
}

const REQUEST_ID = Symbol('keyward.requestId');

/**
 * Remembers the request id on the response, for answers Keyward writes itself (errors). Not set as
 * a header up front: a header set before writeHead() sends every later header down Node's slow path.
 */
export function tagResponse(res: ServerResponse, id: string): void {
  (res as unknown as Record<symbol, string>)[REQUEST_ID] = id;
}

export function requestIdOf(res: ServerResponse): string | undefined {
  return (res as unknown as Record<symbol, string | undefined>)[REQUEST_ID];
}
