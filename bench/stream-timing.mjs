// Does a proxy hold back stream chunks? Runs N chat streams through it, the mock waiting delay_ms
// between chunks (x-mock-chunk-delay-ms) and stamping each chunk with its send time (": sent=<ms>",
// performance.timeOrigin + performance.now() in the mock). For every event this client takes the
// arrival time of the read that completed it, on the same clock, and records arrival − sent.
// A child process of run.mjs; prints one JSON line.
//
// Two things keep the rig's own delays out of the figure (on a 2-core VM they reached 5–9 ms with
// no proxy at all, all of it at the first and last event of a stream):
// - The streams are staggered: worker k of W (the streams at a time) starts k·delay_ms/W after
//   the first, so the mock does not send every stream's chunk in the same millisecond. In
//   lockstep, the client (pinned with the mock) read the fifth stream's chunk only after it had
//   ended four streams and started four new requests, ~1.5 ms each: a delay of the rig.
// - `warmup` streams (default: one per worker) run first and are not measured: the client's own
//   first requests run cold (JIT, connection set-up).
// - Arrival is when this process read the bytes from the socket (a 'data' listener put before the
//   HTTP parser's), not when the response emitted them: the first event's delay no longer counts
//   the client's own work on the response head (its maxima with no proxy: 0.4–1.2 → 0.3–0.5 ms).
//
//   node bench/stream-timing.mjs '{"url":...,"headers":{...},"streams":10,"concurrency":5,"delay_ms":50,"body":"..."}'
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { percentile } from './stats.mjs';

const opts = JSON.parse(process.argv[2]);
const target = new URL(opts.url);
const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
const body = Buffer.from(opts.body);
const ARRIVED = Symbol('arrived'); // on a socket: when its last bytes arrived, on the clock above
const arrivalTimed = new WeakSet(); // keep-alive sockets serve many streams: one listener each
function timeArrivals(socket) {
  if (arrivalTimed.has(socket)) return;
  arrivalTimed.add(socket);
  socket.prependListener('data', () => {
    socket[ARRIVED] = performance.timeOrigin + performance.now();
  });
}
const delays = [];
const byIndex = []; // worst delay of the i-th event over all streams (0: the first, sent with the headers)
const problems = [];
let events = 0;
let unstamped = 0;

function oneStream() {
  return new Promise((resolve) => {
    const req = http.request({
      hostname: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent,
      headers: { 'content-type': 'application/json', 'content-length': body.length, 'x-mock-chunk-delay-ms': String(opts.delay_ms), ...opts.headers },
    }, (res) => {
      if (res.statusCode !== 200) problems.push(`status ${res.statusCode}`);
      res.setEncoding('utf8');
      let pending = '';
      let sawDone = false;
      let index = 0;
      res.on('data', (text) => {
        const now = res.socket?.[ARRIVED] ?? performance.timeOrigin + performance.now();
        pending += text;
        let end;
        while ((end = pending.indexOf('\n\n')) >= 0) {
          const event = pending.slice(0, end);
          pending = pending.slice(end + 2);
          events++;
          if (event.includes('data: [DONE]')) sawDone = true;
          const m = /^: sent=([\d.]+)$/m.exec(event);
          if (m) {
            const delay = now - Number(m[1]);
            delays.push(delay);
            byIndex[index] = Math.max(byIndex[index] ?? 0, delay);
          } else {
            unstamped++;
          }
          index++;
        }
      });
      res.on('end', () => {
        if (!sawDone) problems.push('stream ended without [DONE]');
        resolve();
      });
      res.on('error', (err) => {
        problems.push(String(err));
        resolve();
      });
    });
    req.on('socket', timeArrivals);
    req.on('error', (err) => {
      problems.push(String(err));
      resolve();
    });
    req.end(body);
  });
}

const workers = Math.min(opts.concurrency, opts.streams);
const warmup = opts.warmup ?? workers;
let started = 0;
async function worker(k, total) {
  await new Promise((resolve) => setTimeout(resolve, (k * opts.delay_ms) / workers));
  while (started < total) {
    started++;
    await oneStream();
  }
}
async function run(total) {
  started = 0;
  await Promise.all(Array.from({ length: workers }, (_, k) => worker(k, total)));
}
if (warmup > 0) {
  await run(warmup);
  delays.length = 0;
  byIndex.length = 0;
  problems.length = 0;
  events = 0;
  unstamped = 0;
}
const t0 = performance.now();
await run(opts.streams);
agent.destroy();
const sorted = delays.sort((a, b) => a - b);
const pct = (p) => percentile(sorted, p);
process.stdout.write(`${JSON.stringify({
  streams: opts.streams,
  warmup,
  delay_ms: opts.delay_ms,
  seconds: (performance.now() - t0) / 1000,
  self_cpu_s: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
  events,
  stamped: sorted.length,
  unstamped,
  problems: [...new Set(problems)],
  max_by_event_ms: byIndex.map((d) => Math.round(d * 1000) / 1000),
  delays_ms: sorted.map((d) => Math.round(d * 1000) / 1000),
  chunk_delay_ms: { p50: pct(50), p99: pct(99), max: sorted.at(-1) ?? null, mean: sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : null },
})}\n`);
