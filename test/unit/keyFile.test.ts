import { DEFAULT_POLICY } from '../../src/policy/policy.js';
import { describe, it, expect } from 'vitest';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { KeyFileError, parseKeyFile } from '../../src/keys/keyFile.js';
import { DigestCache, sha256Hex } from '../../src/keys/hash.js';

const ROOT = resolve(import.meta.dirname, '../..');
const sha = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

const ALICE_KEY = 'sk-kw-alice-0123456789abcdef';
const BOB_KEY = 'sk-kw-bob-0123456789abcdef';

/** The message of the KeyFileError parseKeyFile throws (fails the test if it does not throw one). */
function problem(text: string, fileName = 'keys.json'): string {
  try {
    parseKeyFile(text, fileName);
  } catch (err) {
    expect(err).toBeInstanceOf(KeyFileError);
    return (err as Error).message;
  }
  throw new Error(`parseKeyFile accepted:\n${text}`);
}

describe('parseKeyFile: valid files', () => {
  it('reads the seed format of keys.example.json', () => {
    const text = readFileSync(resolve(ROOT, 'keys.example.json'), 'utf8');
    const records = parseKeyFile(text, 'keys.example.json', 'seed');
    expect(records).toHaveLength(3);
    const aliceDigest = sha('sk-kw-replace-me-with-a-long-random-secret');
    expect(records[0]).toEqual({
      id: aliceDigest.slice(0, 12),
      digest: aliceDigest,
      name: 'Alice',
      email: 'alice@example.com',
      disabled: false,
      expiresAt: undefined,
      source: 'seed',
      policy: DEFAULT_POLICY,
    });
    expect(records[1]).toMatchObject({
      digest: '6b3a55e0261b0304143f805a24924d0c1c44524821305f31d9277843b8a10f4e',
      id: '6b3a55e0261b',
      name: 'Bob',
      disabled: false,
      expiresAt: Date.UTC(2027, 5, 30),
    });
    expect(records[2]).toMatchObject({ name: 'Carol', email: 'carol@example.com', disabled: true });
    expect(records[2]!.digest).toBe(sha('sk-kw-a-key-that-no-longer-works-000'));
  });

  it('defaults the source to keys.json', () => {
    const [r] = parseKeyFile(JSON.stringify([{ key: ALICE_KEY, name: 'A', email: 'a@example.com' }]), 'keys.json');
    expect(r!.source).toBe('keys.json');
  });

  it('takes key_sha256 instead of key, in either case of hex, and lowercases emails', () => {
    const digest = sha(BOB_KEY);
    const records = parseKeyFile(
      JSON.stringify([{ key_sha256: digest.toUpperCase(), name: 'Bob', email: 'Bob@Example.COM' }]),
      'keys.json',
    );
    expect(records[0]!.digest).toBe(digest);
    expect(records[0]!.id).toBe(digest.slice(0, 12));
    expect(records[0]!.email).toBe('bob@example.com');
  });

  it('reads disabled, expires_at (date or time) and created_at', () => {
    const records = parseKeyFile(
      JSON.stringify([
        { key: ALICE_KEY, name: 'A', email: 'a@example.com', disabled: true },
        { key: BOB_KEY, name: 'B', email: 'b@example.com', disabled: false, expires_at: '2026-12-31T18:00:00Z' },
        { key_sha256: sha('x'.repeat(20)), name: 'C', email: 'c@example.com', expires_at: '2027-01-02', created_at: '2026-11-24T12:00:00.000Z' },
      ]),
      'keys.json',
    );
    expect(records.map((r) => [r.disabled, r.expiresAt])).toEqual([
      [true, undefined],
      [false, Date.UTC(2026, 11, 31, 18)],
      [false, Date.UTC(2027, 0, 2)],
    ]);
  });

  it('accepts an empty array', () => {
    expect(parseKeyFile('[]\n', 'keys.json')).toEqual([]);
  });
});

describe('parseKeyFile: problems name the file, line, entry and field', () => {
  it('a bad email: line of the entry, its number and name, the field', () => {
    const text = [
      '[',
      `  { "key": "${ALICE_KEY}", "name": "Alice", "email": "alice@example.com" },`,
      '  {',
      `    "key": "${BOB_KEY}",`,
      '    "name": "Bob",',
      '    "email": "bob-at-example.com"',
      '  }',
      ']',
    ].join('\n');
    expect(problem(text, 'team-keys.json')).toBe(
      'team-keys.json: line 3, entry 2 ("Bob"), field "email": Invalid email address',
    );
  });

  it('counts lines correctly past strings holding brackets, braces, commas and escaped quotes', () => {
    const text = [
      '[',
      '  {',
      `    "key": "${ALICE_KEY}",`,
      '    "name": "Al \\"[the {first}], one\\" ice",',
      '    "email": "alice@example.com"',
      '  },',
      '',
      `  { "key": "${BOB_KEY}", "name": "Bob", "email": "bob@example.com", "expires_at": "next week" }`,
      ']',
    ].join('\n');
    const message = problem(text);
    expect(message).toMatch(/^keys\.json: line 8, entry 2 \("Bob"\), field "expires_at": must be an ISO date/);
  });

  it('an expiry on a day that does not exist is refused, not rolled over (2027-02-30 is not 2 March)', () => {
    const text = JSON.stringify([{ key: ALICE_KEY, name: 'A', email: 'a@example.com', expires_at: '2027-02-30' }]);
    expect(problem(text)).toMatch(/field "expires_at": must be an ISO date or time that exists/);
  });

  it('entries sharing a line get that line', () => {
    const text = `[{"key":"${ALICE_KEY}","name":"A","email":"a@example.com"},{"key":"${BOB_KEY}","name":"B","email":"b@example.com","disabled":"yes"}]`;
    expect(problem(text)).toBe(
      'keys.json: line 1, entry 2 ("B"), field "disabled": Invalid input: expected boolean, received string',
    );
  });

  it('neither key nor key_sha256, or both, is a problem of the entry', () => {
    const neither = `[\n  { "name": "Ann", "email": "ann@example.com" }\n]`;
    expect(problem(neither)).toBe('keys.json: line 2, entry 1 ("Ann"), entry: needs exactly one of "key" or "key_sha256"');
    const both = JSON.stringify([{ key: ALICE_KEY, key_sha256: sha(ALICE_KEY), name: 'Ann', email: 'ann@example.com' }], null, 2);
    expect(problem(both)).toBe('keys.json: line 2, entry 1 ("Ann"), entry: needs exactly one of "key" or "key_sha256"');
  });

  it('an unknown field (a typo) is named', () => {
    const text = JSON.stringify([{ key: ALICE_KEY, name: 'Ann', emial: 'ann@example.com', email: 'ann@example.com' }], null, 2);
    expect(problem(text)).toBe('keys.json: line 2, entry 1 ("Ann"), entry: Unrecognized key: "emial"');
  });

  it('a key too short is refused without printing the key', () => {
    const secret = 'sk-tiny-secret1';
    const message = problem(JSON.stringify([{ key: secret, name: 'Ann', email: 'ann@example.com' }], null, 2));
    expect(message).toBe('keys.json: line 2, entry 1 ("Ann"), field "key": a key must be at least 16 characters');
    expect(message).not.toContain('tiny');
  });

  it('a bad key_sha256, an empty name and a missing email are each named', () => {
    const text = JSON.stringify(
      [
        { key_sha256: 'abc123', name: 'Ann', email: 'ann@example.com' },
        { key: ALICE_KEY, name: '  ', email: 'b@example.com' },
        { key: BOB_KEY, name: 'Cy' },
      ],
      null,
      2,
    );
    const message = problem(text);
    expect(message).toContain('line 2, entry 1 ("Ann"), field "key_sha256": must be 64 hex digits');
    expect(message).toMatch(/line 7, entry 2 \(" +"\), field "name": /);
    expect(message).toContain('line 12, entry 3 ("Cy"), field "email": ');
  });

  it('a file that is not an array, or an entry that is not an object', () => {
    expect(problem('{"key": "x"}')).toBe('keys.json: Invalid input: expected array, received object');
    expect(problem('[\n  "sk-kw-just-a-string-in-the-array"\n]')).toBe(
      'keys.json: line 2, entry 1, entry: Invalid input: expected object, received string',
    );
  });
});

describe('parseKeyFile: duplicate keys', () => {
  const entry = (fields: Record<string, unknown>, name: string) => ({ ...fields, name, email: `${name.toLowerCase()}@example.com` });

  it('the same key twice', () => {
    const text = JSON.stringify([entry({ key: ALICE_KEY }, 'Ann'), entry({ key: BOB_KEY }, 'Bob'), entry({ key: ALICE_KEY }, 'Cy')]);
    expect(problem(text)).toBe('keys.json: entries 1 ("Ann") and 3 ("Cy") have the same key');
  });

  it('a key and the key_sha256 of the same key', () => {
    const text = JSON.stringify([entry({ key_sha256: sha(ALICE_KEY) }, 'Ann'), entry({ key: ALICE_KEY }, 'Bob')]);
    expect(problem(text)).toBe('keys.json: entries 1 ("Ann") and 2 ("Bob") have the same key');
  });

  it('the same key_sha256 in upper and lower case', () => {
    const text = JSON.stringify([entry({ key_sha256: sha(BOB_KEY) }, 'Ann'), entry({ key_sha256: sha(BOB_KEY).toUpperCase() }, 'Bob')]);
    expect(problem(text)).toBe('keys.json: entries 1 ("Ann") and 2 ("Bob") have the same key');
  });

  it('two different keys for one email are fine', () => {
    const text = JSON.stringify([entry({ key: ALICE_KEY }, 'Ann'), { key: BOB_KEY, name: 'Ann', email: 'ann@example.com' }]);
    expect(parseKeyFile(text, 'keys.json')).toHaveLength(2);
  });
});

describe('parseKeyFile: invalid JSON', () => {
  const good = `  { "key": "${ALICE_KEY}", "name": "Alice", "email": "alice@example.com" }`;

  it('a missing comma: the line of the problem', () => {
    const text = ['[', `${good},`, '  { "key": "sk-kw-0123456789abcdef"', '    "name": "Bob", "email": "b@example.com" }', ']'].join('\n');
    expect(problem(text)).toMatch(/^keys\.json: not valid JSON: line 4: Expected ',' or '}' after property value/);
  });

  it('a trailing comma (V8 gives no position) still gets its line', () => {
    const text = ['[', `${good},`, '', ']'].join('\n');
    expect(problem(text)).toBe("keys.json: not valid JSON: line 4: Unexpected token ']'");
  });

  it('a half-written file: the last line', () => {
    const text = ['[', `${good},`, '  { "key": "sk-kw-0123'].join('\n');
    expect(problem(text)).toMatch(/^keys\.json: not valid JSON: line 3: Unterminated string/);
    expect(problem(`[\n${good},\n`)).toBe('keys.json: not valid JSON: line 3: Unexpected end of JSON input');
    expect(problem('')).toBe('keys.json: not valid JSON: line 1: Unexpected end of JSON input');
  });

  it('an unquoted key: one line, without the key text', () => {
    const secret = 'sk-kw-UNQUOTEDsecretValue0123456789';
    const text = ['[', `${good},`, `  { "key": ${secret}, "name": "Bob", "email": "b@example.com" }`, ']'].join('\n');
    const message = problem(text);
    expect(message).toBe("keys.json: not valid JSON: line 3: Unexpected token 's'");
    expect(message).not.toContain('UNQUOTED');
    expect(message).not.toContain('\n');
  });
});

describe('DigestCache', () => {
  it('gives the same digest as sha256Hex, remembered or not, and stays bounded', () => {
    const cache = new DigestCache(2);
    const want = createHash('sha256').update('kw-a').digest('hex');
    expect(cache.digest('kw-a')).toBe(want);
    cache.remember('kw-a', want);
    expect(cache.digest('kw-a')).toBe(want);
    cache.remember('kw-b', sha256Hex('kw-b'));
    cache.remember('kw-c', sha256Hex('kw-c')); // over the limit: starts afresh, still correct
    expect(cache.digest('kw-a')).toBe(want);
    expect(cache.digest('kw-c')).toBe(sha256Hex('kw-c'));
    expect((cache as unknown as { known: Map<string, string> }).known.size).toBeLessThanOrEqual(2);
  });
});
