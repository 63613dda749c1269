// The two command-line tools as a user runs them: the built dist/scripts/*.js, in a temp folder,
// with a clean environment (KEYS_FILE / USAGE_DB or a config.json there).
import { afterAll, beforeAll, describe, it, expect } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseKeyFile } from '../../src/keys/keyFile.js';
import { SqliteUsageStore } from '../../src/storage/sqlite/sqliteUsageStore.js';
import type { UsageRow } from '../../src/storage/usageStore.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CREATE_JS = join(ROOT, 'dist/scripts/create.js');
const USAGE_JS = join(ROOT, 'dist/scripts/usage.js');
const KEY_RE = /^sk-kw-[A-Za-z0-9_-]{43}$/;

const sha = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'keyward-cli-'));
  dirs.push(dir);
  return dir;
}

beforeAll(() => {
  for (const f of [CREATE_JS, USAGE_JS]) if (!existsSync(f)) throw new Error(`${f} is missing: run \`npm run -s build\` first`);
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Runs a built CLI with only PATH and the given variables in its environment. */
function run(script: string, args: string[], cwd: string, env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [script, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const create = (args: string[], cwd: string, env?: Record<string, string>) => run(CREATE_JS, args, cwd, env);

const started: ReturnType<typeof spawn>[] = [];
afterAll(() => {
  for (const child of started) child.kill(); // none is left running, even after a failed test
});

/** Starts a built CLI without waiting for it: for runs at the same time. */
function start(script: string, args: string[], cwd: string) {
  const child = spawn(process.execPath, [script, ...args], { cwd, env: { PATH: process.env.PATH ?? '' } });
  started.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const done = new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (status) => resolve({ status, stdout, stderr })),
  );
  return { child, done };
}
const usage = (args: string[], cwd: string, env?: Record<string, string>) => run(USAGE_JS, args, cwd, env);

/** Files left in a folder other than the expected ones (temp files of an atomic write, say). */
const strays = (dir: string, expected: string[]) => readdirSync(dir).filter((f) => !expected.includes(f));

// ---------------------------------------------------------------------------------------------
// npm run create
// ---------------------------------------------------------------------------------------------

/** The key a successful run printed; asserts it is printed exactly once. */
function printedKey(stdout: string): string {
  const found = stdout.match(/sk-kw-[A-Za-z0-9_-]+/g) ?? [];
  expect(found).toHaveLength(1);
  const key = found[0]!;
  expect(key).toMatch(KEY_RE);
  return key;
}

function keysIn(path: string): Record<string, unknown>[] {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>[];
}

describe('npm run create', () => {
  it('prints a new key once; keys.json gets only its SHA-256, owner-only, no temp file left', () => {
    const cwd = tempDir();
    const before = Date.now();
    const r = create(['Ann Lee', 'Ann.Lee@Example.com'], cwd);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const key = printedKey(r.stdout);
    const digest = sha(key);
    expect(r.stdout).toContain(`Created a key for Ann Lee <ann.lee@example.com> (id ${digest.slice(0, 12)})`);
    expect(r.stdout).toContain(join(cwd, 'keys.json'));

    const path = join(cwd, 'keys.json');
    const text = readFileSync(path, 'utf8');
    expect(text).not.toContain(key);
    expect(text).not.toContain(key.slice(6, 20));
    const entries = keysIn(path);
    expect(entries).toHaveLength(1);
    const entry = entries[0]!;
    expect(Object.keys(entry)).toEqual(['name', 'email', 'key_sha256', 'created_at']);
    expect(entry).toMatchObject({ name: 'Ann Lee', email: 'ann.lee@example.com', key_sha256: digest });
    const created = Date.parse(entry.created_at as string);
    expect(created).toBeGreaterThanOrEqual(before - 1000);
    expect(created).toBeLessThanOrEqual(Date.now() + 1000);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(strays(cwd, ['keys.json'])).toEqual([]);
    // The file is one the server accepts, and the printed key is the one it knows.
    expect(parseKeyFile(text, 'keys.json').map((k) => k.digest)).toEqual([digest]);
  });

  it('two keys are never the same', () => {
    const cwd = tempDir();
    const a = printedKey(create(['A', 'a@example.com'], cwd).stdout);
    const b = printedKey(create(['B', 'b@example.com'], cwd).stdout);
    expect(a).not.toBe(b);
    expect(keysIn(join(cwd, 'keys.json')).map((e) => e.key_sha256)).toEqual([sha(a), sha(b)]);
  });

  it.each([
    ['no arguments', []],
    ['a name only', ['Ann']],
    ['a blank name', ['   ', 'ann@example.com']],
    ['an empty email', ['Ann', '']],
  ])('%s: exit 1, says both are required, writes nothing', (_what, args) => {
    const cwd = tempDir();
    const r = create(args, cwd);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('create: a name and an email are both required');
    expect(r.stderr).toContain('usage: npm run create -- <name> <email>');
    expect(r.stdout).not.toMatch(/sk-kw-/);
    expect(readdirSync(cwd)).toEqual([]);
  });

  it.each(['ann', 'ann@', 'ann at example.com', '@example.com'])('invalid email %j: exit 1, names it, writes nothing', (email) => {
    const cwd = tempDir();
    const r = create(['Ann', email], cwd);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`create: "${email}" is not a valid email address\n`);
    expect(r.stdout).toBe('');
    expect(readdirSync(cwd)).toEqual([]);
  });

  it('extra arguments (an unquoted name) are refused', () => {
    const cwd = tempDir();
    const r = create(['Ann', 'Lee', 'ann@example.com'], cwd);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^create: /);
    expect(readdirSync(cwd)).toEqual([]);
  });

  describe('with keys already there', () => {
    const tab = (n: number) => '\t'.repeat(n);
    const BOB_KEY = 'sk-kw-bob-0123456789abcdefghijkl';
    // Tab-indented, with a seed-format key: both must survive byte for byte.
    const EXISTING = [
      '[',
      `${tab(1)}{`,
      `${tab(2)}"key": "${BOB_KEY}",`,
      `${tab(2)}"name": "Bob",`,
      `${tab(2)}"email": "Bob@Example.com"`,
      `${tab(1)}},`,
      `${tab(1)}{ "key_sha256": "${sha('sk-kw-cy-old-0123456789abcdef')}", "name": "Cy", "email": "cy@example.com", "disabled": true },`,
      `${tab(1)}{ "key_sha256": "${sha('sk-kw-cy-older-0123456789abcdef')}", "name": "Cy", "email": "cy@example.com", "expires_at": "2020-01-31" }`,
      ']',
      '',
    ].join('\n');

    function folder(): { cwd: string; path: string } {
      const cwd = tempDir();
      const path = join(cwd, 'keys.json');
      writeFileSync(path, EXISTING);
      return { cwd, path };
    }

    it('a second active key for one email is refused (any case), file untouched', () => {
      const { cwd, path } = folder();
      const r = create(['Bobby', 'BOB@example.com'], cwd);
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(
        `create: bob@example.com already has an active key (id ${sha(BOB_KEY).slice(0, 12)}); use --force to add another\n`,
      );
      expect(r.stdout).toBe('');
      expect(readFileSync(path, 'utf8')).toBe(EXISTING);
      expect(strays(cwd, ['keys.json'])).toEqual([]);
    });

    it('--force adds it anyway, keeping every other byte', () => {
      const { cwd, path } = folder();
      const r = create(['Bob', 'bob@example.com', '--force'], cwd);
      expect(r.status).toBe(0);
      const key = printedKey(r.stdout);
      const text = readFileSync(path, 'utf8');
      expect(text.startsWith(EXISTING.slice(0, EXISTING.lastIndexOf('}') + 1))).toBe(true);
      expect(text).toMatch(/\n\t\{\n\t\t"name": "Bob",\n\t\t"email": "bob@example.com",\n\t\t"key_sha256": "[0-9a-f]{64}",\n\t\t"created_at": "[^"]+"\n\t\}\n\]\n$/);
      const records = parseKeyFile(text, 'keys.json');
      expect(records.filter((k) => k.email === 'bob@example.com').map((k) => k.digest)).toEqual([sha(BOB_KEY), sha(key)]);
      expect(strays(cwd, ['keys.json'])).toEqual([]);
    });

    it('a disabled or expired key of the same email does not block a new one', () => {
      const { cwd, path } = folder();
      const r = create(['Cy', 'cy@example.com'], cwd);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const key = printedKey(r.stdout);
      const text = readFileSync(path, 'utf8');
      expect(text.startsWith(EXISTING.slice(0, EXISTING.lastIndexOf('}') + 1))).toBe(true);
      const entries = keysIn(path);
      expect(entries).toHaveLength(4);
      expect(entries[3]).toMatchObject({ name: 'Cy', email: 'cy@example.com', key_sha256: sha(key) });
      expect(strays(cwd, ['keys.json'])).toEqual([]);
    });

    it('a key expiring later still blocks; --expires sets an expiry and refuses a past one', () => {
      const cwd = tempDir();
      const first = create(['Di', 'di@example.com', '--expires', '2099-01-31'], cwd);
      expect(first.status).toBe(0);
      expect(keysIn(join(cwd, 'keys.json'))[0]).toMatchObject({ expires_at: '2099-01-31T00:00:00.000Z' });
      const again = create(['Di', 'di@example.com'], cwd);
      expect(again.status).toBe(1);
      expect(again.stderr).toContain('di@example.com already has an active key');
      const impossible = create(['Di', 'di@example.com', '--force', '--expires', '2099-02-30'], cwd);
      expect(impossible.status).toBe(1);
      expect(impossible.stderr).toBe('create: --expires must be an ISO date or time that exists, got "2099-02-30"\n');
      const past = create(['Di', 'di@example.com', '--force', '--expires', '2020-01-01'], cwd);
      expect(past.status).toBe(1);
      expect(past.stderr).toBe('create: --expires 2020-01-01 is already past\n');
      expect(keysIn(join(cwd, 'keys.json'))).toHaveLength(1);
    });

    it('an invalid keys.json is reported (line, field) and left alone', () => {
      const cwd = tempDir();
      const path = join(cwd, 'keys.json');
      const broken = EXISTING.replace('"Bob@Example.com"', '"Bob at Example.com"');
      writeFileSync(path, broken);
      const r = create(['Eve', 'eve@example.com'], cwd);
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(
        'create: keys.json: line 2, entry 1 ("Bob"), field "email": Invalid email address\nFix keys.json first; nothing was written.\n',
      );
      expect(r.stdout).toBe('');
      expect(readFileSync(path, 'utf8')).toBe(broken);
      expect(strays(cwd, ['keys.json'])).toEqual([]);
    });
  });

  it('KEYS_FILE (relative to the working folder) and config.json choose the file; the environment wins', () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'config.json'), JSON.stringify({ _comment: 'no upstream key needed here', KEYS_FILE: 'team.json' }));
    expect(create(['A', 'a@example.com'], cwd).status).toBe(0);
    expect(keysIn(join(cwd, 'team.json')).map((e) => e.email)).toEqual(['a@example.com']);

    expect(create(['B', 'b@example.com'], cwd, { KEYS_FILE: 'other.json' }).status).toBe(0);
    expect(keysIn(join(cwd, 'other.json')).map((e) => e.email)).toEqual(['b@example.com']);
    expect(readdirSync(cwd).sort()).toEqual(['config.json', 'other.json', 'team.json']);
  });

  it('runs at the same time take turns: every key lands in keys.json, no lock or temp file left', async () => {
    const cwd = tempDir();
    const runs = Array.from({ length: 6 }, (_, i) => start(CREATE_JS, [`User ${i}`, `user${i}@example.com`], cwd).done);
    const results = await Promise.all(runs);
    for (const r of results) {
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    }
    const keys = keysIn(join(cwd, 'keys.json'));
    expect(keys.map((k) => k.email).sort()).toEqual(Array.from({ length: 6 }, (_, i) => `user${i}@example.com`).sort());
    for (const r of results) expect(keys.map((k) => k.key_sha256)).toContain(sha(printedKey(r.stdout)));
    expect(strays(cwd, ['keys.json'])).toEqual([]);
  }, 30_000);

  it('runs at the same time for one person: one key, the others are refused', async () => {
    const cwd = tempDir();
    const results = await Promise.all(Array.from({ length: 5 }, () => start(CREATE_JS, ['Eve', 'eve@example.com'], cwd).done));
    expect(results.filter((r) => r.status === 0)).toHaveLength(1);
    for (const r of results.filter((x) => x.status !== 0)) {
      expect(r.stderr).toMatch(/^create: eve@example\.com already has an active key \(id [0-9a-f]{12}\); use --force to add another\n$/);
    }
    expect(keysIn(join(cwd, 'keys.json'))).toHaveLength(1);
  }, 30_000);

  it('waits while another process holds keys.json.lock, then writes', async () => {
    const cwd = tempDir();
    const path = join(cwd, 'keys.json');
    writeFileSync(`${path}.lock`, `${process.pid}\n`); // this test process: alive, so never taken over
    const run = start(CREATE_JS, ['Finn', 'finn@example.com'], cwd);
    let exited = false;
    void run.done.then(() => (exited = true));
    await new Promise((r) => setTimeout(r, 3000)); // ample for the child to start and reach the lock
    expect(exited).toBe(false);
    expect(existsSync(path)).toBe(false);
    rmSync(`${path}.lock`);
    const r = await run.done;
    expect(r.status).toBe(0);
    expect(keysIn(path).map((k) => k.email)).toEqual(['finn@example.com']);
    expect(strays(cwd, ['keys.json'])).toEqual([]);
  }, 30_000);

  it('a malformed config.json stops it with one line', () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'config.json'), '{ "KEYS_FILE": "team.json", }');
    const r = create(['A', 'a@example.com'], cwd);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^create: \S+config\.json is not valid JSON: line 1: [^\n]+\n$/);
    expect(readdirSync(cwd)).toEqual(['config.json']);
  });
});

// ---------------------------------------------------------------------------------------------
// npm run usage
// ---------------------------------------------------------------------------------------------

interface Seed {
  ts: string;
  email: string;
  name: string;
  model: string | null;
  input?: number;
  cached?: number;
  output?: number;
  nano: number | null;
}

let seq = 0;
function usageRow(s: Seed): UsageRow {
  const input = s.input ?? null;
  const output = s.output ?? null;
  return {
    ts: s.ts,
    ts_ms: Date.parse(s.ts),
    request_id: `req_${++seq}`,
    key_id: sha(s.email).slice(0, 12),
    key_name: s.name,
    key_email: s.email,
    key_source: 'keys.json',
    method: 'POST',
    path: '/v1/chat/completions',
    endpoint: 'chat.completions',
    model: s.model,
    status: s.model === null ? 502 : 200,
    stream: false,
    input_tokens: input,
    cached_input_tokens: s.cached ?? null,
    output_tokens: output,
    reasoning_tokens: null,
    total_tokens: input === null && output === null ? null : (input ?? 0) + (output ?? 0),
    input_audio_tokens: null,
    output_audio_tokens: null,
    input_image_tokens: null,
    output_image_tokens: null,
    audio_seconds: null,
    input_characters: null,
    cost_nano_usd: s.nano,
    latency_ms: 120.5,
    ttfb_ms: 80,
    upstream_request_id: s.model === null ? null : `up_${seq}`,
    outcome: s.model === null ? 'upstream_error' : 'ok',
    error: s.model === null ? 'bad gateway' : null,
    bytes_in: 200,
    bytes_out: 900,
    upstream_key: null,
    retries: 0,
    reserved_nano_usd: null,
    cache_write_tokens: null,
  };
}

const A = 'alice@example.com';
const B = 'bob@example.com';
const C = 'carol@example.com';
const SEEDS: Seed[] = [
  { ts: '2026-03-01T10:00:00.000Z', email: A, name: 'Alice', model: 'gpt-4o-mini', input: 100, output: 50, nano: 1_000_000 },
  { ts: '2026-03-01T09:00:00.000Z', email: B, name: 'Bob', model: 'o4-mini', input: 5000, output: 3000, nano: 30_000_000 },
  { ts: '2026-03-02T12:00:00.000Z', email: A, name: 'Alice', model: 'gpt-4o', input: 1000, cached: 400, output: 200, nano: 4_500_000 },
  { ts: '2026-03-02T05:00:00.000Z', email: C, name: 'Carol, Jr.', model: 'whisper-1', nano: null },
  // The last millisecond of 2 March and the first of 3 March: --until 2026-03-02 takes one, not the other.
  { ts: '2026-03-02T23:59:59.999Z', email: A, name: 'Alice', model: 'gpt-4o-mini', input: 10, cached: 0, output: 5, nano: 100_000 },
  { ts: '2026-03-03T00:00:00.000Z', email: A, name: 'Alice', model: 'gpt-4o', input: 2000, cached: 0, output: 1000, nano: 15_000_000 },
  { ts: '2026-03-03T15:00:00.000Z', email: B, name: 'Bob', model: 'text-embedding-3-small', input: 1_234_567, output: 0, nano: 24_691_340 },
  // Alice's newest row carries her new name; a failed request has no model, tokens or cost.
  { ts: '2026-03-03T08:00:00.000Z', email: A, name: 'Alice Smith', model: null, nano: null },
];

const USER_FIELDS = ['email', 'name', 'requests', 'input_tokens', 'output_tokens', 'total_tokens', 'cost_usd'];

const BOB_ALL = { email: B, name: 'Bob', requests: 2, input_tokens: 1_239_567, output_tokens: 3000, total_tokens: 1_242_567, cost_usd: 0.05469134 };
const ALICE_ALL = { email: A, name: 'Alice Smith', requests: 5, input_tokens: 3110, output_tokens: 1255, total_tokens: 4365, cost_usd: 0.0206 };
const CAROL_ALL = { email: C, name: 'Carol, Jr.', requests: 1, input_tokens: 0, output_tokens: 0, total_tokens: 0, cost_usd: 0 };

const ALICE_BY_MODEL = [
  { model: 'gpt-4o', requests: 2, input_tokens: 3000, cached_input_tokens: 400, output_tokens: 1200, total_tokens: 4200, cost_usd: 0.0195, unpriced_requests: 0 },
  { model: 'gpt-4o-mini', requests: 2, input_tokens: 110, cached_input_tokens: 0, output_tokens: 55, total_tokens: 165, cost_usd: 0.0011, unpriced_requests: 0 },
  { model: '(unknown)', requests: 1, input_tokens: 0, cached_input_tokens: 0, output_tokens: 0, total_tokens: 0, cost_usd: 0, unpriced_requests: 1 },
];
const ALICE_BY_DAY = [
  { day: '2026-03-01', requests: 1, input_tokens: 100, cached_input_tokens: 0, output_tokens: 50, total_tokens: 150, cost_usd: 0.001, unpriced_requests: 0 },
  { day: '2026-03-02', requests: 2, input_tokens: 1010, cached_input_tokens: 400, output_tokens: 205, total_tokens: 1215, cost_usd: 0.0046, unpriced_requests: 0 },
  { day: '2026-03-03', requests: 2, input_tokens: 2000, cached_input_tokens: 0, output_tokens: 1000, total_tokens: 3000, cost_usd: 0.015, unpriced_requests: 1 },
];

describe('npm run usage', () => {
  let cwd: string;
  /** USAGE_DB relative to the working folder. */
  const ENV = { USAGE_DB: 'data/usage.sqlite' };

  beforeAll(() => {
    cwd = tempDir();
    mkdirSync(join(cwd, 'data'));
    const store = new SqliteUsageStore(join(cwd, 'data/usage.sqlite'));
    for (const s of SEEDS) store.insert(usageRow(s));
    store.close();
  });

  const json = (args: string[]) => {
    const r = usage([...args, '--json'], cwd, ENV);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    return JSON.parse(r.stdout) as unknown;
  };

  describe('everyone', () => {
    it('--json: the documented fields, in order, sorted by cost', () => {
      const users = json([]) as Record<string, unknown>[];
      expect(users).toEqual([BOB_ALL, ALICE_ALL, CAROL_ALL]);
      for (const u of users) expect(Object.keys(u)).toEqual(USER_FIELDS);
    });

    it('a table sorted by cost, numbers right-aligned with separators, and the total', () => {
      const r = usage([], cwd, ENV);
      expect(r.status).toBe(0);
      const lines = r.stdout.split('\n');
      expect(lines[0]).toMatch(/^EMAIL +NAME +REQUESTS +INPUT TOKENS +OUTPUT TOKENS +COST$/);
      expect(lines[1]).toMatch(/^-+( +-+){5}$/);
      const cells = lines.slice(2, 5).map((l) => l.split(/ {2,}/));
      expect(cells).toEqual([
        [B, 'Bob', '2', '1,239,567', '3,000', '$0.054691'],
        [A, 'Alice Smith', '5', '3,110', '1,255', '$0.020600'],
        [C, 'Carol, Jr.', '1', '0', '0', '$0.000000'],
      ]);
      // Right-aligned: every data line ends at the same column as the header.
      for (const l of lines.slice(2, 5)) expect(l.length).toBe(lines[0]!.length);
      expect(lines.slice(5)).toEqual(['', 'Total cost: $0.075291', '']);
    });

    it('--csv: header and one row per person, quoting where needed', () => {
      const r = usage(['--csv'], cwd, ENV);
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(
        [
          USER_FIELDS.join(','),
          'bob@example.com,Bob,2,1239567,3000,1242567,0.05469134',
          'alice@example.com,Alice Smith,5,3110,1255,4365,0.0206',
          'carol@example.com,"Carol, Jr.",1,0,0,0,0',
          '',
        ].join('\n'),
      );
    });

    it('--since and --until (inclusive of that whole UTC day)', () => {
      expect(json(['--since', '2026-03-02', '--until', '2026-03-02'])).toEqual([
        { email: A, name: 'Alice Smith', requests: 2, input_tokens: 1010, output_tokens: 205, total_tokens: 1215, cost_usd: 0.0046 },
        { email: C, name: 'Carol, Jr.', requests: 1, input_tokens: 0, output_tokens: 0, total_tokens: 0, cost_usd: 0 },
      ]);
      expect(json(['--until', '2026-03-01'])).toEqual([
        { email: B, name: 'Bob', requests: 1, input_tokens: 5000, output_tokens: 3000, total_tokens: 8000, cost_usd: 0.03 },
        { email: A, name: 'Alice Smith', requests: 1, input_tokens: 100, output_tokens: 50, total_tokens: 150, cost_usd: 0.001 },
      ]);
      expect(json(['--since', '2026-03-03'])).toEqual([
        { email: B, name: 'Bob', requests: 1, input_tokens: 1_234_567, output_tokens: 0, total_tokens: 1_234_567, cost_usd: 0.02469134 },
        { email: A, name: 'Alice Smith', requests: 2, input_tokens: 2000, output_tokens: 1000, total_tokens: 3000, cost_usd: 0.015 },
      ]);
      expect(json(['--since', '2026-03-04'])).toEqual([]);
    });

    it('an ISO time is a precise bound: --since inclusive, --until exclusive', () => {
      const users = json(['--since', '2026-03-02T12:00:00Z', '--until', '2026-03-03T00:00:00Z']);
      expect(users).toEqual([
        { email: A, name: 'Alice Smith', requests: 2, input_tokens: 1010, output_tokens: 205, total_tokens: 1215, cost_usd: 0.0046 },
      ]);
    });

    it('text and csv for an empty period', () => {
      const text = usage(['--since', '2030-01-01'], cwd, ENV);
      expect(text.status).toBe(0);
      expect(text.stdout).toBe('No usage recorded in this period.\n');
      const csv = usage(['--since', '2030-01-01', '--csv'], cwd, ENV);
      expect(csv.stdout).toBe(`${USER_FIELDS.join(',')}\n`);
    });
  });

  describe('one person', () => {
    it('--json: by model (by cost) and by day (by date), whatever the case of the email', () => {
      const expected = { email: A, by_model: ALICE_BY_MODEL, by_day: ALICE_BY_DAY };
      expect(json([A])).toEqual(expected);
      expect(json(['Alice@Example.COM'])).toEqual(expected);
    });

    it('--json with a period', () => {
      expect(json([A, '--since', '2026-03-02', '--until', '2026-03-02'])).toEqual({
        email: A,
        by_model: [
          { model: 'gpt-4o', requests: 1, input_tokens: 1000, cached_input_tokens: 400, output_tokens: 200, total_tokens: 1200, cost_usd: 0.0045, unpriced_requests: 0 },
          { model: 'gpt-4o-mini', requests: 1, input_tokens: 10, cached_input_tokens: 0, output_tokens: 5, total_tokens: 15, cost_usd: 0.0001, unpriced_requests: 0 },
        ],
        by_day: [ALICE_BY_DAY[1]],
      });
      expect(json([B, '--since', '2026-03-02'])).toEqual({
        email: B,
        by_model: [
          { model: 'text-embedding-3-small', requests: 1, input_tokens: 1_234_567, cached_input_tokens: 0, output_tokens: 0, total_tokens: 1_234_567, cost_usd: 0.02469134, unpriced_requests: 0 },
        ],
        by_day: [
          { day: '2026-03-03', requests: 1, input_tokens: 1_234_567, cached_input_tokens: 0, output_tokens: 0, total_tokens: 1_234_567, cost_usd: 0.02469134, unpriced_requests: 0 },
        ],
      });
    });

    it('--csv: one row per model, then per day', () => {
      const r = usage([A, '--csv'], cwd, ENV);
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(
        [
          'dimension,group,requests,input_tokens,cached_input_tokens,output_tokens,total_tokens,cost_usd,unpriced_requests',
          'model,gpt-4o,2,3000,400,1200,4200,0.0195,0',
          'model,gpt-4o-mini,2,110,0,55,165,0.0011,0',
          'model,(unknown),1,0,0,0,0,0,1',
          'day,2026-03-01,1,100,0,50,150,0.001,0',
          'day,2026-03-02,2,1010,400,205,1215,0.0046,0',
          'day,2026-03-03,2,2000,0,1000,3000,0.015,1',
          '',
        ].join('\n'),
      );
    });

    it('text: a table by model and one by day, unpriced requests marked, and the total', () => {
      const r = usage([A], cwd, ENV);
      expect(r.status).toBe(0);
      const [head, byModel, byDay, total, footnote, ...more] = r.stdout.split('\n\n');
      expect(more).toEqual([]);
      expect(head).toBe(`Usage of ${A}`);
      const rows = (block: string | undefined) => block!.split('\n').slice(2).map((l) => l.split(/ {2,}/));
      expect(byModel!.split('\n')[0]).toMatch(/^MODEL +REQUESTS +INPUT TOKENS +CACHED +OUTPUT TOKENS +COST$/);
      expect(rows(byModel)).toEqual([
        ['gpt-4o', '2', '3,000', '400', '1,200', '$0.019500'],
        ['gpt-4o-mini', '2', '110', '0', '55', '$0.001100'],
        ['(unknown) *', '1', '0', '0', '0', '$0.000000'],
      ]);
      expect(byDay!.split('\n')[0]).toMatch(/^DAY \(UTC\) +REQUESTS +INPUT TOKENS +CACHED +OUTPUT TOKENS +COST$/);
      expect(rows(byDay)).toEqual([
        ['2026-03-01', '1', '100', '0', '50', '$0.001000'],
        ['2026-03-02', '2', '1,010', '400', '205', '$0.004600'],
        ['2026-03-03 *', '2', '2,000', '0', '1,000', '$0.015000'],
      ]);
      expect(total).toBe('Total cost: $0.020600');
      expect(footnote).toBe('* includes requests without a price (their cost is not counted)\n');
    });

    it('someone with no usage', () => {
      const r = usage(['nobody@example.com'], cwd, ENV);
      expect(r.status).toBe(0);
      expect(r.stdout).toBe('No usage recorded for nobody@example.com in this period.\n');
      expect(json(['nobody@example.com'])).toEqual({ email: 'nobody@example.com', by_model: [], by_day: [] });
    });
  });

  describe('where the database is', () => {
    it('USAGE_DB in config.json is used; the environment overrides it', () => {
      const other = tempDir();
      writeFileSync(join(other, 'config.json'), JSON.stringify({ USAGE_DB: join(cwd, 'data/usage.sqlite') }));
      const viaConfig = usage(['--json'], other);
      expect(viaConfig.status).toBe(0);
      expect(JSON.parse(viaConfig.stdout)).toEqual([BOB_ALL, ALICE_ALL, CAROL_ALL]);
      const viaEnv = usage(['--json'], other, { USAGE_DB: 'empty.sqlite' });
      expect(viaEnv.status).toBe(0);
      expect(JSON.parse(viaEnv.stdout)).toEqual([]);
    });

    it('a missing database: says so (or prints empty data) and does not create it', () => {
      const empty = tempDir();
      const text = usage([], empty);
      expect(text.status).toBe(0);
      expect(text.stdout).toBe(`No usage recorded yet (${join(empty, 'usage.sqlite')} does not exist).\n`);
      const asJson = usage(['--json'], empty);
      expect(asJson.status).toBe(0);
      expect(JSON.parse(asJson.stdout)).toEqual([]);
      expect(usage(['--csv'], empty).stdout).toBe(`${USER_FIELDS.join(',')}\n`);
      expect(JSON.parse(usage([A, '--json'], empty).stdout)).toEqual({ email: A, by_model: [], by_day: [] });
      expect(readdirSync(empty)).toEqual([]);
    });
  });

  describe('bad arguments: exit 1, a message on stderr, nothing on stdout', () => {
    it.each([
      ['--since', 'yesterday'],
      ['--since', '2026-3-1'],
      ['--until', '2026-13-01'],
      ['--until', '2026-02-30'],
      ['--until', '2026-04-31'],
      ['--since', '2026-03-01Tnoon'],
    ])('%s %s', (flag, value) => {
      const r = usage([flag, value], cwd, ENV);
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(`usage: ${flag} must be a date like 2026-11-01, got "${value}"\n`);
      expect(r.stdout).toBe('');
    });

    it('--json and --csv together, two emails, an unknown option', () => {
      for (const args of [['--json', '--csv'], [A, B], ['--verbose']]) {
        const r = usage(args, cwd, ENV);
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(/^usage: \S/);
        expect(r.stdout).toBe('');
      }
    });
  });
});

describe('npm run usage: text written by key holders, and files that are not databases', () => {
  it('control characters are shown escaped in the table; a formula-like CSV cell gets a leading apostrophe', () => {
    const dir = tempDir();
    const store = new SqliteUsageStore(join(dir, 'usage.sqlite'));
    store.insert(usageRow({ ts: '2026-03-01T10:00:00.000Z', email: 'eve@example.com', name: '=HYPERLINK("http://x.example")', model: '\x1b[2J\x1b[Hfake', input: 1, output: 1, nano: 1 }));
    store.close();
    const env = { USAGE_DB: 'usage.sqlite' };
    const everyone = usage([], dir, env);
    expect(everyone.status).toBe(0);
    const byModel = usage(['eve@example.com'], dir, env);
    expect(byModel.status).toBe(0);
    for (const out of [everyone.stdout, byModel.stdout]) expect(out).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f]/);
    expect(byModel.stdout).toContain('\\x1b[2J\\x1b[Hfake');
    const csvOut = usage(['--csv'], dir, env).stdout;
    expect(csvOut).toContain(`"'=HYPERLINK(""http://x.example"")"`);
    expect(csvOut).not.toMatch(/(^|,)=HYPERLINK/m);
  });

  it('an empty USAGE_DB file is reported as no usage yet and left empty (a report does not create tables)', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'usage.sqlite'), '');
    const r = usage([], dir, { USAGE_DB: 'usage.sqlite' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('No usage recorded yet');
    expect(statSync(join(dir, 'usage.sqlite')).size).toBe(0);
  });

  it('a file that is not a database: one line on stderr, exit 1, no stack trace', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'usage.sqlite'), 'not a database, just text that is long enough to have a header');
    const r = usage([], dir, { USAGE_DB: 'usage.sqlite' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^usage: cannot read .*usage\.sqlite: SQLITE_NOTADB file is not a database\n$/);
  });
});
