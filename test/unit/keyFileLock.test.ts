import { afterEach, describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyFileLockError, withKeyFileLock } from '../../src/keys/keyFileLock.js';

const dirs: string[] = [];
function keysPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'keyward-lock-'));
  dirs.push(dir);
  return join(dir, 'keys.json');
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The pid of a process that has exited (and so runs no more). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

describe('withKeyFileLock', () => {
  it('holds <file>.lock (with its pid) while the function runs, returns its value, then removes it', () => {
    const path = keysPath();
    const seen = withKeyFileLock(path, () => readFileSync(`${path}.lock`, 'utf8'));
    expect(seen).toBe(`${process.pid}\n`);
    expect(existsSync(`${path}.lock`)).toBe(false);
  });

  it('removes the lock when the function throws, and lets the error through', () => {
    const path = keysPath();
    expect(() =>
      withKeyFileLock(path, () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(existsSync(`${path}.lock`)).toBe(false);
    expect(withKeyFileLock(path, () => 'again')).toBe('again');
  });

  it('takes over a lock left by a process that no longer runs', () => {
    const path = keysPath();
    const dead = deadPid();
    writeFileSync(`${path}.lock`, `${dead}\n`);
    expect(withKeyFileLock(path, () => readFileSync(`${path}.lock`, 'utf8'), 2000)).toBe(`${process.pid}\n`);
    expect(readdirSync(dirname(path))).toEqual([]); // no lock, no renamed leftover
  });

  it('waits for a lock a live process holds, then fails naming it, and leaves it in place', () => {
    const path = keysPath();
    const holder = process.pid; // alive for sure
    writeFileSync(`${path}.lock`, `${holder}\n`);
    let ran = false;
    let error: unknown;
    try {
      withKeyFileLock(path, () => (ran = true), 100);
    } catch (err) {
      error = err;
    }
    expect(ran).toBe(false);
    expect(error).toBeInstanceOf(KeyFileLockError);
    expect((error as Error).message).toContain(`${path}.lock is held by process ${holder}`);
    expect(readFileSync(`${path}.lock`, 'utf8')).toBe(`${holder}\n`);
  });

  it('does not take over a lock whose owner has not written its pid yet', () => {
    const path = keysPath();
    writeFileSync(`${path}.lock`, '');
    expect(() => withKeyFileLock(path, () => 1, 100)).toThrow(/keys\.json\.lock is held \(it is empty\)/);
    expect(existsSync(`${path}.lock`)).toBe(true);
  });

  it('takes over a lock left empty for longer than a writer needs (its writer died before the pid)', () => {
    const path = keysPath();
    writeFileSync(`${path}.lock`, '');
    const past = new Date(Date.now() - 60_000);
    utimesSync(`${path}.lock`, past, past);
    expect(withKeyFileLock(path, () => 'taken', 2000)).toBe('taken');
    expect(readdirSync(dirname(path))).toEqual([]); // no lock, no renamed leftover
  });

  it('leaves a lock alone that is no longer its own when it finishes', () => {
    const path = keysPath();
    withKeyFileLock(path, () => writeFileSync(`${path}.lock`, '999999999\n')); // as if taken over
    expect(readFileSync(`${path}.lock`, 'utf8')).toBe('999999999\n');
  });
});
