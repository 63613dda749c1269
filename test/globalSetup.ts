import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The end-to-end harness notes the pid of every Keyward it starts in KEYWARD_TEST_PIDS. A test
 * that times out never reaches its own stop(), and its server would outlive the run: at the end,
 * whatever is still running is killed.
 */
export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'keyward-test-pids-'));
  const file = join(dir, 'pids');
  process.env.KEYWARD_TEST_PIDS = file;
  return () => {
    const pids = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number) : [];
    for (const pid of pids) {
      try {
        // Only a Keyward server: a pid of a process that ended long ago may belong to another now.
        const cmdline = existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8') : 'server.js';
        if (cmdline.includes('server.js')) process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
}
