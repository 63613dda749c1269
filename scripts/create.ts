/**
 * npm run create -- <name> <email> [--force] [--expires <ISO date>]
 * Creates a proxy key, stores only its SHA-256 in keys.json, and prints the key once.
 */
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { ConfigError, loadPaths } from '../src/config/load.js';
import { generateKey } from '../src/keys/generate.js';
import { keyIdOf, sha256Hex } from '../src/keys/hash.js';
import { KeyFileError } from '../src/keys/keyFile.js';
import { withKeyFileLock } from '../src/keys/keyFileLock.js';
import { appendKeyEntry, readKeyRecords, type NewKeyEntry } from '../src/keys/keysFileWriter.js';
import { parseIsoDate } from '../src/util/isoDate.js';

const USAGE = 'usage: npm run create -- <name> <email> [--force] [--expires 2026-12-31]';

function fail(message: string): never {
  process.stderr.write(`create: ${message}\n`);
  process.exit(1);
}

function main(): void {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: { force: { type: 'boolean', default: false }, expires: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const [name, email, ...extra] = positionals;
  if (!name?.trim() || !email) fail(`a name and an email are both required\n${USAGE}`);
  if (extra.length) fail(`unexpected arguments: ${extra.join(' ')} (quote a name with spaces)\n${USAGE}`);
  if (!z.email().safeParse(email).success) fail(`"${email}" is not a valid email address`);
  let expiresAt: string | undefined;
  if (values.expires !== undefined) {
    const t = parseIsoDate(values.expires);
    if (Number.isNaN(t)) fail(`--expires must be an ISO date or time that exists, got "${values.expires}"`);
    if (t <= Date.now()) fail(`--expires ${values.expires} is already past`);
    expiresAt = new Date(t).toISOString();
  }

  let keysFile: string;
  try {
    keysFile = loadPaths().keysFile;
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
  const normalized = email.toLowerCase();
  let created: { key: string; entry: NewKeyEntry };
  try {
    // Checking for an active key and appending happen under one lock: two creates at once for the
    // same person must not both find none. Nothing in here exits, so the lock is always released.
    created = withKeyFileLock(keysFile, () => {
      const now = Date.now();
      const active = readKeyRecords(keysFile).filter(
        (k) => k.email === normalized && !k.disabled && (k.expiresAt === undefined || k.expiresAt > now),
      );
      if (active.length && !values.force) {
        throw new Error(`${normalized} already has an active key (id ${active.map((k) => k.id).join(', ')}); use --force to add another`);
      }
      const key = generateKey();
      const entry: NewKeyEntry = {
        name: name.trim(),
        email: normalized,
        key_sha256: sha256Hex(key),
        created_at: new Date(now).toISOString(),
        ...(expiresAt ? { expires_at: expiresAt } : {}),
      };
      appendKeyEntry(keysFile, entry);
      return { key, entry };
    });
  } catch (err) {
    if (err instanceof KeyFileError) fail(`${err.message}\nFix keys.json first; nothing was written.`);
    fail((err as Error).message);
  }
  const { key, entry } = created;
  process.stdout.write(
    `Created a key for ${entry.name} <${entry.email}> (id ${keyIdOf(entry.key_sha256)}) in ${keysFile}.\n` +
      'It is shown only this once: keys.json keeps only its SHA-256.\n\n' +
      `  ${key}\n\n` +
      'Use it with any OpenAI SDK: baseURL http://<keyward-host>:8080/v1, apiKey the key above.\n',
  );
}

main();
