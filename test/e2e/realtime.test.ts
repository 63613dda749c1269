// WebSocket upgrades (the Realtime API) through Keyward: authenticated, key swapped, piped both ways.
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE_KEY, eventually, startKeyward, type KeywardProcess, listenLocal } from './harness.js';

const RT_KEY = 'sk-kw-realtime-0123456789abcdefgh';
const RT_MINI = 'sk-kw-realtime-mini-0123456789abc';

/** An upstream that accepts WebSocket upgrades with the right key and echoes bytes back upper-cased. */
function upgradeUpstream(): Promise<{ url: string; seen: http.IncomingHttpHeaders[]; close(): Promise<void> }> {
  const seen: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((_req, res) => res.end());
  server.on('upgrade', (req, socket) => {
    seen.push(req.headers);
    if (req.headers.authorization === 'Bearer sk-upstream-quota0') {
      const body = JSON.stringify({ error: { message: 'You exceeded your current quota.', type: 'insufficient_quota', param: null, code: 'insufficient_quota' } });
      socket.end(`HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
      return;
    }
    if (req.headers.authorization !== 'Bearer sk-upstream-test') {
      socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nx-request-id: req_rt1\r\n\r\n');
    socket.on('data', (d: Buffer) => socket.write(d.toString().toUpperCase()));
    socket.on('end', () => socket.end());
  });
  return listenLocal(server).then((l) => ({ ...l, seen }));
}

/** Sends a raw upgrade request; resolves with the status line and a function to exchange bytes. */
function upgrade(url: string, headers: Record<string, string>, path = '/v1/realtime?model=gpt-realtime'): Promise<{ status: string; socket: net.Socket; text: () => string }> {
  const { hostname, port } = new URL(url);
  return new Promise((ok, fail) => {
    const socket = net.connect(Number(port), hostname, () => {
      const lines = Object.entries({ host: `${hostname}:${port}`, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers }).map(([k, v]) => `${k}: ${v}`);
      socket.write(`GET ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`);
    });
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      ok({ status: buf.slice(0, buf.indexOf('\r\n')), socket, text: () => buf });
    };
    socket.on('data', onData);
    socket.on('error', fail);
  });
}

let up: Awaited<ReturnType<typeof upgradeUpstream>>;
let kw: KeywardProcess;

beforeAll(async () => {
  up = await upgradeUpstream();
  kw = await startKeyward({
    upstream: up.url,
    keys: [
      { key: ALICE_KEY, name: 'Alice', email: 'alice@example.com' },
      { key: RT_KEY, name: 'Rita', email: 'rita@example.com', endpoints: ['inference', 'realtime'] },
      { key: RT_MINI, name: 'Mia', email: 'mia@example.com', endpoints: ['realtime'], models: ['gpt-realtime-mini*'] },
    ],
  });
});
afterAll(async () => {
  await kw?.stop();
  await up?.close();
});

describe('Realtime WebSocket', () => {
  it('a key with the realtime family is upgraded, its key swapped, bytes piped both ways, one row on close', async () => {
    const { status, socket } = await upgrade(kw.url, {
      // The organization and project a browser client may name as subprotocols are withheld too.
      'sec-websocket-protocol': `realtime, openai-insecure-api-key.${RT_KEY}, openai-organization.org-other, OpenAI-Project.proj_other, openai-beta.realtime-v1`,
    });
    expect(status).toBe('HTTP/1.1 101 Switching Protocols');
    const echoed = await new Promise<string>((ok) => {
      socket.once('data', (d) => ok(d.toString()));
      socket.write('hello');
    });
    expect(echoed).toBe('HELLO');
    const sent = up.seen.at(-1)!;
    expect(sent.authorization).toBe('Bearer sk-upstream-test');
    expect(sent['sec-websocket-protocol']).toBe('realtime, openai-beta.realtime-v1');
    expect(JSON.stringify(sent)).not.toContain(RT_KEY);
    socket.end(); // the close travels through Keyward to the upstream and back
    const row = await eventually(() => kw.rows().find((r) => r.key_email === 'rita@example.com'));
    expect(row).toMatchObject({ status: 101, path: '/v1/realtime', upstream_request_id: 'req_rt1', outcome: 'ok' });
    expect(row.bytes_in).toBeGreaterThan(0);
  });

  it('refuses without a key, with a wrong key, and for a key without the realtime family', async () => {
    const before = up.seen.length;
    expect((await upgrade(kw.url, {})).status).toBe('HTTP/1.1 401 Unauthorized');
    expect((await upgrade(kw.url, { authorization: 'Bearer sk-kw-wrong-00000000000000000' })).status).toBe('HTTP/1.1 401 Unauthorized');
    expect((await upgrade(kw.url, { authorization: `Bearer ${ALICE_KEY}` })).status).toBe('HTTP/1.1 403 Forbidden');
    expect(up.seen.length).toBe(before);
  });

  it('only /v1/realtime, only WebSocket, the model list applies, and a reset before the answer does not crash', async () => {
    const before = up.seen.length;
    expect((await upgrade(kw.url, { authorization: `Bearer ${RT_KEY}` }, '/v1/responses')).status).toBe('HTTP/1.1 404 Not Found');
    expect((await upgrade(kw.url, { authorization: `Bearer ${RT_KEY}`, upgrade: 'h2c' })).status).toBe('HTTP/1.1 400 Bad Request');
    expect((await upgrade(kw.url, { authorization: `Bearer ${RT_MINI}` })).status).toBe('HTTP/1.1 403 Forbidden');
    expect(up.seen.length).toBe(before);
    // A client that resets right after sending its upgrade request.
    const { hostname, port } = new URL(kw.url);
    await new Promise<void>((ok) => {
      const s = net.connect(Number(port), hostname, () => {
        s.write('GET /v1/realtime HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n');
        s.resetAndDestroy();
        ok();
      });
      s.on('error', () => {});
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(kw.proc.exitCode).toBeNull();
    expect((await fetch(kw.url + '/health')).status).toBe(200);
  });

  it("an upstream that refuses the handshake: the client gets a 502 without OpenAI's message", async () => {
    const local = await startKeyward({
      upstream: up.url,
      keys: [{ key: RT_KEY, name: 'Rita', email: 'rita@example.com', endpoints: ['realtime'] }],
      env: { OPENAI_API_KEY: 'sk-upstream-wrong-1234' },
    });
    try {
      const r = await upgrade(local.url, { authorization: `Bearer ${RT_KEY}` });
      expect(r.status).toBe('HTTP/1.1 502 Bad Gateway');
      await new Promise((ok) => r.socket.once('close', ok));
      expect(r.text()).not.toContain('1234');
      const row = await eventually(() => local.rows()[0]);
      // The row's status is what the client got; the upstream's is in the error.
      expect(row).toMatchObject({ outcome: 'upstream_error', status: 502, error: 'upstream refused the WebSocket (401)' });
    } finally {
      await local.stop();
    }
  });

  it('the key pool hears from sessions: a refusal for quota exhausts that key, an opened session counts as served', async () => {
    const local = await startKeyward({
      upstream: up.url,
      keys: [{ key: RT_KEY, name: 'Rita', email: 'rita@example.com', endpoints: ['realtime'] }],
      env: { OPENAI_API_KEYS: 'quota=sk-upstream-quota0,good=sk-upstream-test', STATUS_PAGE: 'public' },
    });
    try {
      const pool = async () =>
        ((await (await fetch(local.url + '/', { headers: { accept: 'application/json' } })).json()) as { upstream_keys: { id: string; state: string; served: number }[] }).upstream_keys;
      const refused = await upgrade(local.url, { authorization: `Bearer ${RT_KEY}` });
      expect(refused.status).toBe('HTTP/1.1 502 Bad Gateway');
      // Reported once the refusal's body is read: poll the status page for it.
      let state: string | undefined;
      for (let i = 0; i < 100 && state !== 'exhausted'; i++) {
        state = (await pool()).find((k) => k.id === 'quota')?.state;
        if (state !== 'exhausted') await new Promise((r) => setTimeout(r, 25));
      }
      expect(state).toBe('exhausted');
      const opened = await upgrade(local.url, { authorization: `Bearer ${RT_KEY}` });
      expect(opened.status).toBe('HTTP/1.1 101 Switching Protocols');
      opened.socket.end();
      expect((await pool()).find((k) => k.id === 'good')).toMatchObject({ state: 'healthy', served: 1 });
    } finally {
      await local.stop();
    }
  });

  it('a session whose key is removed from keys.json while it is open is cut (within seconds), its row saying why', async () => {
    const keys = [{ key: RT_KEY, name: 'Rita', email: 'rita@example.com', endpoints: ['realtime'] }];
    const local = await startKeyward({ upstream: up.url, keys });
    try {
      const { status, socket } = await upgrade(local.url, { authorization: `Bearer ${RT_KEY}` });
      expect(status).toBe('HTTP/1.1 101 Switching Protocols');
      const closed = new Promise<void>((ok) => socket.once('close', () => ok()));
      let open = true;
      void closed.then(() => (open = false));
      await new Promise((r) => setTimeout(r, 200));
      expect(open).toBe(true);
      writeFileSync(local.keysFile, JSON.stringify([{ key: ALICE_KEY, name: 'Alice', email: 'alice@example.com' }]));
      await eventually(() => !open, 10_000);
      const row = await eventually(() => local.rows().find((r) => r.key_email === 'rita@example.com'));
      expect(row).toMatchObject({ status: 101, outcome: 'stream_broken', error: 'the key was removed' });
    } finally {
      await local.stop();
    }
  });

  it('a budgeted key: each session is charged its reservation, and the budget bounds the sessions', async () => {
    const local = await startKeyward({
      upstream: up.url,
      keys: [{ key: RT_KEY, name: 'Rita', email: 'rita@example.com', endpoints: ['realtime'], budget: { daily_usd: 0.15 } }],
    });
    try {
      const first = await upgrade(local.url, { authorization: `Bearer ${RT_KEY}` });
      expect(first.status).toBe('HTTP/1.1 101 Switching Protocols');
      first.socket.end();
      await eventually(() => local.rows().length === 1);
      const second = await upgrade(local.url, { authorization: `Bearer ${RT_KEY}` });
      expect(second.status).toBe('HTTP/1.1 101 Switching Protocols'); // 0.10 spent of 0.15: room left
      second.socket.end();
      await eventually(() => local.rows().length === 2);
      const third = await upgrade(local.url, { authorization: `Bearer ${RT_KEY}` });
      expect(third.status).toBe('HTTP/1.1 429 Too Many Requests'); // 0.20 spent
      expect(local.rows().map((r) => r.reserved_nano_usd)).toEqual([100_000_000, 100_000_000]);
    } finally {
      await local.stop();
    }
  });
});
