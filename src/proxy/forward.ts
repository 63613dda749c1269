import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { Dispatcher, Pool as UndiciPool } from 'undici';
import type { RequestContext } from '../http/context.js';
import { sendError } from '../http/errors.js';
import { UpstreamPool, type UpstreamKey } from '../upstream/pool.js';
import { decoded } from '../usage/compressedTap.js';
import { hasBody } from './bodyKind.js';
import { tooLarge } from './bodyLimit.js';
import { readableAcceptEncoding, upstreamRequestHeaders, type UpstreamHeaders } from './headers.js';
import { sniffMultipart } from './multipartFields.js';
import { errorCodeOf, relayReadAnswer, relayResponse, type AnswerSink, type UpstreamAnswer } from './relay.js';
import { Upload } from './upload.js';
import { upstreamPath } from './upstreamPath.js';

/**
 * undici's Pool alone: `import … from 'undici'` also loads fetch, WebSocket, caches and mocks,
 * +3.3 MB of heap and +10 MB of RSS that every full garbage collection walks (measured). undici has
 * no exports map; its own index.js takes Pool from this file. Tests cover the upgrade path.
 */
const Pool = createRequire(import.meta.url)('undici/lib/dispatcher/pool.js') as typeof UndiciPool;
type Pool = UndiciPool;

export interface ForwardOptions {
  baseUrl: URL;
  pool: UpstreamPool;
  /** Time the upstream may take to start answering, and may stay silent mid-answer, before 504. */
  timeoutMs: number;
  /** Time a client's connection may take none of an answer that waits for it before both are cut. */
  stallTimeoutMs: number;
  maxBodyBytes: number;
  /** Upstream keys tried for one request at most (429 / 401 move it to the next). */
  maxAttempts?: number;
}

export type Forward = (ctx: RequestContext, req: IncomingMessage, res: ServerResponse) => void;

export interface Forwarder {
  forward: Forward;
  /** Closes the upstream connections (once the requests in flight are done or cut). */
  close(): Promise<void>;
}

const MULTIPART_ENDPOINTS = new Set(['audio.transcriptions', 'audio.translations', 'images.edits', 'images.variations']);
/**
 * How long an early answer waits for the rest of an upload it no longer needs (see afterUpload):
 * long enough for the client to have read the answer, short enough not to keep a client waiting
 * that stopped sending and waits for the answer's end.
 */
const LINGER_MS = 2_000;
/** A 429 or 401 body is read whole to learn OpenAI's error code; no real one comes near this. */
const MAX_ERROR_BODY = 256 * 1024;

/**
 * Sends the request upstream over pooled keep-alive connections, with a key from the upstream pool,
 * and hands the answer to relayResponse. A 429 or 401 is tried again on another key while nothing
 * has reached the client and the body can be sent again (it was read, or there is none).
 * undici's dispatcher rather than node:http's client: on this path every microsecond is paid on
 * every request, and undici measured about half the CPU per request of http.request (bench/).
 */
export function createForwarder(opts: ForwardOptions): Forwarder {
  const dispatcher = new Pool(opts.baseUrl.origin, {
    // No cap: a cap would queue the requests beyond it (long streams hold their connection).
    connections: null,
    headersTimeout: opts.timeoutMs,
    bodyTimeout: opts.timeoutMs,
    keepAliveTimeout: 30_000,
  });
  const forward: Forward = (ctx, req, res) => {
    if (res.destroyed) return;
    ctx.forwarded = true;
    new Attempt(opts, dispatcher, ctx, req, res, new Set()).send();
  };
  // Called once every request is done or cut: nothing left to wait for, so no close() that could hang.
  return { forward, close: () => dispatcher.destroy() };
}

/** One try of a request on one upstream key: the undici handler for its answer. */
class Attempt implements Dispatcher.DispatchHandler {
  private readonly key: UpstreamKey;
  private sink: AnswerSink | undefined;
  /** A 429 / 401 answer being read to decide on a retry. */
  private held: { answer: UpstreamAnswer; chunks: Buffer[]; size: number } | undefined;
  /** The client has its answer and the upstream request was dropped on purpose. */
  private answered = false;
  /** The client's body as it streams upstream (when it was not read first). */
  private upload: Upload | undefined;
  /** When this attempt was sent: the pool weighs a late answer by it. */
  private sentAt = 0;

  constructor(
    private readonly opts: ForwardOptions,
    private readonly dispatcher: Pool,
    private readonly ctx: RequestContext,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly tried: Set<string>,
  ) {
    // Never undefined on the first attempt; later attempts are only made when hasUsable() said so.
    this.key = (opts.pool.pick(tried) ?? opts.pool.fallback(tried))!;
    tried.add(this.key.id);
    ctx.upstreamKeyId = this.key.id;
  }

  send(): void {
    const { ctx, req } = this;
    const extra: Record<string, string> = { ...this.key.headers };
    // A reshaped answer (stream usage withheld, model list filtered) must come uncompressed; any
    // other may be compressed only in a coding the tap can read.
    const encoding = ctx.withholdUsage || ctx.modelFilter ? 'identity' : readableAcceptEncoding(req.headers['accept-encoding']);
    if (encoding !== undefined) extra['accept-encoding'] = encoding;
    // undici frames the body itself (Content-Length, or chunked for a stream of unknown length),
    // whatever the method, so a GET body can never spill into the next request on the connection.
    const body = ctx.body ?? (hasBody(req) ? this.streamedBody() : null);
    this.sentAt = Date.now();
    this.dispatcher.dispatch(
      {
        origin: this.opts.baseUrl.origin,
        method: req.method ?? 'GET',
        path: upstreamPath(this.opts.baseUrl, (req.url ?? '/').slice(3)), // after "/v1"
        headers: upstreamRequestHeaders(req.headers, extra, ctx.body !== undefined),
        // undici takes async iterables (its docs and its Request check); its .d.ts omits them.
        body: body as Dispatcher.DispatchOptions['body'],
      },
      new Detachable(this),
    );
  }

  /** The client's body, streamed upstream as it arrives, counted against the limit and sniffed for multipart fields. */
  private streamedBody(): Upload {
    const { ctx, req, res } = this;
    const max = this.opts.maxBodyBytes;
    const sniffer = MULTIPART_ENDPOINTS.has(ctx.endpoint)
      ? sniffMultipart(req.headers, (name, value) => {
          if (name === 'model') ctx.requestModel = value;
          else if (name === 'stream') ctx.stream = value === 'true';
        })
      : undefined;
    if (sniffer) req.once('end', () => sniffer.end());
    const upload = (this.upload = new Upload(req, (chunk) => {
      ctx.bytesIn += chunk.length;
      if (ctx.bytesIn <= max) return void sniffer?.write(chunk);
      ctx.error = 'request body over the limit';
      // An answer already on its way to the client keeps its status: the cut below breaks it off.
      if (!res.headersSent) {
        ctx.status = 413;
        ctx.outcome = 'upstream_error';
      }
      // The answer is 413 either way, given like any early answer (afterUpload: the rest is read and
      // dropped first; answered at once, the reset of Node's close destroyed the 413 on its way).
      // Waiting before the abort below: the upstream's failure waits for the same moment, and the
      // first to wait answers (the other finds the answer given).
      this.afterUpload(() => {
        if (!res.headersSent && !res.destroyed) tooLarge(res, max);
      });
      ctx.abortUpstream?.();
    }));
    return upload;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    const gone = () => {
      this.ctx.error ??= 'the client closed the connection';
      controller.abort(new Error('the client went away'));
    };
    // Waited for a connection while the client left: its 'close' found nothing to abort yet.
    if (this.res.destroyed) return gone();
    this.ctx.abortUpstream = gone;
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: UpstreamHeaders): void {
    if (status < 200) return; // 1xx: informational, the real answer follows
    const answer: UpstreamAnswer = { status, headers };
    const { pool } = this.opts;
    if (pool.shouldRetry(status)) {
      this.held = { answer, chunks: [], size: 0 };
      return;
    }
    pool.report(this.key, { status, sentAt: this.sentAt });
    this.sink = this.relay(answer, controller);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.sink) return this.sink.data(chunk);
    if (!this.held) return; // answered already (an oversized 401)
    const held = this.held;
    held.chunks.push(chunk);
    held.size += chunk.length;
    if (held.size > MAX_ERROR_BODY) this.giveUpReading(controller);
  }

  onResponseEnd(): void {
    this.afterUpload(() => {
      if (this.sink) return this.sink.end();
      if (!this.held) return;
      const { answer, chunks, size } = this.held;
      this.held = undefined;
      this.decide(answer, Buffer.concat(chunks, size));
    }, true);
  }

  private relay(answer: UpstreamAnswer, controller: Dispatcher.DispatchController): AnswerSink {
    return relayResponse(this.ctx, answer, this.res, controller, this.opts.stallTimeoutMs);
  }

  /**
   * A 429 or 401 too long to read for its code (not OpenAI's own): the key is reported all the same.
   * A 429 is then relayed as it is; a 401 is answered 502 as always (its body may echo the key).
   */
  private giveUpReading(controller: Dispatcher.DispatchController): void {
    const { answer, chunks } = this.held!;
    this.held = undefined;
    this.reportRefused(answer, null);
    if (answer.status === 401) {
      this.answered = true;
      this.afterUpload(() => relayReadAnswer(this.ctx, answer, Buffer.alloc(0), this.res));
      return controller.abort(new Error('refused, answered'));
    }
    this.sink = this.relay(answer, controller);
    for (const chunk of chunks) this.sink.data(chunk);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.answered) return;
    const held = this.held;
    if (held) {
      // A 429 / 401 whose body broke off while it was read: still news about this key, and still
      // a reason to try another one.
      this.held = undefined;
      this.reportRefused(held.answer, null);
      if (this.mayRetry()) return this.afterUpload(() => this.retry());
    }
    this.afterUpload(() => this.failed(err));
  }

  private failed(err: Error): void {
    const { ctx } = this;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') ctx.timedOut = true;
    if (this.sink) {
      this.sink.broken(ctx.timedOut ? 'upstream timeout mid-response' : `upstream failed mid-response: ${reasonOf(err)}`);
      return;
    }
    upstreamFailed(ctx, err, this.res, this.opts.timeoutMs);
  }

  /**
   * An answer given before the client finished sending its body (the upstream's, its failure, or
   * Keyward's own 413 for a body over the limit): the rest is read and dropped, and the answer
   * ends only once it is in (or after LINGER_MS). Ending first would
   * make Node close the connection with unread bytes in it: a TCP reset, which can destroy the
   * answer on its way to the client (seen: the client got nothing). `then` runs once: 'end' and
   * 'close' both come, and the listeners go with the first. `answerEnded`: the upstream's answer
   * came whole (not an error that broke it off).
   */
  private afterUpload(then: () => void, answerEnded = false): void {
    const { upload, ctx } = this;
    if (upload === undefined || !upload.unfinished) return then();
    upload.drop();
    if (answerEnded && this.sink && ctx.status !== undefined) {
      // The client already has every byte of the answer but its end: a client that hangs up now
      // (fetch does, once the answer is complete) got the whole answer.
      ctx.finishTap?.();
      ctx.outcome ??= ctx.status >= 400 ? 'upstream_error' : 'ok';
    }
    upload.afterRest(then, LINGER_MS);
  }

  /** Tells the pool a key was refused (429 / 401), with OpenAI's code when it could be read. */
  private reportRefused(answer: UpstreamAnswer, code: string | null): void {
    this.opts.pool.report(this.key, { status: answer.status, code, retryAfterMs: UpstreamPool.retryAfterMs(answer.headers) });
  }

  /** A 429 or 401, read whole: try the next upstream key, or pass the answer on. */
  private decide(answer: UpstreamAnswer, raw: Buffer): void {
    const { ctx, req, res, opts } = this;
    const encoding = answer.headers['content-encoding'];
    const body = decoded(raw, typeof encoding === 'string' ? encoding : undefined);
    if (body !== raw) delete answer.headers['content-encoding']; // relayed decoded, with its new length
    this.reportRefused(answer, errorCodeOf(body) ?? null);
    if (this.mayRetry()) return this.retry();
    relayReadAnswer(ctx, answer, body, res);
  }

  /** Another key may be tried: the body can be sent again, attempts are left, and a key is. */
  private mayRetry(): boolean {
    const { ctx, req, res, opts } = this;
    const replayable = ctx.body !== undefined || !hasBody(req);
    const maxAttempts = Math.min(opts.maxAttempts ?? 3, opts.pool.size);
    return replayable && this.tried.size < maxAttempts && !res.destroyed && opts.pool.hasUsable(this.tried);
  }

  private retry(): void {
    const { ctx, req, res, opts } = this;
    ctx.retries = (ctx.retries ?? 0) + 1;
    new Attempt(opts, this.dispatcher, ctx, req, res, this.tried).send();
  }
}

/**
 * What undici holds: it keeps a finished request's handler referenced a while longer, and through
 * the Attempt the whole request (context, bodies, headers) survived young-generation collections
 * and was promoted, to be collected by a full mark-compact later (measured: a fifth of each
 * request's objects promoted). Cut loose when the answer ends, the request's objects die young.
 */
class Detachable implements Dispatcher.DispatchHandler {
  constructor(private attempt: Attempt | undefined) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.attempt?.onRequestStart(controller);
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: UpstreamHeaders): void {
    this.attempt?.onResponseStart(controller, status, headers);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.attempt?.onResponseData(controller, chunk);
  }

  onResponseEnd(): void {
    const attempt = this.attempt;
    this.attempt = undefined;
    attempt?.onResponseEnd();
  }

  onResponseError(controller: Dispatcher.DispatchController, err: Error): void {
    const attempt = this.attempt;
    this.attempt = undefined;
    attempt?.onResponseError(controller, err);
  }
}

/** A network error's code (ECONNREFUSED …) or, failing that, its message. */
function reasonOf(err: Error): string {
  return (err as NodeJS.ErrnoException).code ?? err.message;
}

function upstreamFailed(ctx: RequestContext, err: Error, res: ServerResponse, timeoutMs: number): void {
  if (res.writableEnded || res.destroyed) return; // the client left first, or the answer was already given
  ctx.outcome = 'upstream_error';
  if (ctx.timedOut) {
    ctx.status = 504;
    ctx.error = 'upstream timeout';
    sendError(res, 504, `The upstream API did not answer within ${timeoutMs / 1000} s.`, 'upstream_error', 'upstream_timeout');
    return;
  }
  const code = (err as NodeJS.ErrnoException).code;
  ctx.status = 502;
  ctx.error = `upstream unreachable: ${reasonOf(err)}`;
  sendError(res, 502, `Keyward could not reach the upstream API (${code ?? 'connection failed'}).`, 'upstream_error', 'upstream_unreachable');
}
