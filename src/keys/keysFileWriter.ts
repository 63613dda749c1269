import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, realpathSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { parseKeyFile } from './keyFile.js';
import type { KeyRecord } from './types.js';

export interface NewKeyEntry {
  name: string;
  email: string;
  key_sha256: string;
  created_at: string;
  expires_at?: string;
}

function readExisting(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The indentation the file already uses (its first nested line), or two spaces. */
function indentOf(text: string): string {
  return /\n([ \t]+)\S/.exec(text)?.[1] ?? '  ';
}

/**
 * Adds one entry by inserting its text before the closing bracket, so every other entry keeps its
 * exact bytes and formatting; the result is validated before it replaces the file.
 */
export function withEntryAppended(text: string | undefined, entry: NewKeyEntry): string {
  const unit = indentOf(text ?? '');
  const body = JSON.stringify(entry, null, unit).replace(/\n/g, `\n${unit}`);
  const close = text?.lastIndexOf(']') ?? -1;
  if (text === undefined || close === -1 || /^\s*\[\s*$/.test(text.slice(0, close))) {
    return `[\n${unit}${body}\n]\n`;
  }
  let end = close;
  while (end > 0 && /\s/.test(text[end - 1]!)) end--;
  return `${text.slice(0, end)},\n${unit}${body}\n${text.slice(close)}`;
}

/** Reads the keys in a file (empty when there is none); throws KeyFileError for a bad file. */
export function readKeyRecords(path: string): KeyRecord[] {
  const text = readExisting(path);
  return text === undefined ? [] : parseKeyFile(text, basename(path));
}

/**
 * Writes the new file next to the old one, flushes it, then renames it over: readers never see
 * half. A keys.json that is a symbolic link is followed: its target is the file replaced, and the
 * link stays (renaming onto the link would have replaced the link with a file).
 */
export function appendKeyEntry(linkOrPath: string, entry: NewKeyEntry): void {
  const path = realTarget(linkOrPath);
  const before = readExisting(path);
  if (before !== undefined) parseKeyFile(before, basename(path)); // never build on a broken file
  const after = withEntryAppended(before, entry);
  parseKeyFile(after, basename(path));
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  let mode = 0o600;
  try {
    mode = statSync(path).mode & 0o777;
  } catch {
    // new file: owner-only, it names everyone's keys
  }
  const fd = openSync(tmp, 'wx', mode);
  try {
    try {
      writeSync(fd, after);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    unlinkSync(tmp); // never leave a half-written temp file beside keys.json
    throw err;
  }
}

/** The file a path names, links followed; the path itself while it does not exist yet. */
function realTarget(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}
