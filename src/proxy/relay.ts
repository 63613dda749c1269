import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { elapsedMs, type RequestContext } from '../http/context.js';
import { sendError } from '../http/errors.js';
import { CompressedTap } from '../usage/compressedTap.js';
import { JsonTap, SseTap, nullTap, type ResponseTap } from '../usage/taps.js';
import { responseHeaders, type UpstreamHeaders } from './headers.js';
import { UsageChunkFilter } from './usageChunkFilter.js';

/** Largest response body the JSON tap keeps a copy of (image b64 answers can be tens of MB). */
const TAP_MAX_BYTES = 64 * 1024 * 1024;

/** The status line and headers of an upstream answer (header names in lower case). */
export interface UpstreamAnswer {
  status: number;
  headers: UpstreamHeaders;
}

/** Flow control over the upstream body: pause while the client cannot take more. */
export interface Valve {
  pause(): void;
  resume(): void;
}

/** Receives an upstream body as it arrives. */
export interface AnswerSink {
  data(chunk: Buffer): void;
  end(): void;
  /** The upstream body broke off (connection lost, timeout, or the client left and it was cut). */
  broken(reason: string): void;
}

function chooseTap(ctx: RequestContext, answer: UpstreamAnswer): ResponseTap {
  if (ctx.method !== 'POST') return nullTap; // lists and retrievals (stored completions …) bill nothing
  const type = String(answer.headers['content-type'] ?? '').toLowerCase();
  const tap = type.startsWith('text/event-stream')
    ? new SseTap(ctx.endpoint)
    : type.includes('json') && ctx.endpoint !== 'other' // files, batches …: no usage to read
      ? new JsonTap(ctx.endpoint, TAP_MAX_BYTES, ctx.keepResponseJson === true)
      : nullTap;
  const encoding = answer.headers['content-encoding'];
  if (tap === nullTap || encoding === undefined || encoding === 'identity') return tap;
  return CompressedTap.wrap(tap, String(encoding), TAP_MAX_BYTES) ?? nullTap;
}

/** Notes what every upstream answer tells the meter: status, time to first byte, OpenAI's id. */
function noteAnswer(ctx: RequestContext, answer: UpstreamAnswer): void {
  ctx.status = answer.status;
  ctx.ttfbMs ??= elapsedMs(ctx);
  const upstreamId = answer.headers['x-request-id'];
  if (typeof upstreamId === 'string') ctx.upstreamRequestId = upstreamId;
}

/** An answer that broke off: the client left (it was cut for that), or the upstream failed. */
function noteBroken(ctx: RequestContext, res: ServerResponse, reason: string): void {
  ctx.outcome ??= res.destroyed ? 'client_aborted' : 'stream_broken';
  ctx.error ??= reason;
}

/** The upstream's headers as the client gets them, with Keyward's request id (and OpenAI's, or ours). */
function answerHeaders(ctx: RequestContext, answer: UpstreamAnswer): OutgoingHttpHeaders {
  const headers = responseHeaders(answer.headers);
  headers['x-request-id'] ??= ctx.id;
  headers['x-keyward-request-id'] = ctx.id;
  return headers;
}

/**
 * Sends the upstream answer to the client as it arrives, chunk by chunk, byte for byte, while a tap
 * reads a copy for usage. Only a stream whose usage Keyward asked for on the client's behalf is
 * reshaped (the extra usage chunk withheld), event by event.
 */
export function relayResponse(ctx: RequestContext, answer: UpstreamAnswer, res: ServerResponse, valve: Valve, stallMs: number): AnswerSink {
  noteAnswer(ctx, answer);
  if (ctx.modelFilter && answer.status === 200) return new FilteredModelList(ctx, answer, res, ctx.modelFilter);
  const tap = chooseTap(ctx, answer);
  const headers = answerHeaders(ctx, answer);
  const reshape = ctx.withholdUsage && answer.status === 200 && tap instanceof SseTap;
  if (reshape) delete headers['content-length'];
  if (!res.destroyed) res.writeHead(answer.status, headers);
  return new Relay(ctx, res, tap, valve, stallMs, reshape ? new UsageChunkFilter() : undefined);
}

class Relay implements AnswerSink {
  private waiting = false;
  /** Runs while the upstream is held back for a client that reads nothing (see stalled). */
  private stall: NodeJS.Timeout | undefined;
  private readonly drained = () => {
    this.waiting = false;
    this.stopStallTimer();
    this.valve.resume();
  };
  private readonly stopStallTimer = () => {
    clearTimeout(this.stall);
    this.stall = undefined;
    this.res.off('close', this.stopStallTimer);
  };
  /** What the client's connection had taken when the stall timer was last (re)armed. */
  private takenAtArm = 0;
  /**
   * A client that stops reading would otherwise hold its upstream connection (and the answer
   * buffered for it) for as long as it keeps its own connection open: undici's body timeout does
   * not run while paused. Cut, it leaves a client_aborted row like any client that leaves.
   * 'drain' alone is no sign of life: a slow reader can take minutes to drain megabytes of socket
   * buffers while reading all along. So the timer looks at what the connection took meanwhile.
   */
  private readonly stalled = () => {
    const taken = this.taken();
    if (taken > this.takenAtArm) {
      this.takenAtArm = taken;
      return void this.stall?.refresh();
    }
    this.ctx.error ??= `the client took no data for ${this.stallMs / 1000} s`;
    this.res.destroy();
  };

  constructor(
    private readonly ctx: RequestContext,
    private readonly res: ServerResponse,
    private readonly tap: ResponseTap,
    private readonly valve: Valve,
    private readonly stallMs: number,
    private readonly filter: UsageChunkFilter | undefined,
  ) {
    let tapDone = false;
    ctx.finishTap = () => {
      if (tapDone) return;
      tapDone = true;
      const found = tap.end();
      if (found.model) ctx.responseModel = found.model;
      if (found.serviceTier) ctx.serviceTier = found.serviceTier;
      if (found.usage) ctx.usage = { ...ctx.usage, ...found.usage };
      if (found.json !== undefined) ctx.responseJson = found.json;
    };
  }

  data(chunk: Buffer): void {
    this.ctx.bytesOut += chunk.length;
    this.tap.push(chunk);
    const out = this.filter ? this.filter.push(chunk) : chunk;
    if (out === undefined || this.res.destroyed) return;
    // The client reads slower than the upstream sends: stop reading upstream until it catches up.
    if (!this.res.write(out) && !this.waiting) {
      this.waiting = true;
      this.valve.pause();
      this.res.once('drain', this.drained);
      this.takenAtArm = this.taken();
      this.stall = setTimeout(this.stalled, this.stallMs);
      this.res.once('close', this.stopStallTimer); // a client that leaves frees the Relay at once
    }
  }

  /**
   * Bytes the client's connection has accepted so far (written minus still queued in Node). An
   * answer queued behind a pipelined one has no socket yet: the connection taking the answers
   * before it is its sign of life.
   */
  private taken(): number {
    const socket = this.res.socket ?? this.res.req?.socket;
    return socket ? socket.bytesWritten - socket.writableLength : 0;
  }

  end(): void {
    // The tap is read before the client's response ends, so the row sees the usage.
    this.ctx.finishTap!();
    const rest = this.filter?.end();
    if (rest) this.res.end(rest);
    else this.res.end();
  }

  broken(reason: string): void {
    const { ctx, res } = this;
    noteBroken(ctx, res, reason);
    ctx.finishTap!();
    // Cut the client's response too: a clean end would pass a truncated answer off as complete.
    res.destroy();
  }
}

/**
 * An answer the forwarder had to read whole first (a 429 or 401 it considered retrying on another
 * upstream key) goes to the client now. OpenAI's 401 means the gateway's own key was refused, and its
 * message echoes part of that key: the client gets a 502 that says so, with nothing of the key in it.
 */
export function relayReadAnswer(ctx: RequestContext, answer: UpstreamAnswer, body: Buffer, res: ServerResponse): void {
  noteAnswer(ctx, answer);
  ctx.bytesOut += body.length;
  ctx.outcome = 'upstream_error';
  if (res.destroyed || res.headersSent) return; // the client left, or was answered 413 meanwhile
  if (answer.status === 401) {
    const code = errorCodeOf(body) ?? 'unknown';
    ctx.status = 502;
    ctx.error = `upstream refused the gateway's key (401 ${code})`;
    return sendError(
      res,
      502,
      `OpenAI refused this gateway's upstream key (401, ${code}). This is a Keyward configuration problem: ask the operator to check OPENAI_API_KEY.`,
      'upstream_error',
      'upstream_auth_failed',
      null,
      { 'x-keyward-request-id': ctx.id, 'x-request-id': ctx.upstreamRequestId ?? ctx.id },
    );
  }
  const headers = answerHeaders(ctx, answer);
  headers['content-length'] = body.length;
  res.writeHead(answer.status, headers);
  res.end(body);
}

/** The `error.code` of an OpenAI error body, if it is one. */
export function errorCodeOf(body: Buffer): string | undefined {
  try {
    const code = (JSON.parse(body.toString('utf8')) as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

/** GET /v1/models for a key with a model list: the list shows only what the key may use. */
class FilteredModelList implements AnswerSink {
  private readonly tap: JsonTap;

  constructor(
    private readonly ctx: RequestContext,
    private readonly answer: UpstreamAnswer,
    private readonly res: ServerResponse,
    private readonly allows: (model: string) => boolean,
  ) {
    this.tap = new JsonTap(ctx.endpoint, TAP_MAX_BYTES, true);
  }

  data(chunk: Buffer): void {
    this.ctx.bytesOut += chunk.length;
    this.tap.push(chunk);
  }

  end(): void {
    const { ctx, res } = this;
    const list = this.tap.end().json as { data?: { id?: unknown }[] } | undefined;
    if (!list || !Array.isArray(list.data)) {
      ctx.outcome = 'upstream_error';
      ctx.status = 502;
      ctx.error = 'unreadable model list';
      return sendError(res, 502, 'The upstream model list could not be read.', 'upstream_error', 'upstream_bad_response');
    }
    list.data = list.data.filter((m) => m !== null && typeof m === 'object' && typeof m.id === 'string' && this.allows(m.id));
    const body = JSON.stringify(list);
    const headers = answerHeaders(ctx, this.answer);
    delete headers['content-encoding'];
    headers['content-length'] = Buffer.byteLength(body);
    if (res.destroyed) return;
    res.writeHead(200, headers);
    res.end(body);
  }

  broken(reason: string): void {
    noteBroken(this.ctx, this.res, reason);
    if (!this.res.headersSent && !this.res.destroyed) {
      this.ctx.status = 502;
      sendError(this.res, 502, 'The upstream model list broke off.', 'upstream_error', 'upstream_bad_response');
    } else this.res.destroy();
  }
}
