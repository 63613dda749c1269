// Large request bodies: N sequential POSTs of an MB-sized JSON embeddings request (an array of
// strings, as a real batch would be) to /v1/embeddings. Each is timed from the first byte sent to
// the last byte of the answer. A child process of run.mjs; prints one JSON line.
//
//   node bench/big-post.mjs '{"url":"http://127.0.0.1:PORT/v1/embeddings","headers":{...},"n":10,"mb":20}'
import http from 'node:http';

const opts = JSON.parse(process.argv[2]);
const target = new URL(opts.url);
const size = Math.round(opts.mb * 1024 * 1024);
const item = JSON.stringify('the quick brown fox jumps over the lazy dog '.repeat(24).slice(0, 1000));
const head = '{"model":"text-embedding-3-small","encoding_format":"float","input":[';
const count = Math.max(1, Math.floor((size - head.length - 2) / (item.length + 1)));
let text = head + new Array(count).fill(item).join(',') + ']';
text += ' '.repeat(Math.max(0, size - text.length - 1)) + '}';
const body = Buffer.from(text);
const agent = new http.Agent({ keepAlive: true });

function post() {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
    const req = http.request({
      hostname: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent, timeout: 120_000,
      headers: { 'content-type': 'application/json', 'content-length': body.length, ...opts.headers },
    }, (res) => {
      let got = 0;
      res.on('data', (c) => { got += c.length; });
      res.on('end', () => resolve({
        ms: ms(), status: res.statusCode, response_bytes: got,
        upstream_got: res.headers['x-mock-received-bytes'] === undefined ? null : Number(res.headers['x-mock-received-bytes']),
      }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ ms: ms(), status: 0, error: String(err) }));
    req.end(body);
  });
}

const started = process.hrtime.bigint();
const runs = [];
for (let i = 0; i < opts.n; i++) runs.push(await post());
agent.destroy();
process.stdout.write(`${JSON.stringify({
  seconds: Number(process.hrtime.bigint() - started) / 1e9,
  self_cpu_s: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
  sent_bytes: body.length,
  n: opts.n,
  ok: runs.filter((r) => r.status === 200).length,
  statuses: [...new Set(runs.map((r) => r.status))],
  upstream_got: [...new Set(runs.map((r) => r.upstream_got))],
  errors: [...new Set(runs.filter((r) => r.error).map((r) => r.error))],
  ms: runs.map((r) => Math.round(r.ms * 10) / 10),
})}\n`);
