// bench/paced-load.mjs: its counts feed `npm run bench`'s metering check (every request that reached
// Keyward must leave a usage row), so "sent" must be exactly the requests a server received.
// Counts only: nothing here depends on how fast the machine is.
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';

const SCRIPT = new URL('../../bench/paced-load.mjs', import.meta.url).pathname;

interface Result {
  started: number;
  sent: number;
  responses: number;
  errors: number;
  non2xx: number;
  timeouts: number;
  skipped: number;
}

/**
 * Runs paced-load against `port` for `ms`, then SIGTERM (1 s of grace for answers in flight);
 * resolves with its exit code and result. With `until`, the time counts from when `until()` first
 * holds (a busy machine may take a while to start the child and reach that state).
 */
function run(port: number, ms: number, until?: () => boolean): Promise<{ code: number | null; result: Result }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SCRIPT, JSON.stringify({ url: `http://127.0.0.1:${port}/v1/chat/completions`, rate: 400, grace: 1, body: '{"model":"m"}', headers: {} })]);
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => { out += s; });
    let timer: NodeJS.Timeout | undefined;
    const stopIn = () => (timer = setTimeout(() => child.kill('SIGTERM'), ms));
    const poll = until && setInterval(() => {
      if (!until()) return;
      clearInterval(poll);
      stopIn();
    }, 10);
    if (!until) stopIn();
    child.on('error', reject);
    child.on('exit', (code) => {
      clearInterval(poll);
      clearTimeout(timer);
      try {
        resolve({ code, result: JSON.parse(out.trim().split('\n').at(-1)!) as Result });
      } catch (err) {
        reject(err);
      }
    });
  });
}

const servers: http.Server[] = [];
async function serve(handler: http.RequestListener): Promise<number> {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
});

describe('bench/paced-load.mjs', () => {
  it('counts as sent exactly the requests the server received, all answered', async () => {
    let received = 0;
    const port = await serve((req, res) => {
      req.resume();
      req.on('end', () => {
        received++;
        res.end('{}');
      });
    });
    const { code, result } = await run(port, 500);
    expect(code).toBe(0);
    expect(result.sent).toBeGreaterThan(0);
    expect(result.sent).toBe(received);
    expect(result.responses).toBe(received);
    expect(result.errors + result.timeouts + result.skipped).toBe(0);
  });

  it('does not count a request that never connected as sent', async () => {
    const port = await serve(() => {});
    for (const s of servers.splice(0)) await new Promise((resolve) => s.close(resolve)); // nothing listens now
    const { code, result } = await run(port, 300);
    expect(code).toBe(0);
    expect(result.started).toBeGreaterThan(0);
    expect(result.sent).toBe(0);
    expect(result.errors).toBe(result.started);
  });

  it('counts an answer cut mid-body as an error, not a response', async () => {
    const port = await serve((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-length': '100' });
        res.write('{');
        setImmediate(() => res.destroy());
      });
    });
    const { result } = await run(port, 300);
    expect(result.sent).toBeGreaterThan(0);
    expect(result.responses).toBe(0);
    expect(result.errors).toBe(result.started);
  });

  it('exits after cutting what a server never answers, counting it as timed out', async () => {
    let received = 0;
    const port = await serve((req) => {
      req.resume();
      req.on('end', () => { received++; });
    });
    // Stopped 300 ms after the first 20 (its connections) arrived: 120 more are due by then, and
    // past 80 outstanding they are skipped.
    const { code, result } = await run(port, 300, () => received >= 20);
    expect(code).toBe(0);
    expect(result.responses).toBe(0);
    expect(result.sent).toBe(received);
    // At most 4 × 20 outstanding; the rest skipped, none left to open a socket after the result.
    expect(result.timeouts).toBe(result.started);
    expect(result.started).toBeLessThanOrEqual(80);
    expect(result.skipped).toBeGreaterThan(0);
  });
});
