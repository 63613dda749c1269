import { randomBytes } from 'node:crypto';
import { closeSync, linkSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';

/** Thrown when another process holds the lock longer than we wait. */
export class KeyFileLockError extends Error {}

const pause = new Int32Array(new SharedArrayBuffer(4));
/** Blocks the thread for `ms` (the CLIs are synchronous; nothing else runs meanwhile). */
function sleepSync(ms: number): void {
  Atomics.wait(pause, 0, 0, ms);
}

/** The pid written in a lock file, or undefined while its owner has not written it yet. */
function ownerOf(lock: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(lock, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined; // gone already, or unreadable: not ours to judge
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, only not ours to signal
  }
}

/** An empty lock older than this lost its writer between creating it and writing the pid. */
const EMPTY_LOCK_STALE_MS = 5_000;

/** Whether the lock is one to take over: its owner no longer runs, or it stayed empty too long. */
function isStale(lock: string): boolean {
  const owner = ownerOf(lock);
  if (owner !== undefined) return !isRunning(owner);
  try {
    return Date.now() - statSync(lock).mtimeMs > EMPTY_LOCK_STALE_MS;
  } catch {
    return false; // gone already: the next attempt creates it
  }
}

/**
 * Removes a stale lock so that only one of several waiters does it. The lock is first renamed to a
 * name of our own (of two renames of one file, one fails), then judged again: a lock that turns out
 * to be live (another waiter replaced the stale one between our look and our rename) is linked
 * back under its name, which fails only if yet another process has created the lock meanwhile.
 */
function takeOver(lock: string): void {
  const mine = `${lock}.${process.pid}.${randomBytes(4).toString('hex')}.stale`;
  try {
    renameSync(lock, mine);
  } catch {
    return; // another waiter moved it first
  }
  try {
    if (!isStale(mine)) linkSync(mine, lock);
  } catch {
    // the name was taken again meanwhile: that lock stands
  } finally {
    unlinkSync(mine);
  }
}

/**
 * Runs `fn` while holding `<path>.lock`, a file created exclusively, so that writers of the keys
 * file take turns: without it two `npm run create` at once both read the old file, and the second
 * rename drops the first one's key. A lock left by a process that no longer runs (or left empty by
 * one that died before writing its pid) is taken over; a lock held by a live process longer than
 * `waitMs` fails with a KeyFileLockError naming it.
 */
export function withKeyFileLock<T>(path: string, fn: () => T, waitMs = 10_000): T {
  const lock = `${path}.lock`;
  const deadline = Date.now() + waitMs;
  for (;;) {
    let fd: number;
    try {
      fd = openSync(lock, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (isStale(lock)) {
        takeOver(lock);
        continue;
      }
      if (Date.now() >= deadline) {
        const owner = ownerOf(lock);
        throw new KeyFileLockError(
          `${lock} is held${owner ? ` by process ${owner}` : ' (it is empty)'}: another command is changing the keys file. ` +
            'Try again when it is done, or delete the lock file if no such process is running.',
        );
      }
      sleepSync(20);
      continue;
    }
    try {
      writeSync(fd, `${process.pid}\n`);
    } catch (err) {
      closeSync(fd);
      unlinkSync(lock); // an empty lock would hold everyone else up for EMPTY_LOCK_STALE_MS
      throw err;
    }
    closeSync(fd);
    break;
  }
  try {
    return fn();
  } finally {
    // Only our own: a lock taken over from us (judged dead) belongs to someone else now.
    if (ownerOf(lock) === process.pid) unlinkSync(lock);
  }
}
