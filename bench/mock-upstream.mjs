// A cheap mock of the OpenAI API, the upstream for the benchmark. Plain node:http; every body is
// built once at start-up so the mock costs as little CPU as possible.
//
//   POST /v1/chat/completions            chat.completion JSON with usage
//        "stream": true                  SSE: role chunk, MOCK_CHUNKS content chunks, finish chunk,
//                                        usage chunk when stream_options.include_usage, data: [DONE];
//                                        each chunk is its own write on its own event-loop turn
//   POST /v1/embeddings                  small embedding JSON; the body (up to MOCK_MAX_BODY) is
//                                        counted, not kept; the count is echoed in x-mock-received-bytes
//   anything else                        404 in OpenAI's error shape
//
// Anything without "Authorization: Bearer $MOCK_REQUIRE_KEY" gets OpenAI's 401, so a proxy that
// forgets to swap the client's key for the upstream key shows up as errors, not as speed.
//
// Delay between chunks: MOCK_CHUNK_DELAY_MS (default 0 = setImmediate), or per request with the
// header x-mock-chunk-delay-ms. When the delay is > 0 (or x-mock-stamp: 1 is sent), every chunk
// carries its send time as an SSE comment line, ": sent=<ms>", in the same write as its data line;
// <ms> is performance.timeOrigin + performance.now(), so a client on this machine can measure
// how long the chunk took to reach it.
//
// Env: MOCK_PORT (0 = any free port)  MOCK_HOST (127.0.0.1)  MOCK_CHUNKS (20)  MOCK_CHUNK_DELAY_MS (0)
//      MOCK_MAX_BODY (52428800)  MOCK_REQUIRE_KEY (required)
// Prints one JSON line {"msg":"mock listening","url":...} when ready.
import http from 'node:http';
import { performance } from 'node:perf_hooks';

const PORT = Number(process.env.MOCK_PORT ?? 0);
const HOST = process.env.MOCK_HOST ?? '127.0.0.1';
const CHUNKS = Number(process.env.MOCK_CHUNKS ?? 20);
const DEFAULT_DELAY = Number(process.env.MOCK_CHUNK_DELAY_MS ?? 0);
const MAX_BODY = Number(process.env.MOCK_MAX_BODY ?? 50 * 1024 * 1024);
if (!process.env.MOCK_REQUIRE_KEY) {
  console.error('mock-upstream: set MOCK_REQUIRE_KEY (the upstream key the proxies must send)');
  process.exit(2);
}
const REQUIRED_AUTH = `Bearer ${process.env.MOCK_REQUIRE_KEY}`;
const PARSE_LIMIT = 64 * 1024; // chat bodies up to this are parsed (for "stream"); larger ones only counted

const created = Math.floor(Date.now() / 1000);
const model = 'gpt-4o-mini-2024-07-18';
const tokens = ['Once', ' upon', ' a', ' time', ',', ' a', ' fox', ' ran', ' home', '.'];
const usage = {
  prompt_tokens: 21,
  completion_tokens: CHUNKS,
  total_tokens: 21 + CHUNKS,
  prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
};
const id = 'chatcmpl-benchmock0000000000000000000';

const chatJson = Buffer.from(JSON.stringify({
  id, object: 'chat.completion', created, model,
  choices: [{
    index: 0,
    message: { role: 'assistant', content: Array.from({ length: CHUNKS }, (_, i) => tokens[i % tokens.length]).join(''), refusal: null, annotations: [] },
    logprobs: null, finish_reason: 'stop',
  }],
  usage, service_tier: 'default', system_fingerprint: 'fp_bench',
}));

const sseEvent = (obj) => `data: ${JSON.stringify(obj)}\n\n`;
const streamChunk = (delta, finish) => sseEvent({
  id, object: 'chat.completion.chunk', created, model, service_tier: 'default', system_fingerprint: 'fp_bench',
  choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
});
// The events of one stream, as strings (stamped) and as buffers (unstamped, the fast path).
const bodyEvents = [streamChunk({ role: 'assistant', content: '', refusal: null }, null)];
for (let i = 0; i < CHUNKS; i++) bodyEvents.push(streamChunk({ content: tokens[i % tokens.length] }, null));
bodyEvents.push(streamChunk({}, 'stop'));
const usageEvent = sseEvent({
  id, object: 'chat.completion.chunk', created, model, service_tier: 'default', system_fingerprint: 'fp_bench', choices: [], usage,
});
const doneEvent = 'data: [DONE]\n\n';
const EVENTS_USAGE = [...bodyEvents, usageEvent, doneEvent];
const EVENTS_PLAIN = [...bodyEvents, doneEvent];
const BUFS_USAGE = EVENTS_USAGE.map((s) => Buffer.from(s));
const BUFS_PLAIN = EVENTS_PLAIN.map((s) => Buffer.from(s));

const embeddingJson = Buffer.from(JSON.stringify({
  object: 'list',
  data: [{ object: 'embedding', index: 0, embedding: Array.from({ length: 16 }, (_, i) => Number(Math.cos(i).toFixed(6))) }],
  model: 'text-embedding-3-small',
  usage: { prompt_tokens: 8, total_tokens: 8 },
}));

const openAiError = (status, message, code) =>
  Buffer.from(JSON.stringify({ error: { message, type: 'invalid_request_error', param: null, code } }));
const E401 = openAiError(401, 'Incorrect API key provided.', 'invalid_api_key');
const E404 = openAiError(404, 'Unknown request URL.', 'unknown_url');
const E413 = openAiError(413, 'Request body too large.', 'request_too_large');
const E400 = openAiError(400, 'We could not parse the JSON body of your request.', null);

let requestSeq = 0;
function sendJson(res, status, body, extraHeaders) {
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': body.length,
    'x-request-id': `req_mock_${++requestSeq}`,
    'openai-processing-ms': '1',
    ...extraHeaders,
  });
  res.end(body);
}

function sendStream(res, withUsage, delayMs, stamp) {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'x-request-id': `req_mock_${++requestSeq}`,
    'openai-processing-ms': '1',
  });
  const strings = withUsage ? EVENTS_USAGE : EVENTS_PLAIN;
  const buffers = withUsage ? BUFS_USAGE : BUFS_PLAIN;
  const last = buffers.length - 1;
  let i = 0;
  const writeNext = () => {
    if (res.destroyed) return;
    const part = stamp ? `: sent=${(performance.timeOrigin + performance.now()).toFixed(3)}\n${strings[i]}` : buffers[i];
    if (i === last) return void res.end(part);
    res.write(part);
    i++;
    if (delayMs > 0) setTimeout(writeNext, delayMs);
    else setImmediate(writeNext);
  };
  writeNext();
}

const server = http.createServer((req, res) => {
  if (req.headers.authorization !== REQUIRED_AUTH) {
    req.resume();
    req.on('end', () => sendJson(res, 401, E401));
    return;
  }
  const q = req.url.indexOf('?');
  const path = q < 0 ? req.url : req.url.slice(0, q);
  const isChat = path === '/v1/chat/completions';
  const kept = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (isChat && size <= PARSE_LIMIT) kept.push(chunk);
  });
  req.on('end', () => {
    if (size > MAX_BODY) return sendJson(res, 413, E413);
    if (req.method !== 'POST') return sendJson(res, 404, E404);
    const received = { 'x-mock-received-bytes': String(size) };
    if (path === '/v1/embeddings') return sendJson(res, 200, embeddingJson, received);
    if (!isChat) return sendJson(res, 404, E404);
    let body = null;
    if (size <= PARSE_LIMIT) {
      try {
        body = JSON.parse(kept.length === 1 ? kept[0] : Buffer.concat(kept));
      } catch {
        return sendJson(res, 400, E400);
      }
    }
    if (body?.stream !== true) return sendJson(res, 200, chatJson, received);
    const header = req.headers['x-mock-chunk-delay-ms'];
    const delayMs = header !== undefined ? Number(header) || 0 : DEFAULT_DELAY;
    sendStream(res, body.stream_options?.include_usage === true, delayMs, delayMs > 0 || req.headers['x-mock-stamp'] === '1');
  });
});
// Proxies pool their upstream connections: never be the side that closes an idle one mid-run.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.requestTimeout = 300_000;
server.listen(PORT, HOST, () => {
  const { port } = server.address();
  console.log(JSON.stringify({ msg: 'mock listening', url: `http://${HOST}:${port}`, chunks: CHUNKS, delay_ms: DEFAULT_DELAY }));
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
