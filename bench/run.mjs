// npm run bench: Keyward against a bare node:http pipe proxy, both in front of one mock OpenAI
// upstream, all on 127.0.0.1, in one run. Prints a markdown report (figures as ratios to the bare
// proxy of the same run, each with its target and PASS/MISS, then the raw figures) and writes it as
// JSON and markdown to bench/results/<UTC time>.{json,md}. See bench/README.md.
//
// Exit status: 0 when everything ran (a missed target is reported, not an error), 1 when something
// failed to run, 130/143 when interrupted. Everything started is stopped by process group on exit.
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { loadSettings } from './settings.mjs';
import { Processes, haveTaskset, cpuSeconds, statusKb, resetPeakRss, systemBusySeconds } from './processes.mjs';
import { checkTarget } from './check.mjs';
import { summarize, toMarkdown, machineInfo } from './report.mjs';
import { BENCH, SERVER, UPSTREAM_KEY, CLIENT_KEY, WRONG_KEY, chatBody, streamBody, CHAT, STREAM, startFlags, mockEnv, bareEnv, keywardEnv, KEYS_JSON } from './workload.mjs';

const settings = loadSettings();
const pin = settings.pin === 1 && os.availableParallelism() >= 2 && haveTaskset();
const CPU_RIG = 0; // mock and load generator
const CPU_PROXY = 1; // each proxy

const t0 = Date.now();
const log = (msg) => process.stderr.write(`[${String(Math.round((Date.now() - t0) / 1000)).padStart(4)}s] ${msg}\n`);
const workDir = mkdtempSync(path.join(os.tmpdir(), 'keyward-bench-'));
const procs = new Processes({ pin, logDir: workDir });
let failed = false;
let interrupted = false;

process.on('exit', () => procs.killAllNow());
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
  process.once(signal, () => {
    interrupted = true;
    log(`${signal}: stopping everything`);
    procs.stopAll(1000).finally(() => {
      if (!settings.keep) rmSync(workDir, { recursive: true, force: true });
      process.exit(code);
    });
  });
}

async function main() {
  const results = {
    date: new Date(t0).toISOString(),
    machine: { ...machineInfo(), pinned: pin, load_average_at_start: os.loadavg().map((x) => Math.round(x * 100) / 100) },
    settings,
    targets: {},
    checks: {},
    load: [],
    timing: [],
    discarded: [],
    big: {},
    leak: null,
    metering: null,
  };
  if (results.machine.load_average_at_start[0] > 0.5) {
    log(`warning: load average ${results.machine.load_average_at_start[0]} at start: something else is using the CPUs`);
  }
  log(`work dir ${workDir}; pinning ${pin ? 'mock + load on CPU 0, proxies on CPU 1' : 'off'}`);

  // ---- start ---------------------------------------------------------------------------------
  const baseEnv = { PATH: process.env.PATH, HOME: process.env.HOME ?? workDir, NODE_ENV: 'production' };
  const mock = procs.startService('mock', process.execPath, [path.join(BENCH, 'mock-upstream.mjs')], {
    cpu: CPU_RIG,
    env: mockEnv(baseEnv, settings.chunks),
  });
  const mockUrl = (await procs.waitForLine(mock, (o) => o.msg === 'mock listening')).url;

  const bareEntry = procs.startService('bare', process.execPath, [path.join(BENCH, 'bare-proxy.mjs')], {
    cpu: CPU_PROXY,
    env: bareEnv(baseEnv, mockUrl),
  });

  const keysFile = path.join(workDir, 'keys.json');
  const usageDb = path.join(workDir, 'usage.sqlite');
  writeFileSync(keysFile, KEYS_JSON);
  // The node flags of `npm start` (package.json: V8 heap sizing), so the bench runs what
  // users run.
  const kwEntry = procs.startService('keyward', process.execPath, [...startFlags(), SERVER], {
    cpu: CPU_PROXY,
    cwd: workDir, // no stray config.json: CONFIG_FILE is not set and workDir has none
    env: keywardEnv(baseEnv, workDir, mockUrl, settings.logLevel),
  });
  const bareUrl = (await procs.waitForLine(bareEntry, (o) => o.msg === 'bare proxy listening')).url;
  const kwUrl = (await procs.waitForLine(kwEntry, (o) => o.msg === 'Keyward is listening')).url.replace(/\/v1$/, '');
  const auth = { authorization: `Bearer ${CLIENT_KEY}` };
  const bare = { name: 'bare', entry: bareEntry, pid: bareEntry.pid, url: bareUrl };
  const kw = { name: 'keyward', entry: kwEntry, pid: kwEntry.pid, url: kwUrl };
  for (const t of [bare, kw]) {
    results.targets[t.name] = { url: t.url, pid: t.pid, rss_idle_kb: statusKb(t.pid, 'VmRSS') };
    log(`${t.name}: ${t.url} (pid ${t.pid}, RSS ${(results.targets[t.name].rss_idle_kb / 1024).toFixed(0)} MB)`);
  }

  // Requests sent to Keyward that should leave a usage row, and all requests sent to it.
  const sentToKeyward = { metered: 0, all: 0, answered: 0 };

  // ---- preflight -------------------------------------------------------------------------------
  const bodies = { chatBody, streamBody, chunks: settings.chunks };
  await checkTarget('mock (direct, upstream key)', mockUrl, { authorization: `Bearer ${UPSTREAM_KEY}` }, { authorization: `Bearer ${WRONG_KEY}` }, bodies);
  for (const t of [bare, kw]) {
    const metered = await checkTarget(t.name, t.url, auth, { authorization: `Bearer ${WRONG_KEY}` }, bodies);
    results.checks[t.name] = 'ok';
    if (t === kw) {
      sentToKeyward.metered += metered;
      sentToKeyward.all += metered + 1; // + the wrong-key request
      sentToKeyward.answered += metered + 1;
    }
  }
  log('preflight ok: mock, bare and Keyward answer JSON, SSE (with usage and [DONE]), embeddings; wrong key → 401');

  // ---- helpers ---------------------------------------------------------------------------------
  const chatUrl = (t) => `${t.url}/v1/chat/completions`;
  const order = (round) => (round % 2 === 0 ? [bare, kw] : [kw, bare]);
  const direct = { name: 'direct', pid: mock.pid, url: mockUrl, headers: { authorization: `Bearer ${UPSTREAM_KEY}` } };
  bare.headers = auth;
  kw.headers = auth;
  const countForKeyward = (t, sent, answered) => {
    if (t !== kw) return;
    sentToKeyward.metered += sent;
    sentToKeyward.all += sent;
    sentToKeyward.answered += answered;
  };

  /**
   * Runs one measuring child against target t, pinned to the rig's CPU, and accounts for CPU time
   * over it: the proxy's, the mock's, the child's own, and "other": busy time on the machine that
   * none of them used (other jobs, the hypervisor's steal), which means the run was disturbed.
   */
  async function measure(t, label, script, config, timeoutMs, { backgroundPid } = {}) {
    assertRunning(label);
    const c0 = cpuSeconds(t.pid);
    const m0 = cpuSeconds(mock.pid);
    const g0 = backgroundPid ? backgroundCpuSeconds(backgroundPid) : null;
    const s0 = systemBusySeconds();
    const w0 = performance.now();
    const r = await procs.runChild(label, path.join(BENCH, script), config, { cpu: CPU_RIG, timeoutMs });
    const window = (performance.now() - w0) / 1000;
    assertRunning(label);
    const mockCpu = cpuSeconds(mock.pid) - m0;
    const cpu = t.pid === mock.pid ? 0 : cpuSeconds(t.pid) - c0;
    // A background load generator is part of the test, not a disturbance.
    const g1 = backgroundPid ? backgroundCpuSeconds(backgroundPid) : null;
    const backgroundCpu = g0 !== null && g1 !== null ? g1 - g0 : 0;
    const other = Math.max(0, systemBusySeconds() - s0 - cpu - mockCpu - r.self_cpu_s - backgroundCpu);
    return {
      ...r,
      ...(backgroundPid ? { background_ran_throughout: g1 !== null } : {}),
      cpu_s: cpu,
      cpu_pct: (cpu / r.seconds) * 100,
      mock_cpu_pct: (mockCpu / r.seconds) * 100,
      loadgen_cpu_pct: ((r.self_cpu_s + backgroundCpu) / r.seconds) * 100,
      other_cpu_pct: (other / window) * 100,
    };
  }
  /** CPU seconds of a background load child, or null once it has exited (its own result tells why). */
  function backgroundCpuSeconds(pid) {
    try {
      return cpuSeconds(pid);
    } catch {
      return null;
    }
  }
  /** A service that died mid-run (crash, or a signal from outside) fails the run, with its log. */
  function assertRunning(during) {
    for (const e of [mock, bareEntry, kwEntry]) {
      if (e.code !== null || e.signal !== null) {
        const tail = readFileSync(e.logFile, 'utf8').trim().split('\n').slice(-5).join('\n');
        throw new Error(`${e.name} (pid ${e.pid}) exited (${e.code ?? e.signal}) during or before "${during}"; the end of its log:\n${tail}`);
      }
    }
  }
  const disturbed = (row) => row.other_cpu_pct > settings.otherMax;
  const roundTag = (round) => (round === null ? '' : ` r${round + 1}`);

  async function loadOnce(t, test, round, { connections, duration, amount, body }) {
    const expected = amount ? amount / 500 : duration;
    const r = await measure(t, `load ${t.name} ${test}`, 'load.mjs', {
      url: chatUrl(t), connections, duration, amount, body, headers: t.headers,
    }, (expected + 60) * 1000);
    const row = {
      target: t.name, test, round, ...r,
      cpu_us_per_req: r.responses ? (r.cpu_s * 1e6) / r.responses : null,
      rss_after_kb: statusKb(t.pid, 'VmRSS'),
    };
    countForKeyward(t, r.sent, r.responses);
    const bad = r.errors + r.non2xx + r.timeouts;
    log(`${t.name.padEnd(7)} ${test}${roundTag(round)}: ${fmtInt(r.rps)} req/s, p50 ${r.latency_ms.p50?.toFixed(3)} ms, p99 ${r.latency_ms.p99?.toFixed(3)} ms, ` +
      `CPU ${row.cpu_us_per_req?.toFixed(0)} µs/req (${row.cpu_pct.toFixed(0)} %), mock ${row.mock_cpu_pct.toFixed(0)} %, ` +
      `load gen ${row.loadgen_cpu_pct.toFixed(0)} %, other ${row.other_cpu_pct.toFixed(0)} %${bad ? `, ERRORS ${bad} (${JSON.stringify(r.statuses)})` : ''}`);
    await sleep(300);
    return row;
  }

  /** A measured run; repeated (up to BENCH_RETRIES times) while something else disturbed it. */
  async function withRetries(run) {
    let row = await run();
    for (let i = 0; i < settings.retries && disturbed(row) && results.discarded.length < settings.maxRepeats; i++) {
      log(`  disturbed (other CPU ${row.other_cpu_pct.toFixed(0)} % of a core > ${settings.otherMax} %): measuring again`);
      results.discarded.push(row);
      row = await run();
    }
    row.disturbed = disturbed(row);
    return row;
  }
  const load = (t, test, round, opts) => withRetries(() => loadOnce(t, test, round, opts));

  // ---- warm-up ---------------------------------------------------------------------------------
  if (settings.warm > 0) {
    log(`warm-up: ${settings.warm} s JSON + ${settings.warm} s SSE at concurrency ${settings.conc}, each proxy`);
    for (const t of [bare, kw]) {
      results.load.push(await loadOnce(t, 'warm-json', null, { connections: settings.conc, duration: settings.warm, body: CHAT }));
      results.load.push(await loadOnce(t, 'warm-sse', null, { connections: settings.conc, duration: settings.warm, body: STREAM }));
    }
  }

  // ---- throughput and latency, interleaved -----------------------------------------------------
  const phases = [
    ['json-c', settings.conc, settings.dur, CHAT, `JSON chat, concurrency ${settings.conc}, ${settings.dur} s`],
    ['sse-c', settings.conc, settings.dur, STREAM, `SSE chat (${settings.chunks} chunks), concurrency ${settings.conc}, ${settings.dur} s`],
    ['json-c', 1, settings.lowDur, CHAT, `JSON chat, concurrency 1, ${settings.lowDur} s`],
  ];
  for (const [prefix, connections, duration, body, title] of phases) {
    log(`${title}, ${settings.rounds} round(s), interleaved`);
    for (let round = 0; round < settings.rounds; round++) {
      for (const t of order(round)) {
        results.load.push(await load(t, `${prefix}${connections}`, round, { connections, duration, body }));
      }
    }
  }
  for (const t of [bare, kw]) results.targets[t.name].hwm_load_kb = statusKb(t.pid, 'VmHWM');

  // ---- chunk timing: SSE with a delay between upstream chunks ----------------------------------
  // "direct" (client to mock, no proxy) is the rig's own floor: scheduling and wake-up delays.
  log(`SSE with ${settings.chunkDelayMs} ms between upstream chunks: ${settings.timingStreams} streams (${settings.timingConc} at a time) per target and round; direct = no proxy (the rig's floor)`);
  /** One chunk-timing run through t; with `rate`, while a JSON load of that many requests/s runs through t too. */
  async function timingOnce(t, round, rate) {
    const test = rate ? 'timing-loaded' : 'timing';
    let background;
    let backgroundPid;
    const stopBackground = new AbortController();
    if (rate) {
      // Open loop at a steady pace; ended by SIGTERM once the streams are done. Its own bound
      // (150 s) outlasts the timing run's (120 s), so it cannot end first unless it fails.
      background = procs.runChild(`paced load ${t.name}`, path.join(BENCH, 'paced-load.mjs'), {
        url: chatUrl(t), rate, duration: 150, body: CHAT, headers: t.headers,
      }, { cpu: CPU_RIG, timeoutMs: 180_000, signal: stopBackground.signal, onSpawn: (pid) => { backgroundPid = pid; } });
      background.catch(() => {}); // awaited below; a failure before that must not go unhandled
      await sleep(500); // its connections open and its pace settles
    }
    let r;
    try {
      r = await measure(t, `${test} ${t.name}`, 'stream-timing.mjs', {
        url: chatUrl(t), headers: t.headers, body: STREAM, streams: settings.timingStreams,
        concurrency: settings.timingConc, delay_ms: settings.chunkDelayMs,
      }, 120_000, { backgroundPid });
    } finally {
      stopBackground.abort();
    }
    countForKeyward(t, settings.timingStreams + r.warmup, settings.timingStreams + r.warmup);
    const row = { target: t.name, test, round, ...r };
    let loadNote = '';
    if (background) {
      const bg = await background; // rejects with the child's own error if it failed
      if (!r.background_ran_throughout) throw new Error(`${test} ${t.name}: the background load ended before the streams did`);
      countForKeyward(t, bg.sent, bg.responses);
      const bad = bg.errors + bg.non2xx + bg.timeouts;
      row.background = {
        rate, sent_per_s: bg.rps, started: bg.started, sent: bg.sent, responses: bg.responses,
        skipped: bg.skipped, errors: bad, p99_ms: bg.latency_ms.p99,
      };
      loadNote = `, background ${fmtInt(bg.rps)} req/s sent${bg.skipped ? `, ${fmtInt(bg.skipped)} skipped (the target fell behind)` : ''}${bad ? `, ERRORS ${bad}` : ''}`;
    }
    const d = r.chunk_delay_ms;
    log(`${t.name.padEnd(7)} ${test}${roundTag(round)}: ${r.stamped} chunks, delay p50 ${d.p50?.toFixed(3)} ms, p99 ${d.p99?.toFixed(3)} ms, ` +
      `max ${d.max?.toFixed(3)} ms${loadNote}, other CPU ${r.other_cpu_pct.toFixed(0)} %${r.problems.length ? `, PROBLEMS: ${r.problems.join('; ')}` : ''}`);
    if (r.stamped === 0) throw new Error(`${test} ${t.name}: no stamped chunk arrived (${r.problems.join('; ')})`);
    await sleep(300);
    return row;
  }
  const timingRounds = async (rate) => {
    for (let round = 0; round < settings.rounds; round++) {
      for (const t of round % 2 === 0 ? [direct, bare, kw] : [kw, bare, direct]) {
        results.timing.push(await withRetries(() => timingOnce(t, round, rate)));
      }
    }
  };
  await timingRounds(0);
  if (settings.loadedRate > 0) {
    log(`the same under a JSON load of ${fmtInt(settings.loadedRate)} req/s through the same target (direct: to the mock)`);
    await timingRounds(settings.loadedRate);
  }

  // ---- leak check: many requests in a row through Keyward --------------------------------------
  log(`Keyward: ${fmtInt(settings.leakTotal)} JSON requests in a row at concurrency ${settings.conc}; RSS after the first ${fmtInt(settings.leakFirst)} and at the end`);
  const first = await loadOnce(kw, 'leak-first', null, { connections: settings.conc, amount: settings.leakFirst, body: CHAT });
  const rssFirst = statusKb(kw.pid, 'VmRSS');
  const rest = await loadOnce(kw, 'leak-rest', null, { connections: settings.conc, amount: settings.leakTotal - settings.leakFirst, body: CHAT });
  const rssEnd = statusKb(kw.pid, 'VmRSS');
  results.leak = {
    first: settings.leakFirst, total: settings.leakTotal, rss_first_kb: rssFirst, rss_end_kb: rssEnd,
    hwm_kb: statusKb(kw.pid, 'VmHWM'), runs: [first, rest],
  };
  // Not repeated (too long): a disturbance slows these runs but does not change the RSS figures.
  for (const r of results.leak.runs) r.disturbed = disturbed(r);
  log(`Keyward RSS ${(rssFirst / 1024).toFixed(1)} MB after ${fmtInt(settings.leakFirst)}, ${(rssEnd / 1024).toFixed(1)} MB after ${fmtInt(settings.leakTotal)}`);

  // ---- big POSTs -------------------------------------------------------------------------------
  log(`${settings.bigN} × ${settings.bigMb} MB POST /v1/embeddings per proxy, interleaved; peak RSS reset first`);
  for (const t of [bare, kw]) {
    results.big[t.name] = { rss_before_kb: statusKb(t.pid, 'VmRSS'), ms: [], statuses: [], upstream_got: [], errors: [], batches: [] };
    resetPeakRss(t.pid);
  }
  const perRound = Array.from({ length: settings.rounds }, (_, i) =>
    Math.floor(settings.bigN / settings.rounds) + (i < settings.bigN % settings.rounds ? 1 : 0));
  for (let round = 0; round < settings.rounds; round++) {
    if (perRound[round] === 0) continue;
    for (const t of order(round)) {
      // A disturbed batch is sent again and its times replace the first ones (the peak RSS is a
      // maximum over all of them either way).
      const r = await withRetries(async () => {
        const batch = await measure(t, `big-post ${t.name}`, 'big-post.mjs', {
          url: `${t.url}/v1/embeddings`, headers: auth, n: perRound[round], mb: settings.bigMb,
        }, 60_000 + perRound[round] * 30_000);
        countForKeyward(t, batch.n, batch.n);
        log(`${t.name.padEnd(7)} big r${round + 1}: ${batch.ok}/${batch.n} ok, ms ${batch.ms.join(' ')}, upstream got ${batch.upstream_got.join(',')} of ${batch.sent_bytes} bytes, other CPU ${batch.other_cpu_pct.toFixed(0)} %`);
        await sleep(300);
        return { target: t.name, test: 'big-post', round, ...batch };
      });
      const b = results.big[t.name];
      b.sent_bytes = r.sent_bytes;
      b.ms.push(...r.ms);
      b.statuses = [...new Set([...b.statuses, ...r.statuses])];
      b.upstream_got = [...new Set([...b.upstream_got, ...r.upstream_got])];
      b.errors.push(...r.errors);
      b.batches.push({ round, n: r.n, other_cpu_pct: r.other_cpu_pct, disturbed: r.disturbed });
    }
  }
  for (const t of [bare, kw]) results.big[t.name].hwm_kb = statusKb(t.pid, 'VmHWM');

  // ---- stop Keyward (it writes its last rows), count what it metered ---------------------------
  for (const t of [bare, kw]) results.targets[t.name].rss_end_kb = statusKb(t.pid, 'VmRSS');
  log('stopping Keyward (SIGTERM) and counting its usage rows');
  await procs.stop(kwEntry, 15_000);
  const db = new Database(usageDb, { readonly: true, fileMustExist: true });
  const rows = db.prepare('SELECT count(*) AS n FROM usage').get().n;
  const byOutcome = db.prepare('SELECT outcome, status, count(*) AS n FROM usage GROUP BY outcome, status ORDER BY n DESC').all();
  const withTokens = db.prepare('SELECT count(*) AS n FROM usage WHERE total_tokens IS NOT NULL').get().n;
  db.close();
  results.metering = {
    rows, rows_with_tokens: withTokens, by_outcome: byOutcome,
    requests_sent: sentToKeyward.all, requests_with_valid_key: sentToKeyward.metered, responses_received: sentToKeyward.answered,
  };
  log(`usage.sqlite: ${fmtInt(rows)} rows (${fmtInt(withTokens)} with tokens) for ${fmtInt(sentToKeyward.metered)} requests sent with a valid key`);
  await procs.stopAll();

  // ---- report ----------------------------------------------------------------------------------
  results.elapsed_s = Math.round((Date.now() - t0) / 1000);
  results.summary = summarize(results);
  const markdown = toMarkdown(results);
  process.stdout.write(`${markdown}\n`);
  const resultsDir = path.join(BENCH, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const stamp = new Date(t0).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  writeFileSync(path.join(resultsDir, `${stamp}.json`), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(path.join(resultsDir, `${stamp}.md`), `${markdown}\n`);
  log(`done in ${results.elapsed_s} s; written bench/results/${stamp}.{json,md}`);
}

function fmtInt(n) {
  return Math.round(n).toLocaleString('en-US');
}

try {
  await main();
} catch (err) {
  failed = true;
  // After Ctrl-C the children die under main(); the signal handler reports and exits.
  if (!interrupted) log(`FAILED: ${err?.stack ?? err}`);
}
if (!interrupted) {
  await procs.stopAll();
  if (failed || settings.keep) log(`kept the work dir (process logs, keys.json, usage.sqlite, access.log): ${workDir}`);
  else rmSync(workDir, { recursive: true, force: true });
  process.exit(failed ? 1 : 0);
}
