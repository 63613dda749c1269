// keys.json as the running server sees it: hot reload, bad files, disabled and expired keys.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/keys/hash.js';
import { startMockOpenAI, type MockOpenAI } from '../mock-openai/server.js';
import { ALICE_KEY, BOB_KEY, KEYS, eventually, startKeyward, tempDir, type KeywardProcess } from './harness.js';

let mock: MockOpenAI;
let kw: KeywardProcess;

beforeAll(async () => {
  mock = await startMockOpenAI();
  kw = await startKeyward({ upstream: mock.url, keys: KEYS });
});
afterAll(async () => {
  await kw?.stop();
  await mock?.close();
});

async function status(key: string): Promise<{ status: number; code?: string }> {
  const res = await fetch(kw.baseURL + '/models', { headers: { authorization: `Bearer ${key}` } });
  const body = (await res.json()) as { error?: { code: string } };
  return { status: res.status, code: body.error?.code };
}

/** Waits until the server answers `key` with the expected status (reload is asynchronous). */
async function until(key: string, expected: number, withinMs = 1000): Promise<{ status: number; code?: string }> {
  const started = Date.now();
  for (;;) {
    const r = await status(key);
    if (r.status === expected || Date.now() - started > withinMs) return r;
    await new Promise((ok) => setTimeout(ok, 20));
  }
}

const CAROL = 'sk-kw-carol-0123456789abcdefghijk';

describe('keys.json hot reload', () => {
  it('a key added to the file works within a second, without a restart', async () => {
    expect((await status(CAROL)).status).toBe(401);
    writeFileSync(kw.keysFile, JSON.stringify([...KEYS, { key: CAROL, name: 'Carol', email: 'carol@example.com' }], null, 2));
    expect((await until(CAROL, 200)).status).toBe(200);
  });

  it('an editor that writes a temp file and renames it over keys.json is seen', async () => {
    const tmp = join(kw.dir, '.keys.json.swp');
    writeFileSync(tmp, JSON.stringify([...KEYS, { key: CAROL, name: 'Carol', email: 'carol@example.com', disabled: true }], null, 2));
    renameSync(tmp, kw.keysFile);
    const r = await until(CAROL, 401);
    expect(r).toEqual({ status: 401, code: 'key_disabled' });
  });

  it('expired keys get key_expired; key_sha256 entries work', async () => {
    writeFileSync(
      kw.keysFile,
      JSON.stringify([
        { key: ALICE_KEY, name: 'Alice', email: 'alice@example.com', expires_at: '2020-01-01T00:00:00Z' },
        { key_sha256: sha256Hex(BOB_KEY), name: 'Bob', email: 'bob@example.com', expires_at: '2999-01-01' },
      ]),
    );
    const r = await until(ALICE_KEY, 401);
    expect(r).toEqual({ status: 401, code: 'key_expired' });
    expect((await status(BOB_KEY)).status).toBe(200);
  });

  it('a half-written or invalid file never locks anyone out, and the problem is logged with line and field', async () => {
    writeFileSync(kw.keysFile, JSON.stringify(KEYS, null, 2));
    expect((await until(ALICE_KEY, 200)).status).toBe(200);

    writeFileSync(kw.keysFile, '[\n  { "key": "sk-kw-alice-0123456789abcdefghij", "name": "Al'); // half-written
    await eventually(() => kw.output().includes('keys file rejected'), 2000);
    expect((await status(ALICE_KEY)).status).toBe(200);

    const invalid = JSON.stringify([...KEYS, { key: CAROL, name: 'Carol', email: 'not-an-email' }], null, 2);
    writeFileSync(kw.keysFile, invalid);
    await eventually(() => /line 12, entry 3 \(\\"Carol\\"\), field \\"email\\"/.test(kw.output()), 2000);
    expect((await status(ALICE_KEY)).status).toBe(200);
    expect((await status(CAROL)).status).toBe(401);

    writeFileSync(kw.keysFile, JSON.stringify([...KEYS, { key: ALICE_KEY, name: 'Alice again', email: 'a2@example.com' }]));
    await eventually(() => kw.output().includes('have the same key'), 2000);
    expect((await status(BOB_KEY)).status).toBe(200);
  });

  it('no key, digest or upstream key ever appears in the server output or the access log', async () => {
    const everything = kw.output() + JSON.stringify(kw.accessLog());
    for (const secret of [ALICE_KEY, BOB_KEY, CAROL, 'sk-upstream-test', sha256Hex(ALICE_KEY)]) {
      expect(everything).not.toContain(secret);
    }
  });

  it('an invalid keys.json at start-up stops the server with one line naming the entry and field', async () => {
    const bad = JSON.stringify([{ key: CAROL, name: 'Carol', email: 'nope' }], null, 2);
    const err = await startKeyward({ upstream: mock.url, keys: bad }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toContain('exited with 1');
    expect(err?.message).toMatch(/keyward: cannot start: keys\.json: line 2, entry 1 \("Carol"\), field "email"/);
    expect(err?.message).not.toContain(CAROL);
  });

  it('a keys file that cannot be read at start-up (a folder here) stops the server, naming it', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'keys.json'));
    const err = await startKeyward({ upstream: mock.url, dir }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toContain('exited with 1');
    expect(err?.message).toMatch(/keyward: cannot start: cannot read .*keys\.json: EISDIR/);
  });
});
