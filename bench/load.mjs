// One closed-loop load run with autocannon, as a child process of run.mjs (so the load generator
// has its own event loop and can be pinned to its own CPU). Prints one JSON line of results.
//
//   node bench/load.mjs '{"url":"http://127.0.0.1:PORT/v1/chat/completions","connections":50,
//                         "duration":8,"body":"...","headers":{...}}'
//   "amount": N instead of "duration" sends exactly N requests.
//
// Latency percentiles come from autocannon's per-response times (float ms from process.hrtime),
// not from its histogram, which keeps whole milliseconds only: concurrency-1 figures need µs.
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { percentile } from './stats.mjs';

const opts = JSON.parse(process.argv[2]);
let samples = new Float64Array(1 << 16);
let count = 0;
const statuses = {};

const started = process.hrtime.bigint();
const instance = autocannon({
  url: opts.url,
  method: 'POST',
  connections: opts.connections,
  ...(opts.amount ? { amount: opts.amount } : { duration: opts.duration }),
  headers: { 'content-type': 'application/json', ...opts.headers },
  body: opts.body,
  timeout: opts.timeout ?? 30,
  // autocannon notices the end of an "amount" run only at its next sample tick (default 1 s).
  sampleInt: 100,
});
let firstSentAt = null;
let lastResponseAt = null;
instance.once('start', () => { firstSentAt = performance.now(); });
instance.on('response', (_client, statusCode, _bytes, responseTime) => {
  if (count === samples.length) {
    const bigger = new Float64Array(samples.length * 2);
    bigger.set(samples);
    samples = bigger;
  }
  samples[count++] = responseTime;
  lastResponseAt = performance.now();
  statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
});
// run.mjs stops a run by ending this process group; a plain SIGTERM just ends the run early.
process.once('SIGTERM', () => instance.stop());

const result = await instance;
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const sorted = samples.subarray(0, count).sort();
const pct = (p) => percentile(sorted, p);
let sum = 0;
for (let i = 0; i < count; i++) sum += sorted[i];
const ok = Object.entries(statuses).reduce((n, [code, c]) => n + (code >= 200 && code < 300 ? c : 0), 0);
process.stdout.write(`${JSON.stringify({
  connections: opts.connections,
  seconds,
  self_cpu_s: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
  responses: count,
  ok,
  sent: result.requests.sent,
  errors: result.errors,
  timeouts: result.timeouts,
  non2xx: result.non2xx,
  statuses,
  // Responses per second from the first request to the last response (autocannon's own duration
  // overshoots "amount" runs).
  rps: count && lastResponseAt > firstSentAt ? count / ((lastResponseAt - firstSentAt) / 1000) : 0,
  duration_s: result.duration,
  latency_ms: { p50: pct(50), p90: pct(90), p99: pct(99), max: count ? sorted[count - 1] : null, mean: count ? sum / count : null },
})}\n`);
