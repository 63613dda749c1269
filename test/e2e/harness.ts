// Starts the real Keyward process (the built dist/src/server.js) in a temp folder, against a mock
// OpenAI on 127.0.0.1, the way a user runs it. Each test file gets its own folder, port and database.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';

export const ROOT = resolve(import.meta.dirname, '../..');
export const SERVER_JS = join(ROOT, 'dist/src/server.js');
export const UPSTREAM_KEY = 'sk-upstream-test';

export interface KeywardProcess {
  url: string;
  baseURL: string;
  dir: string;
  keysFile: string;
  proc: ChildProcess;
  /** Everything the process printed, stdout and stderr. */
  output(): string;
  /** Rows of the usage table, oldest first. */
  rows(): Record<string, any>[];
  /** Parsed lines of access.log. */
  accessLog(): Record<string, any>[];
  /** Sends a signal and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'keyward-test-'));
}

export async function startKeyward(opts: {
  upstream: string;
  keys?: unknown[] | string;
  env?: Record<string, string>;
  config?: Record<string, unknown>;
  dir?: string;
}): Promise<KeywardProcess> {
  const dir = opts.dir ?? tempDir();
  const keysFile = join(dir, 'keys.json');
  if (opts.keys !== undefined) {
    writeFileSync(keysFile, typeof opts.keys === 'string' ? opts.keys : JSON.stringify(opts.keys, null, 2));
  }
  if (opts.config) writeFileSync(join(dir, 'config.json'), JSON.stringify(opts.config, null, 2));
  const proc = spawn(process.execPath, [SERVER_JS], {
    cwd: dir,
    env: {
      PATH: process.env.PATH ?? '',
      OPENAI_API_KEY: UPSTREAM_KEY,
      OPENAI_BASE_URL: opts.upstream,
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // A test that times out never reaches its own stop(): test/globalSetup.ts kills what is left.
  if (process.env.KEYWARD_TEST_PIDS) appendFileSync(process.env.KEYWARD_TEST_PIDS, `${proc.pid}\n`);
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const url = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`Keyward did not start:\n${out}`)), 15_000);
    const check = () => {
      const m = /"url":"(http:\/\/[^"]+)\/v1"/.exec(out);
      if (m) {
        clearTimeout(timer);
        ok(m[1]!);
      }
    };
    proc.stdout!.on('data', check);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`Keyward exited with ${code}:\n${out}`));
    });
  });
  const dbFile = join(dir, 'usage.sqlite');
  return {
    url,
    baseURL: `${url}/v1`,
    dir,
    keysFile,
    proc,
    output: () => out,
    rows: () => {
      if (!existsSync(dbFile)) return [];
      const db = new Database(dbFile, { readonly: true });
      try {
        return db.prepare('SELECT *, cost_usd FROM usage ORDER BY id').all() as Record<string, any>[];
      } finally {
        db.close();
      }
    },
    accessLog: () => {
      const file = join(dir, 'access.log');
      if (!existsSync(file)) return [];
      return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    },
    stop: (signal = 'SIGTERM') =>
      new Promise((ok) => {
        if (proc.exitCode !== null) return ok(proc.exitCode);
        proc.once('exit', (code) => ok(code));
        proc.kill(signal);
      }),
  };
}

/** Polls until check() returns a truthy value (rows are written a moment after the response ends). */
export async function eventually<T>(check: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let last: unknown;
    try {
      const v = check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw last instanceof Error ? last : new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const ALICE_KEY = 'sk-kw-alice-0123456789abcdefghij';
export const BOB_KEY = 'sk-kw-bob-0123456789abcdefghijkl';
export const KEYS = [
  { key: ALICE_KEY, name: 'Alice', email: 'alice@example.com' },
  { key: BOB_KEY, name: 'Bob', email: 'bob@example.com' },
];

/** Starts a test's own upstream server on 127.0.0.1 (a random port); close() also cuts open sockets. */
export function listenLocal(server: Server): Promise<{ url: string; close(): Promise<void> }> {
  return new Promise((ok) =>
    server.listen(0, '127.0.0.1', () =>
      ok({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        close: () => new Promise((done) => (server.closeAllConnections(), server.close(() => done()))),
      }),
    ),
  );
}
