// npm run bench:instructions: CPU instructions per JSON chat request, Keyward against the bare
// proxy, counted by valgrind's callgrind on the live servers. Timings on a shared VM drift (the
// same code measured 1.14× and 1.35× the bare proxy's CPU in two full runs an hour apart);
// instruction counts do not (two runs agreed within 1 %), so they rank changes of a few percent
// that `npm run bench` cannot. They leave out the kernel (socket, file
// writes) and the cost of cache misses, so they complement the timed run; they do not replace it.
//
// Each proxy runs alone under callgrind (pinned to CPU 1, the mock and load generator to CPU 0):
// WARM requests at concurrency 50 with counting off (the JIT settles), then N counted. The
// count is split by where the instructions ran: V8's compilers (and its parser) and the garbage
// collector are shown apart, since when they run depends on how far the warm-up got.
//
//   npm run bench:instructions                      # ~5 minutes
//   BENCH_IG_WARM=30000 BENCH_IG_N=10000 npm run bench:instructions
//
// Needs valgrind (callgrind_control, callgrind_annotate). Everything runs on 127.0.0.1.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Processes, haveTaskset } from './processes.mjs';
import { loadSettings } from './settings.mjs';
import { BENCH, SERVER, CLIENT_KEY, CHAT, startFlags, mockEnv, bareEnv, keywardEnv, KEYS_JSON } from './workload.mjs';

const WARM = Number(process.env.BENCH_IG_WARM ?? 30_000);
const N = Number(process.env.BENCH_IG_N ?? 10_000);
for (const [name, v] of [['BENCH_IG_WARM', WARM], ['BENCH_IG_N', N]]) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a whole number ≥ 1`);
}
try {
  execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
} catch {
  process.stderr.write('valgrind is not installed (Debian: apt-get install valgrind); nothing measured\n');
  process.exit(1);
}

/** Where an instruction ran, from callgrind_annotate's "file:function [object]". */
const CATEGORIES = [
  ['SQLite (better-sqlite3)', (fn) => fn.includes('better_sqlite3')],
  // Not CompileLazy: every new closure starts with it as its code and runs it once to install the
  // code its function already has, which is per-request work, not compiling.
  ['V8 compilers, JS parser', (fn) => /compiler::|[Tt]urboshaft|[Mm]aglev|Compiler::|BytecodeGenerator|internal::Parser::|ParserBase<|PreParser|internal::Scanner::/.test(fn)],
  ['garbage collector', (fn) => /Scaveng|MarkCompact|Marking|Sweeper|Evacuat|Heap::|RememberedSet|SlotSet|ArrayBufferSweeper|MemoryAllocator|GCTracer/.test(fn)],
  ['JavaScript (JIT code)', (fn) => fn.startsWith('???:0x')],
  ['libc (malloc, memcpy …)', (fn) => fn.includes('libc.so')],
  ['V8 builtins and runtime, Node C++', () => true],
];
const EXCLUDED = 'V8 compilers, JS parser';

const workDir = mkdtempSync(path.join(os.tmpdir(), 'keyward-instructions-'));
const pin = loadSettings().pin === 1 && os.availableParallelism() >= 2 && haveTaskset();
const procs = new Processes({ pin, logDir: workDir });
process.on('exit', () => procs.killAllNow());
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
  process.once(signal, () => procs.stopAll(1000).finally(() => process.exit(code)));
}
const log = (msg) => process.stderr.write(`${msg}\n`);
// callgrind_control reaches the process through vgdb, whose pipe name is made of the user
// (LOGNAME, USER) and the host (HOST, HOSTNAME) variables: both sides get the same ones.
const VGDB_ENV = { LOGNAME: 'bench', USER: 'bench', HOST: '127.0.0.1', HOSTNAME: '127.0.0.1' };
function control(pid, ...args) {
  const out = execFileSync('callgrind_control', [...args, String(pid)], {
    env: { ...process.env, ...VGDB_ENV }, encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'ignore'],
  });
  // It exits 0 even when it found no such process; it prints "OK." when the command was done.
  if (!/\bOK\b/.test(out)) throw new Error(`callgrind_control ${args.join(' ')} ${pid}: ${out.trim() || 'no answer'}`);
}

async function main() {
  const baseEnv = { PATH: process.env.PATH, HOME: process.env.HOME ?? workDir, NODE_ENV: 'production', ...VGDB_ENV };
  const mock = procs.startService('mock', process.execPath, [path.join(BENCH, 'mock-upstream.mjs')], {
    cpu: 0,
    env: mockEnv(baseEnv, 20),
  });
  const mockUrl = (await procs.waitForLine(mock, (o) => o.msg === 'mock listening')).url;
  writeFileSync(path.join(workDir, 'keys.json'), KEYS_JSON);
  const targets = [
    { name: 'bare', argv: [path.join(BENCH, 'bare-proxy.mjs')], ready: 'bare proxy listening',
      env: bareEnv(baseEnv, mockUrl) },
    { name: 'keyward', argv: [...startFlags(), SERVER], ready: 'Keyward is listening',
      env: keywardEnv(baseEnv, workDir, mockUrl, 'info') },
  ];
  const results = {};
  for (const t of targets) {
    const out = path.join(workDir, `${t.name}.callgrind`);
    const vg = ['--tool=callgrind', '--smc-check=all-non-file', '--instr-atstart=no', `--callgrind-out-file=${out}`];
    const entry = procs.startService(t.name, 'valgrind', [...vg, process.execPath, ...t.argv], { cpu: 1, cwd: workDir, env: t.env });
    const url = (await procs.waitForLine(entry, (o) => o.msg === t.ready, 300_000)).url.replace(/\/v1$/, '');
    const load = (amount) => procs.runChild(`load ${t.name}`, path.join(BENCH, 'load.mjs'), {
      url: `${url}/v1/chat/completions`, connections: 50, amount, body: CHAT, headers: { authorization: `Bearer ${CLIENT_KEY}` },
    }, { cpu: 0, timeoutMs: 1_800_000 });
    log(`${t.name}: ${WARM} requests to warm up (not counted) …`);
    await load(WARM);
    control(entry.pid, '-i', 'on');
    log(`${t.name}: ${N} requests counted …`);
    const r = await load(N);
    control(entry.pid, '-i', 'off');
    control(entry.pid, '-d');
    await procs.stop(entry, 20_000);
    if (r.ok !== N) throw new Error(`${t.name}: ${r.ok} of ${N} counted requests answered 2xx`);
    // The dump (-d) holds the counted part; the file written at exit, nothing more.
    const byCategory = Object.fromEntries(CATEGORIES.map(([c]) => [c, 0]));
    for (const file of readdirSync(workDir).filter((f) => f.startsWith(`${t.name}.callgrind`))) {
      // Functions only: no source annotation (its per-line and per-call lines would count twice).
      const text = execFileSync('callgrind_annotate', ['--threshold=100', '--auto=no', '--inclusive=no', path.join(workDir, file)], { encoding: 'utf8', maxBuffer: 1 << 28 });
      for (const line of text.split('\n')) {
        const m = /^\s*([\d,]+) \([^)]*\)\s+(.+)$/.exec(line);
        if (!m || m[2].includes('PROGRAM TOTALS')) continue;
        const category = CATEGORIES.find(([, test]) => test(m[2]))[0];
        byCategory[category] += Number(m[1].replaceAll(',', '')) / N;
      }
    }
    const counted = Object.values(byCategory).reduce((a, b) => a + b, 0);
    if (counted < 10_000) throw new Error(`${t.name}: only ${Math.round(counted)} instructions a request counted: was callgrind switched on?`);
    results[t.name] = byCategory;
  }
  return results;
}

function report(results) {
  const total = (r) => Object.values(r).reduce((a, b) => a + b, 0);
  const counted = (r) => total(r) - r[EXCLUDED];
  const k = (n) => `${(n / 1000).toFixed(1)}k`;
  const { bare, keyward } = results;
  const L = [
    `# Instructions per JSON chat request (callgrind), ${new Date().toISOString()}`,
    '',
    `${WARM} requests to warm up, then ${N} counted, concurrency 50; Node ${process.version}.`,
    '',
    '| where | bare | Keyward | Keyward − bare |',
    '|---|--:|--:|--:|',
    ...CATEGORIES.map(([c]) => `| ${c} | ${k(bare[c])} | ${k(keyward[c])} | ${k(keyward[c] - bare[c])} |`),
    `| **all but the compiler** | **${k(counted(bare))}** | **${k(counted(keyward))}** | **${k(counted(keyward) - counted(bare))}** |`,
    '',
    `Keyward ÷ bare, all but the compiler: **${(counted(keyward) / counted(bare)).toFixed(2)}×**; ` +
      `with it: ${(total(keyward) / total(bare)).toFixed(2)}×. The kernel's work (sockets, SQLite's and the access log's writes) is not counted.`,
  ];
  return L.join('\n');
}

let code = 0;
try {
  process.stdout.write(`${report(await main())}\n`);
} catch (err) {
  code = 1;
  log(`FAILED: ${err?.stack ?? err}\nwork dir kept: ${workDir}`);
}
await procs.stopAll();
if (code === 0) rmSync(workDir, { recursive: true, force: true });
process.exit(code);
