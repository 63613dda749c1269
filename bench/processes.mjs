// Starting, watching and stopping the processes of a benchmark run, and reading their CPU time and
// memory from /proc. Every process is started in its own process group (detached), pinned to a CPU
// with taskset when pinning is on, and remembered, so stopAll() / killAllNow() can end each group
// by its id on exit, error or Ctrl-C.
import { spawn, execFileSync } from 'node:child_process';
import { openSync, closeSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export function haveTaskset() {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** utime + stime of a process, all its threads, in seconds (/proc/<pid>/stat fields 14 and 15). */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[0] is field 3 (state)
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** CPU seconds all CPUs spent busy (user, nice, system, irq, softirq, steal), from /proc/stat. */
export function systemBusySeconds() {
  const [user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq + (steal || 0)) / CLK_TCK;
}

/** A "Vm…:" line of /proc/<pid>/status, in kB. */
export function statusKb(pid, key) {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : null;
}

/** Resets the process's VmHWM (peak RSS) to its current RSS. */
export function resetPeakRss(pid) {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

export class Processes {
  constructor({ pin, logDir }) {
    this.pin = pin;
    this.logDir = logDir;
    this.groups = new Map(); // pid (= process group id) -> { name, child, exited }
  }

  #spawn(name, command, args, { cpu, env, cwd, stdio }) {
    const [cmd, argv] = this.pin && cpu !== undefined ? ['taskset', ['-c', String(cpu), command, ...args]] : [command, args];
    const child = spawn(cmd, argv, { detached: true, env, cwd, stdio });
    const entry = { name, child, code: null, signal: null };
    entry.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        entry.code = code;
        entry.signal = signal;
        this.groups.delete(child.pid);
        resolve({ code, signal });
      });
      child.once('error', (err) => {
        entry.error = err;
        this.groups.delete(child.pid);
        resolve({ code: null, signal: null, error: err });
      });
    });
    if (child.pid) this.groups.set(child.pid, entry);
    return entry;
  }

  /** A long-running service; stdout and stderr go to <logDir>/<name>.log. */
  startService(name, command, args, { cpu, env, cwd } = {}) {
    const logFile = `${this.logDir}/${name}.log`;
    const fd = openSync(logFile, 'a');
    const entry = this.#spawn(name, command, args, { cpu, env, cwd, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    entry.logFile = logFile;
    entry.pid = entry.child.pid;
    return entry;
  }

  /** Waits for a JSON line in the service's log matching `match`; returns it parsed. */
  async waitForLine(entry, match, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (entry.error) throw new Error(`${entry.name}: could not start: ${entry.error.message}`);
      const text = existsSync(entry.logFile) ? readFileSync(entry.logFile, 'utf8') : '';
      for (const line of text.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const obj = JSON.parse(line);
          if (match(obj)) return obj;
        } catch {
          /* not JSON */
        }
      }
      if (entry.code !== null || entry.signal !== null) {
        throw new Error(`${entry.name} exited (${entry.code ?? entry.signal}) before it was ready; its log:\n${tail(text)}`);
      }
      await sleep(50);
    }
    throw new Error(`${entry.name} not ready after ${timeoutMs / 1000} s; its log:\n${tail(readFileSync(entry.logFile, 'utf8'))}`);
  }

  /**
   * A measuring child (node SCRIPT 'JSON config'), pinned to `cpu`; resolves with the JSON object of
   * its last stdout line. Rejects if it fails, prints no result or outlives timeoutMs. `signal`
   * ends it early with SIGTERM (paced-load.mjs then stops and prints what it measured); `onSpawn`
   * gets its pid (to count its CPU time while it runs).
   */
  async runChild(name, script, config, { cpu, timeoutMs, signal, onSpawn }) {
    const entry = this.#spawn(name, process.execPath, [script, JSON.stringify(config)], {
      cpu, env: process.env, stdio: ['ignore', 'pipe', 'pipe'],
    });
    onSpawn?.(entry.child.pid);
    const terminate = () => signalGroup(entry.child.pid, 'SIGTERM');
    signal?.addEventListener('abort', terminate, { once: true });
    entry.exited.then(() => signal?.removeEventListener('abort', terminate));
    let out = '';
    let err = '';
    entry.child.stdout.setEncoding('utf8').on('data', (s) => { out += s; });
    entry.child.stderr.setEncoding('utf8').on('data', (s) => { err += s; });
    let timer;
    const timedOut = new Promise((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const outcome = await Promise.race([entry.exited, timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      await this.stop(entry, 2000);
      throw new Error(`${name}: no result after ${Math.round(timeoutMs / 1000)} s`);
    }
    if (outcome.error) throw new Error(`${name}: could not start: ${outcome.error.message}`);
    // stdout may still be draining after 'exit'.
    await new Promise((resolve) => (entry.child.stdout.readableEnded ? resolve() : entry.child.stdout.once('end', resolve)));
    const last = out.trim().split('\n').at(-1);
    if (outcome.code !== 0 || !last?.startsWith('{')) {
      throw new Error(`${name}: exited ${outcome.code ?? outcome.signal}${err ? `: ${tail(err)}` : ''}`);
    }
    return JSON.parse(last);
  }

  /** SIGTERM to the group, SIGKILL after graceMs; resolves when the leader has exited. */
  async stop(entry, graceMs = 5000) {
    if (entry.code !== null || entry.signal !== null || !this.groups.has(entry.child.pid)) return;
    signalGroup(entry.child.pid, 'SIGTERM');
    const done = await Promise.race([entry.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done) {
      signalGroup(entry.child.pid, 'SIGKILL');
      await entry.exited;
    }
    signalGroup(entry.child.pid, 'SIGKILL'); // anything the leader left behind in its group
  }

  async stopAll(graceMs = 3000) {
    await Promise.all([...this.groups.values()].map((entry) => this.stop(entry, graceMs)));
  }

  /** Synchronous last resort (process 'exit'): SIGKILL every group still known. */
  killAllNow() {
    for (const pid of this.groups.keys()) signalGroup(pid, 'SIGKILL');
  }
}

function signalGroup(pgid, signal) {
  try {
    process.kill(-pgid, signal);
  } catch {
    /* already gone */
  }
}

function tail(text, lines = 15) {
  return text.trim().split('\n').slice(-lines).join('\n');
}
