import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';

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

/**
 * Runs `fn` while holding `<path>.lock`, a file created exclusively, so that writers of the keys
 * file take turns: without it two `npm run create` at once both read the old file, and the second
 * rename drops the first one's key. A lock left by a process that no longer runs is taken over; a
 * lock held by a live one longer than `waitMs` fails with a KeyFileLockError naming it.
 */
export function withKeyFileLock<T>(path: string, fn: () => T, waitMs = 10_000): T {
  const lock = `${path}.lock`;
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx', 0o600);
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = ownerOf(lock);
    // Read again just before removing: another waiter may have taken the dead one's place.
    if (owner !== undefined && !isRunning(owner) && ownerOf(lock) === owner) {
      try {
        unlinkSync(lock);
      } catch {
        // another waiter removed it first
      }
      continue;
    }
    if (Date.now() >= deadline) {
      throw new KeyFileLockError(
        `${lock} is held${owner ? ` by process ${owner}` : ''}: another command is changing the keys file. ` +
          'Try again when it is done, or delete the lock file if no such process is running.',
      );
    }
    sleepSync(20);
  }
  try {
    return fn();
  } finally {
    try {
      unlinkSync(lock);
    } catch {
      // removed by someone who judged us dead: nothing left to release
    }
  }
}
