import { afterEach, describe, it, expect } from 'vitest';
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyFileError, parseKeyFile } from '../../src/keys/keyFile.js';
import { appendKeyEntry, readKeyRecords, withEntryAppended, type NewKeyEntry } from '../../src/keys/keysFileWriter.js';

const sha = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

const NEW: NewKeyEntry = {
  name: 'Dana',
  email: 'dana@example.com',
  key_sha256: sha('sk-kw-dana-0123456789abcdef'),
  created_at: '2026-11-24T12:00:00.000Z',
};

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'keyward-writer-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The text up to and including the last entry's closing brace: what appending must leave alone. */
function entriesPart(text: string): string {
  return text.slice(0, text.lastIndexOf('}') + 1);
}

/** Asserts `after` is `before` with NEW appended: old bytes untouched, valid, NEW last, indented by `unit`. */
function expectAppended(before: string, after: string, unit: string): void {
  expect(after.startsWith(entriesPart(before))).toBe(true);
  const rest = after.slice(entriesPart(before).length);
  const newEntry = JSON.stringify(NEW, null, unit).split('\n').map((l) => unit + l).join('\n');
  expect(rest).toBe(`,\n${newEntry}\n${before.slice(before.lastIndexOf(']'))}`);
  const parsed = JSON.parse(after) as unknown[];
  expect(parsed.slice(0, -1)).toEqual(JSON.parse(before));
  expect(parsed.at(-1)).toEqual(NEW);
  expect(() => parseKeyFile(after, 'keys.json')).not.toThrow();
}

const TWO_SPACES = `[
  {
    "key": "sk-kw-alice-0123456789abcdef",
    "name": "Alice",
    "email": "alice@example.com"
  },
  {
    "key_sha256": "${sha('sk-kw-bob-0123456789abcdef')}",
    "name": "Bob",
    "email": "bob@example.com",
    "disabled": true
  }
]
`;

describe('withEntryAppended', () => {
  it('two-space file: other entries keep their bytes, the new one follows their indentation', () => {
    expectAppended(TWO_SPACES, withEntryAppended(TWO_SPACES, NEW), '  ');
  });

  it('four-space file', () => {
    const text = TWO_SPACES.replace(/^( +)/gm, (s) => s + s);
    expect(text).toContain('\n    {\n        "key"');
    expectAppended(text, withEntryAppended(text, NEW), '    ');
  });

  it('tab-indented file', () => {
    const text = TWO_SPACES.replace(/^( +)/gm, (s) => '\t'.repeat(s.length / 2));
    expect(text).toContain('\n\t{\n\t\t"key"');
    expectAppended(text, withEntryAppended(text, NEW), '\t');
  });

  it('odd spacing, one-line entries and no final newline are kept as they are', () => {
    const text =
      '[ {"key":"sk-kw-alice-0123456789abcdef","name":"Alice","email":"alice@example.com"} ,\n' +
      '      {  "key" : "sk-kw-bob-0123456789abcdef" , "name":"Bob", "email":"bob@example.com"}   \n\n   ]';
    const after = withEntryAppended(text, NEW);
    expectAppended(text, after, '      ');
    expect(after.endsWith('\n]')).toBe(true);
  });

  it('an empty array, in any spacing, or no file at all, becomes a one-entry file', () => {
    const expected = `[\n${JSON.stringify(NEW, null, 2).replace(/^/gm, '  ')}\n]\n`;
    for (const text of ['[]', '[]\n', '[ ]', '[\n]\n', '\n[\n\n]', undefined]) {
      const after = withEntryAppended(text, NEW);
      expect(after).toBe(expected);
      expect(JSON.parse(after)).toEqual([NEW]);
    }
  });
});

describe('appendKeyEntry', () => {
  it('a missing file is created owner-only with the one entry, and no temp file is left', () => {
    const dir = tempDir();
    const path = join(dir, 'keys.json');
    appendKeyEntry(path, NEW);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual([NEW]);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['keys.json']);
    expect(readKeyRecords(path).map((r) => r.email)).toEqual(['dana@example.com']);
  });

  it('an existing file keeps its bytes and its mode', () => {
    const dir = tempDir();
    const path = join(dir, 'keys.json');
    const text = TWO_SPACES.replace(/^( +)/gm, (s) => '\t'.repeat(s.length / 2));
    writeFileSync(path, text);
    chmodSync(path, 0o640);
    appendKeyEntry(path, NEW);
    expectAppended(text, readFileSync(path, 'utf8'), '\t');
    expect(statSync(path).mode & 0o777).toBe(0o640);
    expect(readdirSync(dir)).toEqual(['keys.json']);
  });

  it('a keys.json that is a symbolic link: its target gets the entry, the link stays a link', () => {
    const dir = tempDir();
    const target = join(dir, 'real-keys.json');
    writeFileSync(target, TWO_SPACES);
    const link = join(dir, 'keys.json');
    symlinkSync('real-keys.json', link);
    appendKeyEntry(link, NEW);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expectAppended(TWO_SPACES, readFileSync(target, 'utf8'), '  ');
    expect(readdirSync(dir).sort()).toEqual(['keys.json', 'real-keys.json']);
  });

  it('two appends in a row keep both', () => {
    const dir = tempDir();
    const path = join(dir, 'keys.json');
    writeFileSync(path, '[]\n');
    appendKeyEntry(path, NEW);
    const second = { ...NEW, name: 'Eve', email: 'eve@example.com', key_sha256: sha('sk-kw-eve-0123456789abcdef') };
    appendKeyEntry(path, second);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual([NEW, second]);
    expect(readdirSync(dir)).toEqual(['keys.json']);
  });

  const invalid: Array<[string, string]> = [
    ['half-written JSON', '[\n  {\n    "key": "sk-kw-alice-0123456789abcdef",\n    "name": "Ali'],
    ['an entry failing validation', '[\n  { "key": "sk-kw-alice-0123456789abcdef", "name": "Alice", "email": "nope" }\n]\n'],
    ['a duplicate key', `[\n  { "key": "sk-kw-alice-0123456789abcdef", "name": "A", "email": "a@example.com" },\n  { "key_sha256": "${sha('sk-kw-alice-0123456789abcdef')}", "name": "B", "email": "b@example.com" }\n]\n`],
    ['an empty file', ''],
  ];
  it.each(invalid)('refuses to build on a file with %s: file untouched, no temp file', (_what, text) => {
    const dir = tempDir();
    const path = join(dir, 'keys.json');
    writeFileSync(path, text);
    expect(() => appendKeyEntry(path, NEW)).toThrow(KeyFileError);
    expect(readFileSync(path, 'utf8')).toBe(text);
    expect(readdirSync(dir)).toEqual(['keys.json']);
    expect(() => readKeyRecords(path)).toThrow(KeyFileError);
  });

  it('refuses an entry that would make the file invalid (same key as an existing one, bad email)', () => {
    const dir = tempDir();
    const path = join(dir, 'keys.json');
    writeFileSync(path, TWO_SPACES);
    const sameKey = { ...NEW, key_sha256: sha('sk-kw-alice-0123456789abcdef') };
    expect(() => appendKeyEntry(path, sameKey)).toThrow(/have the same key/);
    expect(() => appendKeyEntry(path, { ...NEW, email: 'dana' })).toThrow(/field "email"/);
    expect(readFileSync(path, 'utf8')).toBe(TWO_SPACES);
    expect(readdirSync(dir)).toEqual(['keys.json']);
  });

  it('readKeyRecords: no file is no keys', () => {
    expect(readKeyRecords(join(tempDir(), 'keys.json'))).toEqual([]);
  });
});
