// An open-loop background load: POSTs started at a steady `rate` per second, whatever the answers
// do, until SIGTERM (or `duration` s); then waits up to `grace` s (10) for the requests in flight,
// cuts the rest, prints one JSON line and exits. A child process of run.mjs, used while the chunk timing runs.
//
//   node bench/paced-load.mjs '{"url":...,"rate":3000,"body":"...","headers":{...},"connections":20,"duration":150}'
//
// Not autocannon's overallRate: it sends each second's quota as one burst at the start of the
// second (3,000 requests in ~0.3 s, then nothing), a load that comes and goes under the streams.
// Here a 2 ms tick starts what is due by then (~6 requests at 3,000/s). While 4 × `connections`
// requests are outstanding (the target fell behind) the due ones are skipped, not queued.
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { percentile } from './stats.mjs';

const opts = JSON.parse(process.argv[2]);
const target = new URL(opts.url);
const connections = opts.connections ?? 20;
const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
const body = Buffer.from(opts.body);
const headers = { 'content-type': 'application/json', 'content-length': body.length, ...opts.headers };

let started = 0; // requests created (some may wait in the agent's queue for a socket)
let sent = 0; // requests written in full to a socket: these reached the target
let responses = 0; // answers read to their end
let errors = 0; // failed before or while being sent, or the answer was cut
let non2xx = 0;
let skipped = 0;
const outstanding = new Set();
const latencies = [];

function one() {
  started++;
  const t0 = performance.now();
  const req = http.request({ hostname: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent, headers });
  outstanding.add(req);
  let done = false;
  const finish = (ok) => {
    if (done) return;
    done = true;
    outstanding.delete(req);
    if (ok) latencies.push(performance.now() - t0);
    else errors++;
  };
  req.on('finish', () => { sent++; });
  req.on('response', (res) => {
    res.resume();
    res.on('end', () => {
      responses++;
      if (res.statusCode < 200 || res.statusCode >= 300) non2xx++;
      finish(true);
    });
    res.on('close', () => finish(res.complete));
  });
  req.on('error', () => finish(false));
  req.end(body);
}

const t0 = performance.now();
let due = 0;
const tick = setInterval(() => {
  const shouldHaveStarted = Math.floor(((performance.now() - t0) / 1000) * opts.rate);
  for (; due < shouldHaveStarted; due++) {
    if (outstanding.size >= connections * 4) skipped++;
    else one();
  }
}, 2);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  clearInterval(tick);
  const seconds = (performance.now() - t0) / 1000;
  const deadline = performance.now() + (opts.grace ?? 10) * 1000;
  while (outstanding.size > 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  const cut = outstanding.size; // still unanswered after the grace: cut here
  for (const req of [...outstanding]) req.destroy();
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const line = `${JSON.stringify({
    rate: opts.rate,
    seconds,
    self_cpu_s: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
    started,
    sent,
    responses,
    errors,
    non2xx,
    timeouts: cut,
    skipped,
    rps: sent / seconds, // the pace reached: requests that reached the target per second
    latency_ms: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? null },
  })}\n`;
  // Exit once the line is out: a request cut above must not open a socket afterwards.
  process.stdout.write(line, () => process.exit(0));
}
process.once('SIGTERM', () => void stop());
setTimeout(() => void stop(), (opts.duration ?? 150) * 1000).unref();
