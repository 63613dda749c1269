// An open-loop background load: POSTs sent at a steady `rate` per second, whatever the answers do,
// until SIGTERM (or `duration` s); then waits for the requests in flight and prints one JSON line.
// A child process of run.mjs, used while the chunk timing runs.
//
//   node bench/paced-load.mjs '{"url":...,"rate":3000,"body":"...","headers":{...},"connections":20,"duration":60}'
//
// Not autocannon's overallRate: it sends each second's quota as one burst at the start of the
// second (3,000 requests in ~0.3 s, then nothing), a load that comes and goes under the streams.
// Here a 2 ms tick sends what is due by then, so the load is spread over the whole second.
import http from 'node:http';
import { performance } from 'node:perf_hooks';

const opts = JSON.parse(process.argv[2]);
const target = new URL(opts.url);
const connections = opts.connections ?? 20;
const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
const body = Buffer.from(opts.body);
const headers = { 'content-type': 'application/json', 'content-length': body.length, ...opts.headers };

let sent = 0;
let responses = 0;
let errors = 0;
let non2xx = 0;
let skipped = 0; // due while `connections × 4` requests were already waiting: the target fell behind
let inFlight = 0;
const latencies = [];

function one() {
  sent++;
  inFlight++;
  const t0 = performance.now();
  const req = http.request({ hostname: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent, headers }, (res) => {
    res.resume();
    res.on('end', () => {
      responses++;
      if (res.statusCode < 200 || res.statusCode >= 300) non2xx++;
      latencies.push(performance.now() - t0);
      inFlight--;
    });
  });
  req.on('error', () => {
    errors++;
    inFlight--;
  });
  req.end(body);
}

const started = performance.now();
let due = 0;
const tick = setInterval(() => {
  const shouldHaveSent = Math.floor(((performance.now() - started) / 1000) * opts.rate);
  for (; due < shouldHaveSent; due++) {
    if (inFlight >= connections * 4) skipped++;
    else one();
  }
}, 2);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  clearInterval(tick);
  const seconds = (performance.now() - started) / 1000;
  const deadline = performance.now() + 10_000;
  while (inFlight > 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const pct = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] : null);
  process.stdout.write(`${JSON.stringify({
    rate: opts.rate,
    seconds,
    self_cpu_s: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
    sent,
    responses,
    errors,
    non2xx,
    timeouts: inFlight, // still unanswered 10 s after the end
    skipped,
    rps: sent / seconds, // the pace reached (the answers of the last requests may come after `seconds`)
    latency_ms: { p50: pct(50), p99: pct(99), max: latencies.at(-1) ?? null },
  })}\n`);
}
process.once('SIGTERM', () => void stop());
setTimeout(() => void stop(), (opts.duration ?? 60) * 1000).unref();
