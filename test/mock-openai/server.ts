// A local stand-in for the OpenAI API, for tests only. Plain node:http so it behaves like a real
// upstream at the socket level (chunked SSE, content-length, broken sockets), and every body comes
// from /work/shared/openai-fixtures so the shapes match the OpenAPI spec rather than our guesses.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import busboy from 'busboy';

export interface RecordedFile {
  field: string;
  filename: string;
  mimeType: string;
  bytes: number;
}

export interface RecordedRequest {
  method: string;
  url: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  /** Every byte of the request body as received (multipart included). */
  body: Buffer;
  /** Parsed JSON body, or for multipart the form fields (repeated names become arrays). */
  json?: any;
  /** Body bytes; for multipart only the bytes of the uploaded files. */
  receivedBytes: number;
  /** Set true when the client side closed before the mock finished its response. */
  aborted: boolean;
  /** Uploaded files of a multipart request. */
  files?: RecordedFile[];
}

export interface MockOpenAI {
  /** http://127.0.0.1:PORT, without /v1. */
  url: string;
  port: number;
  requests: RecordedRequest[];
  lastRequest(): RecordedRequest | undefined;
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface MockOpenAIOptions {
  /** Accepted upstream keys (Authorization: Bearer …). Default ['sk-upstream-test']. */
  keys?: string[];
  /** Default 0 = a random free port. */
  port?: number;
}

/** Bodies above this get a 413; large enough for the 50 MB upload tests. */
export const MAX_BODY_BYTES = 60 * 1024 * 1024;
/** Size of the binary body of POST /v1/audio/speech. */
export const SPEECH_AUDIO_BYTES = 48 * 1024;
const SPEECH_PIECE_BYTES = 8 * 1024;

// ---------------------------------------------------------------------------------------------
// Fixtures: read at run time (never copied into the repo), cached per absolute path.

export function fixturesDir(): string {
  return process.env.OPENAI_FIXTURES_DIR ?? path.resolve(process.cwd(), '../shared/openai-fixtures');
}

const fixtureCache = new Map<string, string>();

/** Raw text of a fixture file. */
export function fixtureText(name: string): string {
  const file = path.join(fixturesDir(), name);
  let text = fixtureCache.get(file);
  if (text === undefined) {
    text = fs.readFileSync(file, 'utf8');
    fixtureCache.set(file, text);
  }
  return text;
}

/** Parsed JSON fixture (a fresh copy each call, so callers may mutate it). */
export function fixtureJson<T = any>(name: string): T {
  return JSON.parse(fixtureText(name)) as T;
}

/** The events of an .sse fixture, each "text up to and including its blank line". */
export function fixtureEvents(name: string): string[] {
  return fixtureText(name)
    .split('\n\n')
    .map((e) => e.replace(/^\n+/, ''))
    .filter((e) => e.length > 0)
    .map((e) => `${e}\n\n`);
}

/** The deterministic body of POST /v1/audio/speech, so tests can compare bytes. */
export function speechAudio(): Buffer {
  const buf = Buffer.alloc(SPEECH_AUDIO_BYTES);
  // Starts like an MP3 with an ID3 tag; the rest is a fixed, non-repeating-per-chunk pattern.
  buf.write('ID3', 0, 'latin1');
  for (let i = 3; i < buf.length; i++) buf[i] = (i * 31 + (i >> 8)) & 0xff;
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Static data for models and files.

const MODELS: { id: string; created: number; owned_by: string }[] = [
  { id: 'gpt-4o-mini', created: 1721172741, owned_by: 'system' },
  { id: 'gpt-4o-mini-2024-07-18', created: 1721172717, owned_by: 'system' },
  { id: 'gpt-4.1-mini', created: 1744318173, owned_by: 'system' },
  { id: 'gpt-4.1-mini-2025-04-14', created: 1744317547, owned_by: 'system' },
  { id: 'o4-mini', created: 1744225351, owned_by: 'system' },
  { id: 'o4-mini-2025-04-16', created: 1744133506, owned_by: 'system' },
  { id: 'gpt-3.5-turbo-instruct', created: 1692901427, owned_by: 'system' },
  { id: 'text-embedding-3-small', created: 1705948997, owned_by: 'system' },
  { id: 'omni-moderation-latest', created: 1731689265, owned_by: 'system' },
  { id: 'gpt-image-1', created: 1745517030, owned_by: 'system' },
  { id: 'gpt-4o-transcribe', created: 1742068463, owned_by: 'system' },
  { id: 'gpt-4o-mini-tts', created: 1742403959, owned_by: 'system' },
  { id: 'whisper-1', created: 1677532384, owned_by: 'openai-internal' },
];

interface FileObject {
  id: string;
  object: 'file';
  bytes: number;
  created_at: number;
  expires_at: number | null;
  filename: string;
  purpose: string;
  status: 'processed';
  status_details: null;
}

function seedFiles(): Map<string, FileObject> {
  // A few files so list/limit/pagination tests have data without uploading first.
  const seed: [string, string, number, string][] = [
    ['file-seed0000000000000000000001', 'batch-input.jsonl', 2048, 'batch'],
    ['file-seed0000000000000000000002', 'train.jsonl', 16384, 'fine-tune'],
    ['file-seed0000000000000000000003', 'handbook.pdf', 524288, 'assistants'],
  ];
  const files = new Map<string, FileObject>();
  seed.forEach(([id, filename, bytes, purpose], i) => {
    files.set(id, {
      id, object: 'file', bytes, created_at: 1762000000 + i * 60, expires_at: null,
      filename, purpose, status: 'processed', status_details: null,
    });
  });
  return files;
}

// ---------------------------------------------------------------------------------------------
// Responses.

type HeaderKind = 'json' | 'sse' | '429';
const HEADER_FIXTURE: Record<HeaderKind, string> = {
  json: 'headers-200-json.json',
  sse: 'headers-200-sse.json',
  '429': 'headers-429.json',
};

function requestId(): string {
  return `req_${randomBytes(16).toString('hex')}`;
}

function errorBody(message: string, param: string | null = null, code: string | null = null, type = 'invalid_request_error') {
  return { error: { message, type, param, code } };
}

// What x-mock-status answers with; 429s also get the rate-limit headers (with retry-after).
const STATUS_CONTROLS: Record<string, { status: number; fixture: string }> = {
  '400': { status: 400, fixture: 'error-400-invalid-request.json' },
  '401': { status: 401, fixture: 'error-401-invalid-api-key.json' },
  '404': { status: 404, fixture: 'error-404-model-not-found.json' },
  '429': { status: 429, fixture: 'error-429-rate-limit.json' },
  '429-quota': { status: 429, fixture: 'error-429-insufficient-quota.json' },
  '500': { status: 500, fixture: 'error-500-server-error.json' },
};

interface Controls {
  hang: boolean;
  echo: boolean;
  delayMs: number;
  chunkDelayMs: number;
  breakAfter: number | undefined;
  status: string | undefined;
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function nonNegativeInt(v: string | undefined): number | undefined {
  if (v === undefined || v.trim() === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? Math.floor(n) : undefined;
}

function truthy(v: string | undefined): boolean {
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

function readControls(req: http.IncomingMessage): Controls {
  return {
    hang: truthy(header(req, 'x-mock-hang')),
    echo: truthy(header(req, 'x-mock-echo')),
    delayMs: nonNegativeInt(header(req, 'x-mock-delay-ms')) ?? 0,
    chunkDelayMs: nonNegativeInt(header(req, 'x-mock-chunk-delay-ms')) ?? 0,
    breakAfter: nonNegativeInt(header(req, 'x-mock-break-after')),
    status: header(req, 'x-mock-status'),
  };
}

/** Per-request state shared by the reader and the responders. */
interface Exchange {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  rec: RecordedRequest;
  controls: Controls;
  query: URLSearchParams;
  /** The query string exactly as received, without '?'. */
  rawQuery: string;
  tooLarge: boolean;
  badJson: boolean;
  multipart: boolean;
  multipartError: string | undefined;
  /** The mock itself destroyed the socket (x-mock-break-after): not a client abort. */
  brokeOnPurpose: boolean;
}

// ---------------------------------------------------------------------------------------------

export async function startMockOpenAI(opts: MockOpenAIOptions = {}): Promise<MockOpenAI> {
  const keys = new Set(opts.keys ?? ['sk-upstream-test']);
  const requests: RecordedRequest[] = [];
  const waiters = new Set<() => void>();
  const pending = new Set<() => void>(); // cancel functions of scheduled timers
  const files = seedFiles();
  let closing = false;

  // Timers are tracked so close() can cancel pending delays/streams instead of leaving them to fire.
  const later = (fn: () => void, ms: number) => {
    if (closing) return;
    const run = () => { pending.delete(cancel); fn(); };
    let cancel: () => void;
    if (ms > 0) {
      const t = setTimeout(run, ms);
      cancel = () => clearTimeout(t);
    } else {
      const t = setImmediate(run);
      cancel = () => clearImmediate(t);
    }
    pending.add(cancel);
  };
  const sleep = (ms: number) => new Promise<void>((resolve) => later(resolve, ms));

  const headersFor = (kind: HeaderKind, x: Exchange): Record<string, string> => ({
    ...fixtureJson<Record<string, string>>(HEADER_FIXTURE[kind]),
    'x-request-id': requestId(),
    'x-mock-received-bytes': String(x.rec.receivedBytes),
  });

  /**
   * Sends a body as a series of pieces, each in its own write on its own event-loop turn (or after
   * x-mock-chunk-delay-ms), so a proxy sees separate reads as with a real token stream.
   * x-mock-break-after N destroys the socket after N pieces: a broken upstream.
   */
  const sendPieces = (x: Exchange, status: number, headers: Record<string, string>, pieces: Buffer[]) => {
    const { res } = x;
    if (res.destroyed) return;
    const { breakAfter, chunkDelayMs } = x.controls;
    res.writeHead(status, headers);
    if (pieces.length === 1 && breakAfter === undefined) {
      res.end(pieces[0]);
      return;
    }
    res.flushHeaders();
    let i = 0;
    const step = () => {
      if (res.destroyed) return;
      if (breakAfter !== undefined && i >= breakAfter) {
        x.brokeOnPurpose = true;
        res.socket?.destroy();
        return;
      }
      if (i >= pieces.length) {
        res.end();
        return;
      }
      const piece = pieces[i++]!;
      // Next piece only once this one reached the socket: keeps order and respects backpressure.
      res.write(piece, (err) => { if (!err) later(step, chunkDelayMs); });
    };
    later(step, 0);
  };

  const sendJson = (x: Exchange, status: number, body: unknown, kind: HeaderKind = 'json') => {
    // Fixture text is sent byte for byte; objects are pretty-printed like the live API's JSON.
    const buf = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body, null, 2));
    const headers = { ...headersFor(kind, x), 'content-length': String(buf.length) };
    // With break-after, split the body so the client gets a truncated body against content-length.
    const pieces = x.controls.breakAfter === undefined
      ? [buf]
      : [buf.subarray(0, buf.length >> 1), buf.subarray(buf.length >> 1)];
    sendPieces(x, status, headers, pieces);
  };

  const sendFixture = (x: Exchange, name: string, status = 200) => sendJson(x, status, fixtureText(name));

  const sendSse = (x: Exchange, events: string[]) => {
    sendPieces(x, 200, headersFor('sse', x), events.map((e) => Buffer.from(e)));
  };

  const sendError = (x: Exchange, status: number, body: unknown) =>
    sendJson(x, status, body, status === 429 ? '429' : 'json');

  // -------------------------------------------------------------------------------------------
  // Routes. Each returns after it has started answering.

  const chatCompletions = (x: Exchange) => {
    const body = x.rec.json ?? {};
    if (body.stream_options != null && body.stream !== true) {
      return sendError(x, 400, fixtureText('error-400-stream-options-without-stream.json'));
    }
    if (body.messages === undefined) return sendError(x, 400, fixtureText('error-400-invalid-request.json'));
    if (body.stream === true) {
      return sendSse(x, fixtureEvents(body.stream_options?.include_usage === true
        ? 'chat-completions-stream-include-usage.sse'
        : 'chat-completions-stream-no-usage.sse'));
    }
    return sendFixture(x, 'chat-completion.json');
  };

  const responses = (x: Exchange) => {
    const body = x.rec.json ?? {};
    // The Responses API knows only stream_options.include_obfuscation; anything else (notably an
    // injected include_usage) is an unknown parameter.
    if (body.stream_options != null) {
      const unknown = typeof body.stream_options === 'object'
        ? Object.keys(body.stream_options).find((k) => k !== 'include_obfuscation')
        : '';
      if (unknown !== undefined) {
        if (unknown === 'include_usage') return sendError(x, 400, fixtureText('error-400-unknown-parameter.json'));
        const param = unknown === '' ? 'stream_options' : `stream_options.${unknown}`;
        return sendError(x, 400, errorBody(`Unknown parameter: '${param}'.`, param, 'unknown_parameter'));
      }
    }
    if (body.stream === true) return sendSse(x, fixtureEvents('responses-stream.sse'));
    return sendFixture(x, 'responses.json');
  };

  const legacyCompletions = (x: Exchange) => {
    const body = x.rec.json ?? {};
    if (body.stream_options != null && body.stream !== true) {
      return sendError(x, 400, fixtureText('error-400-stream-options-without-stream.json'));
    }
    if (body.stream !== true) return sendFixture(x, 'completion-legacy.json');
    // No stream fixture exists for legacy completions: synthesize one in the chat fixtures' style.
    const full = fixtureJson('completion-legacy.json');
    const withUsage = body.stream_options?.include_usage === true;
    const choice0 = full.choices[0];
    const texts: string[] = String(choice0.text).match(/\n+|\s*\S+/g) ?? [String(choice0.text)];
    const chunk = (choices: unknown[], usage?: unknown) => `data: ${JSON.stringify({
      id: full.id, object: 'text_completion', created: full.created, model: full.model, choices,
      ...(withUsage ? { usage: usage ?? null } : {}),
    })}\n\n`;
    const events = texts.map((text) => chunk([{ text, index: 0, logprobs: null, finish_reason: null }]));
    events.push(chunk([{ text: '', index: 0, logprobs: null, finish_reason: choice0.finish_reason }]));
    if (withUsage) events.push(chunk([], full.usage));
    events.push('data: [DONE]\n\n');
    return sendSse(x, events);
  };

  const imagesGeneration = (x: Exchange, edit: boolean) => {
    const stream = edit ? truthy(formField(x, 'stream')) : x.rec.json?.stream === true;
    if (!stream) return sendFixture(x, 'image-generation.json');
    const events = fixtureEvents('image-generation-stream.sse');
    // Edits stream the same events under the image_edit.* names (ImageEditStreamEvent).
    return sendSse(x, edit ? events.map((e) => e.replaceAll('image_generation.', 'image_edit.')) : events);
  };

  const audioTranscription = (x: Exchange) => {
    if (!x.multipart) return sendError(x, 400, notMultipart(x));
    if (!x.rec.files?.some((f) => f.field === 'file')) {
      return sendError(x, 400, errorBody("Missing required parameter: 'file'.", 'file', 'missing_required_parameter'));
    }
    if (truthy(formField(x, 'stream'))) return sendSse(x, fixtureEvents('transcription-stream.sse'));
    const name = formField(x, 'model') === 'whisper-1'
      ? 'transcription-duration-verbose.json'
      : 'transcription-tokens.json';
    if (formField(x, 'response_format') === 'text') {
      // Plain-text format: just the transcript, no usage (as the live API does).
      const buf = Buffer.from(`${fixtureJson(name).text}\n`);
      const headers = { ...headersFor('json', x), 'content-type': 'text/plain; charset=utf-8', 'content-length': String(buf.length) };
      return sendPieces(x, 200, headers, [buf]);
    }
    return sendFixture(x, name);
  };

  const audioSpeech = (x: Exchange) => {
    if (x.rec.json?.stream_format === 'sse') return sendSse(x, fixtureEvents('speech-stream.sse'));
    const audio = speechAudio();
    const pieces: Buffer[] = [];
    for (let i = 0; i < audio.length; i += SPEECH_PIECE_BYTES) pieces.push(audio.subarray(i, i + SPEECH_PIECE_BYTES));
    // Chunked like the live endpoint (no content-length), in several writes.
    const headers = { ...headersFor('json', x), 'content-type': 'audio/mpeg' };
    return sendPieces(x, 200, headers, pieces);
  };

  const listModels = (x: Exchange) =>
    sendJson(x, 200, { object: 'list', data: MODELS.map((m) => ({ id: m.id, object: 'model', created: m.created, owned_by: m.owned_by })) });

  const getModel = (x: Exchange, id: string) => {
    const m = MODELS.find((mm) => mm.id === id);
    if (m) return sendJson(x, 200, { id: m.id, object: 'model', created: m.created, owned_by: m.owned_by });
    const err = fixtureJson('error-404-model-not-found.json');
    err.error.message = String(err.error.message).replace('gpt-9-turbo', id);
    return sendError(x, 404, err);
  };

  const listFiles = (x: Exchange) => {
    const order = x.query.get('order') === 'asc' ? 1 : -1;
    const purpose = x.query.get('purpose');
    let all = [...files.values()]
      .filter((f) => !purpose || f.purpose === purpose)
      .sort((a, b) => order * (a.created_at - b.created_at) || a.id.localeCompare(b.id));
    const after = x.query.get('after');
    if (after) {
      const i = all.findIndex((f) => f.id === after);
      all = i < 0 ? [] : all.slice(i + 1);
    }
    const limit = Math.min(Math.max(nonNegativeInt(x.query.get('limit') ?? undefined) ?? 10000, 1), 10000);
    const data = all.slice(0, limit);
    return sendJson(x, 200, {
      object: 'list', data,
      first_id: data[0]?.id ?? null, last_id: data[data.length - 1]?.id ?? null,
      has_more: all.length > data.length,
    });
  };

  const uploadFile = (x: Exchange) => {
    if (!x.multipart) return sendError(x, 400, notMultipart(x));
    const purpose = formField(x, 'purpose');
    if (!purpose) return sendError(x, 400, errorBody("Missing required parameter: 'purpose'.", 'purpose', 'missing_required_parameter'));
    const file = x.rec.files?.find((f) => f.field === 'file');
    if (!file) return sendError(x, 400, errorBody("Missing required parameter: 'file'.", 'file', 'missing_required_parameter'));
    const obj: FileObject = {
      id: `file-${randomBytes(11).toString('hex')}`, object: 'file', bytes: file.bytes,
      created_at: Math.floor(Date.now() / 1000), expires_at: null, filename: file.filename,
      purpose, status: 'processed', status_details: null,
    };
    files.set(obj.id, obj);
    return sendJson(x, 200, obj);
  };

  const noSuchFile = (x: Exchange, id: string) =>
    sendError(x, 404, errorBody(`No such File object: ${id}`, 'id'));

  // -------------------------------------------------------------------------------------------

  const route = (x: Exchange) => {
    const { method } = x.rec;
    const p = x.rec.path;
    if (method === 'POST') {
      switch (p) {
        case '/v1/chat/completions': return chatCompletions(x);
        case '/v1/responses': return responses(x);
        case '/v1/completions': return legacyCompletions(x);
        case '/v1/embeddings': return sendFixture(x, 'embeddings.json');
        case '/v1/moderations': return sendFixture(x, 'moderation.json');
        case '/v1/images/generations': return imagesGeneration(x, false);
        case '/v1/images/edits': return imagesGeneration(x, true);
        case '/v1/audio/transcriptions':
        case '/v1/audio/translations': return audioTranscription(x);
        case '/v1/audio/speech': return audioSpeech(x);
        case '/v1/files': return uploadFile(x);
      }
    }
    if (method === 'GET') {
      if (p === '/v1/models') return listModels(x);
      if (p === '/v1/files') return listFiles(x);
      const model = /^\/v1\/models\/(.+)$/.exec(p);
      if (model) return getModel(x, decodeURIComponent(model[1]!));
      const file = /^\/v1\/files\/([^/]+)$/.exec(p);
      if (file) {
        const f = files.get(decodeURIComponent(file[1]!));
        return f ? sendJson(x, 200, f) : noSuchFile(x, decodeURIComponent(file[1]!));
      }
    }
    if (method === 'DELETE') {
      const file = /^\/v1\/files\/([^/]+)$/.exec(p);
      if (file) {
        const id = decodeURIComponent(file[1]!);
        if (!files.delete(id)) return noSuchFile(x, id);
        return sendJson(x, 200, { id, object: 'file', deleted: true });
      }
    }
    // The live API answers unknown paths and wrong methods alike with this 404.
    return sendError(x, 404, errorBody(`Invalid URL (${method} ${x.rec.path})`));
  };

  const respond = async (x: Exchange) => {
    const { controls, req } = x;
    if (controls.hang) return; // never answer; close() destroys the socket
    if (controls.delayMs > 0) await sleep(controls.delayMs);
    if (x.res.destroyed) return;

    // Echo comes before auth so tests can inspect whatever credentials the proxy forwarded.
    if (controls.echo) {
      return sendJson(x, 200, {
        method: x.rec.method, path: x.rec.path, query: x.rawQuery,
        headers: x.rec.headers, bodyBytes: x.rec.body.length,
      });
    }

    const auth = header(req, 'authorization');
    const bearer = auth ? /^Bearer\s+(.*)$/i.exec(auth)?.[1]?.trim() : undefined;
    if (!bearer) return sendError(x, 401, fixtureText('error-401-missing-api-key.json'));
    if (!keys.has(bearer)) return sendError(x, 401, fixtureText('error-401-invalid-api-key.json'));

    if (controls.status !== undefined) {
      const c = STATUS_CONTROLS[controls.status];
      if (c) return sendError(x, c.status, fixtureText(c.fixture));
      return sendError(x, 400, errorBody(`mock: unsupported x-mock-status '${controls.status}' (use ${Object.keys(STATUS_CONTROLS).join(', ')})`, null, null, 'mock_error'));
    }

    if (x.tooLarge) {
      return sendError(x, 413, errorBody(`Request body too large: ${x.rec.receivedBytes} bytes (mock limit ${MAX_BODY_BYTES}).`, null, 'request_too_large'));
    }
    if (x.badJson) {
      return sendError(x, 400, errorBody("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)"));
    }
    if (x.multipartError) return sendError(x, 400, errorBody(`Could not parse multipart form: ${x.multipartError}`));
    return route(x);
  };

  // -------------------------------------------------------------------------------------------

  const record = (rec: RecordedRequest) => {
    if (requests.includes(rec)) return;
    requests.push(rec);
    for (const w of [...waiters]) w();
  };

  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rec: RecordedRequest = {
      method: req.method ?? 'GET', url, path: q < 0 ? url : url.slice(0, q), headers: req.headers,
      body: Buffer.alloc(0), receivedBytes: 0, aborted: false,
    };
    const contentType = header(req, 'content-type') ?? '';
    const x: Exchange = {
      req, res, rec, controls: readControls(req), rawQuery: q < 0 ? '' : url.slice(q + 1),
      query: new URLSearchParams(q < 0 ? '' : url.slice(q + 1)),
      tooLarge: false, badJson: false, multipart: /^multipart\/form-data/i.test(contentType),
      multipartError: undefined, brokeOnPurpose: false,
    };

    const chunks: Buffer[] = [];
    let stored = 0;
    let rawBytes = 0;
    const takeBody = () => {
      rec.body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      if (!x.multipart || x.tooLarge) rec.receivedBytes = rawBytes;
    };

    res.on('close', () => {
      // A close before our response finished is the client going away, unless we broke it on purpose
      // or are shutting down. A request that never finished uploading is still recorded, with what
      // arrived of its body.
      if (res.writableFinished) return;
      if (!x.brokeOnPurpose && !closing) rec.aborted = true;
      if (!requests.includes(rec)) {
        takeBody();
        record(rec);
      }
    });
    req.on('error', () => { /* client resets show up through res 'close' */ });
    let bodyDone = false;
    let formDone = !x.multipart;

    // Multipart is parsed as it streams in, so file bytes are counted even for an aborted upload.
    let form: busboy.Busboy | undefined;
    if (x.multipart) {
      rec.json = {};
      rec.files = [];
      try {
        form = busboy({ headers: req.headers, limits: { fieldSize: 10 * 1024 * 1024 } });
        form.on('field', (name, value) => {
          const prev = rec.json[name];
          rec.json[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
        });
        form.on('file', (field, stream, info) => {
          const f: RecordedFile = { field, filename: info.filename ?? '', mimeType: info.mimeType, bytes: 0 };
          rec.files!.push(f);
          stream.on('data', (d: Buffer) => { f.bytes += d.length; rec.receivedBytes += d.length; });
        });
        form.on('error', (err: Error) => { x.multipartError = err.message; formDone = true; finish(); });
        form.on('close', () => { formDone = true; finish(); });
      } catch (err) {
        x.multipartError = (err as Error).message;
        form = undefined;
        formDone = true;
      }
    }

    const finish = () => {
      if (!bodyDone || !formDone || requests.includes(rec)) return;
      takeBody();
      if (!x.tooLarge && /^application\/(.+\+)?json/i.test(contentType) && rec.body.length > 0) {
        try { rec.json = JSON.parse(rec.body.toString('utf8')); } catch { x.badJson = true; }
      }
      record(rec); // before answering, so a test sees the request even if the answer never comes
      respond(x).catch((err) => { res.destroy(err as Error); });
    };

    req.on('data', (d: Buffer) => {
      rawBytes += d.length;
      if (stored + d.length <= MAX_BODY_BYTES) {
        chunks.push(d);
        stored += d.length;
        if (form && !x.multipartError) form.write(d);
      } else {
        x.tooLarge = true; // keep draining so the client can read our 413
      }
    });
    req.on('end', () => {
      bodyDone = true;
      if (form && !x.multipartError) form.end();
      else formDone = true;
      finish();
    });
  });

  // Proxies keep pooled keep-alive connections: don't drop idle ones under them mid-test.
  server.keepAliveTimeout = 60_000;
  server.requestTimeout = 0;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => { server.off('error', reject); resolve(); });
  });
  const port = (server.address() as AddressInfo).port;

  let closed: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    lastRequest: () => requests[requests.length - 1],
    waitForRequests(n: number, timeoutMs = 5000) {
      if (requests.length >= n) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (requests.length < n) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`mock-openai: expected ${n} requests within ${timeoutMs} ms, got ${requests.length}`));
        }, timeoutMs);
        waiters.add(check);
      });
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing = true;
        for (const cancel of pending) cancel();
        pending.clear();
        server.close(() => resolve());
        // Hung, streaming and idle keep-alive sockets alike: tests must never wait on them.
        server.closeAllConnections();
      });
      return closed;
    },
  };

  function formField(x: Exchange, name: string): string | undefined {
    const v = x.rec.json?.[name];
    return Array.isArray(v) ? v[0] : typeof v === 'string' ? v : undefined;
  }

  function notMultipart(x: Exchange) {
    return errorBody(`Invalid Content-Type header (${header(x.req, 'content-type') ?? 'none'}), expected multipart/form-data. (HINT: If you're using curl, you can pass -H 'Content-Type: multipart/form-data')`);
  }
}
