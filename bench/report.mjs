// Turns the raw results of run.mjs into the summary (Keyward as ratios to the bare proxy of the same
// run, each against its target) and the markdown report.
import os from 'node:os';
import { readFileSync } from 'node:fs';
import { TARGETS } from './settings.mjs';
import { percentile } from './stats.mjs';

export function machineInfo() {
  let kernel = os.release();
  try {
    kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  } catch {
    /* not Linux */
  }
  return {
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model?.trim() ?? 'unknown',
    node: process.version,
    kernel,
    mem_gb: Math.round(os.totalmem() / 2 ** 30),
  };
}

const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
const sum = (xs) => xs.reduce((a, b) => a + b, 0);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : null;
};

/** Chunk delays over the timing runs of one target, idle (test 'timing') or under a background load ('timing-loaded'). */
function timingFigures(results, target, test) {
  const runs = results.timing.filter((r) => r.target === target && r.test === test);
  const delays = runs.flatMap((r) => r.delays_ms).sort((a, b) => a - b);
  return {
    chunks: delays.length,
    p50_ms: percentile(delays, 50),
    p99_ms: percentile(delays, 99),
    max_ms: delays.at(-1) ?? null,
    over_2ms: delays.filter((d) => d > 2).length,
    background_rps: mean(runs.filter((r) => r.background).map((r) => r.background.sent_per_s)),
    background_skipped: sum(runs.filter((r) => r.background).map((r) => r.background.skipped)),
    background_errors: sum(runs.filter((r) => r.background).map((r) => r.background.errors)),
    problems: [...new Set(runs.flatMap((r) => r.problems))],
  };
}

function loadFigures(runs) {
  const responses = sum(runs.map((r) => r.responses));
  return {
    rounds: runs.map((r) => r.rps),
    rps: mean(runs.map((r) => r.rps)),
    p50_ms: mean(runs.map((r) => r.latency_ms.p50)),
    p99_ms: mean(runs.map((r) => r.latency_ms.p99)),
    cpu_us_per_req: responses ? (sum(runs.map((r) => r.cpu_s)) * 1e6) / responses : null,
    cpu_rounds: runs.map((r) => r.cpu_us_per_req),
    cpu_pct: mean(runs.map((r) => r.cpu_pct)),
    mock_cpu_pct: mean(runs.map((r) => r.mock_cpu_pct)),
    loadgen_cpu_pct: mean(runs.map((r) => r.loadgen_cpu_pct)),
    other_cpu_pct: mean(runs.map((r) => r.other_cpu_pct)),
    responses,
    errors: sum(runs.map((r) => r.errors + r.non2xx + r.timeouts)),
  };
}

export function summarize(results) {
  const { settings } = results;
  const per = {};
  for (const name of ['bare', 'keyward']) {
    const runs = (test) => results.load.filter((r) => r.target === name && r.test === test && r.round !== null);
    const big = results.big[name];
    const okMs = big.ms;
    const timingLoaded = timingFigures(results, name, 'timing-loaded');
    per[name] = {
      json: loadFigures(runs(`json-c${settings.conc}`)),
      sse: loadFigures(runs(`sse-c${settings.conc}`)),
      c1: loadFigures(runs('json-c1')),
      warm: {
        json_rps: results.load.find((r) => r.target === name && r.test === 'warm-json')?.rps ?? null,
        sse_rps: results.load.find((r) => r.target === name && r.test === 'warm-sse')?.rps ?? null,
      },
      timing: timingFigures(results, name, 'timing'),
      timing_loaded: timingLoaded,
      big: {
        n: okMs.length,
        ok: big.statuses.every((s) => s === 200) ? okMs.length : null,
        statuses: big.statuses,
        median_ms: median(okMs),
        min_ms: Math.min(...okMs),
        max_ms: Math.max(...okMs),
        peak_rss_mb: big.hwm_kb / 1024,
        other_cpu_pct: mean(big.batches.map((x) => x.other_cpu_pct)),
        rss_before_mb: big.rss_before_kb / 1024,
        upstream_got: big.upstream_got,
        sent_bytes: big.sent_bytes,
      },
      rss_idle_mb: results.targets[name].rss_idle_kb / 1024,
      peak_rss_load_mb: results.targets[name].hwm_load_kb / 1024,
      rss_end_mb: results.targets[name].rss_end_kb / 1024,
      errors: sum(results.load.filter((r) => r.target === name).map((r) => r.errors + r.non2xx + r.timeouts)) +
        timingLoaded.background_errors,
    };
  }
  const floor = timingFigures(results, 'direct', 'timing');
  const floorLoaded = timingFigures(results, 'direct', 'timing-loaded');
  const bigBatches = Object.entries(results.big).flatMap(([target, b]) => b.batches.map((x) => ({ target, test: 'big-post', ...x })));
  const stillDisturbed = [...results.load, ...results.timing, ...bigBatches, ...results.leak.runs].filter((r) => r.disturbed)
    .map((r) => `${r.target} ${r.test}${r.round === null || r.round === undefined ? '' : ` r${r.round + 1}`} (other ${Math.round(r.other_cpu_pct)} %)`);
  const b = per.bare;
  const k = per.keyward;
  const leak = results.leak;
  const growth = (leak.rss_end_kb - leak.rss_first_kb) / leak.rss_first_kb;
  const checks = [
    {
      id: 'json_rps', limit: TARGETS.jsonRps, figure: `JSON chat, concurrency ${settings.conc}: requests/s`,
      keyward: k.json.rps, bare: b.json.rps, ratio: k.json.rps / b.json.rps,
      target: `≥ ${TARGETS.jsonRps.toFixed(2)}× bare`, pass: k.json.rps / b.json.rps >= TARGETS.jsonRps,
    },
    {
      id: 'json_cpu', limit: TARGETS.jsonCpu, figure: 'JSON chat: CPU µs per request',
      keyward: k.json.cpu_us_per_req, bare: b.json.cpu_us_per_req, ratio: k.json.cpu_us_per_req / b.json.cpu_us_per_req,
      target: `≤ ${TARGETS.jsonCpu.toFixed(1)}× bare`, pass: k.json.cpu_us_per_req / b.json.cpu_us_per_req <= TARGETS.jsonCpu,
    },
    {
      id: 'sse_rps', limit: TARGETS.sseRps, figure: `SSE chat (${settings.chunks} chunks), concurrency ${settings.conc}: requests/s`,
      keyward: k.sse.rps, bare: b.sse.rps, ratio: k.sse.rps / b.sse.rps,
      target: `≥ ${TARGETS.sseRps.toFixed(2)}× bare`, pass: k.sse.rps / b.sse.rps >= TARGETS.sseRps,
    },
    {
      id: 'c1_p50', figure: 'concurrency 1: p50 latency (JSON chat)',
      keyward: k.c1.p50_ms, bare: b.c1.p50_ms, ratio: k.c1.p50_ms / b.c1.p50_ms, added_us: (k.c1.p50_ms - b.c1.p50_ms) * 1000,
      target: `≤ ${TARGETS.c1AddedUs} µs above bare`, pass: (k.c1.p50_ms - b.c1.p50_ms) * 1000 <= TARGETS.c1AddedUs,
    },
    {
      id: 'chunk_delay', figure: `SSE with ${settings.chunkDelayMs} ms between upstream chunks: chunk delay`,
      keyward: k.timing.max_ms, bare: b.timing.max_ms, ratio: null,
      target: `every chunk ≤ ${TARGETS.chunkDelayMs} ms after leaving the upstream`,
      pass: k.timing.chunks > 0 && k.timing.max_ms <= TARGETS.chunkDelayMs && k.timing.problems.length === 0,
    },
    {
      id: 'big_time', limit: TARGETS.bigTime, figure: `${settings.bigN} × ${settings.bigMb} MB POST /v1/embeddings: median time`,
      keyward: k.big.median_ms, bare: b.big.median_ms, ratio: k.big.median_ms / b.big.median_ms,
      target: `≤ ${TARGETS.bigTime.toFixed(1)}× bare`, pass: k.big.ok === settings.bigN && k.big.median_ms / b.big.median_ms <= TARGETS.bigTime,
    },
    {
      id: 'big_rss', limit: TARGETS.bigRss, figure: `${settings.bigN} × ${settings.bigMb} MB POST /v1/embeddings: peak RSS`,
      keyward: k.big.peak_rss_mb, bare: b.big.peak_rss_mb, ratio: k.big.peak_rss_mb / b.big.peak_rss_mb,
      target: `≤ ${TARGETS.bigRss.toFixed(1)}× bare`, pass: k.big.peak_rss_mb / b.big.peak_rss_mb <= TARGETS.bigRss,
    },
    {
      id: 'leak', figure: `${leak.total.toLocaleString('en-US')} requests in a row (Keyward): RSS at the end vs after the first ${leak.first.toLocaleString('en-US')}`,
      keyward: leak.rss_end_kb / 1024, first_mb: leak.rss_first_kb / 1024, growth,
      target: `within ${Math.round(TARGETS.leakGrowth * 100)} % (no growth beyond)`, pass: growth <= TARGETS.leakGrowth,
    },
  ];
  return {
    per, floor, floor_loaded: floorLoaded, checks, passed: checks.filter((c) => c.pass).length, total: checks.length,
    disturbed: stillDisturbed, repeated: results.discarded.length,
  };
}

const f = (n, d = 0) => (n === null || n === undefined || Number.isNaN(n) ? '–' : Number(n).toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }));
const x = (r) => (r === null || !Number.isFinite(r) ? '–' : `${r.toFixed(2)}×`);
/**
 * A check's ratio, with a third decimal when two would round it onto its limit: 0.796 against
 * ≥ 0.80 must not print as "0.80× … MISS".
 */
const xCheck = (c) => (Number.isFinite(c.ratio) && c.ratio.toFixed(2) === c.limit.toFixed(2) && c.ratio !== c.limit ? `${c.ratio.toFixed(3)}×` : x(c.ratio));
const verdict = (c) => (c.pass ? '**PASS**' : '**MISS**');

export function toMarkdown(results) {
  const { settings, machine, summary, metering } = results;
  const { per, checks } = summary;
  const b = per.bare;
  const k = per.keyward;
  const c = Object.fromEntries(checks.map((ch) => [ch.id, ch]));
  const L = [];
  L.push(`# Keyward benchmark — ${results.date.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}${settings.quick ? ' (BENCH_QUICK: short runs, figures indicative only)' : ''}`);
  L.push('');
  L.push(`**Machine:** nproc ${machine.nproc}, ${machine.cpu}, Node ${machine.node}, kernel ${machine.kernel}, ${machine.mem_gb} GiB RAM; ` +
    `load average at start ${machine.load_average_at_start.join(' / ')}. ` +
    (machine.pinned ? 'Mock upstream and load generator (autocannon, own process) pinned to CPU 0, each proxy to CPU 1.' : 'No CPU pinning.'));
  L.push(`**Run:** ${results.elapsed_s} s. Warm-up ${settings.warm} s JSON + ${settings.warm} s SSE per proxy; ${settings.rounds} interleaved round(s) ` +
    `(bare → Keyward, then Keyward → bare) of: JSON c${settings.conc} ${settings.dur} s, SSE c${settings.conc} ${settings.dur} s, JSON c1 ${settings.lowDur} s, ` +
    `${settings.timingStreams} SSE streams with ${settings.chunkDelayMs} ms chunk gaps${settings.loadedRate ? ` (idle, then under ${f(settings.loadedRate)} req/s of JSON)` : ''}, ${settings.bigN} × ${settings.bigMb} MB POSTs (split over the rounds). ` +
    `Keyward with keys.json, metering to SQLite and access log on, LOG_LEVEL ${settings.logLevel}.`);
  L.push('');
  L.push(`## Keyward against the bare node:http proxy — ${summary.passed} of ${summary.total} targets met`);
  L.push('');
  L.push('| figure | Keyward | bare | Keyward ÷ bare | target | result |');
  L.push('|---|--:|--:|--:|---|---|');
  L.push(`| ${c.json_rps.figure} | ${f(k.json.rps)} | ${f(b.json.rps)} | ${xCheck(c.json_rps)} | ${c.json_rps.target} | ${verdict(c.json_rps)} |`);
  L.push(`| ${c.json_cpu.figure} | ${f(k.json.cpu_us_per_req)} µs | ${f(b.json.cpu_us_per_req)} µs | ${xCheck(c.json_cpu)} | ${c.json_cpu.target} | ${verdict(c.json_cpu)} |`);
  L.push(`| ${c.sse_rps.figure} | ${f(k.sse.rps)} | ${f(b.sse.rps)} | ${xCheck(c.sse_rps)} | ${c.sse_rps.target} | ${verdict(c.sse_rps)} |`);
  L.push(`| ${c.c1_p50.figure} | ${f(k.c1.p50_ms, 3)} ms | ${f(b.c1.p50_ms, 3)} ms | ${x(c.c1_p50.ratio)} (${c.c1_p50.added_us >= 0 ? '+' : ''}${f(c.c1_p50.added_us)} µs) | ${c.c1_p50.target} | ${verdict(c.c1_p50)} |`);
  L.push(`| ${c.chunk_delay.figure}: max / p99 (${k.timing.chunks} chunks each; no proxy at all: ${f(summary.floor.max_ms, 2)} / ${f(summary.floor.p99_ms, 2)} ms) | ${f(k.timing.max_ms, 2)} / ${f(k.timing.p99_ms, 2)} ms | ${f(b.timing.max_ms, 2)} / ${f(b.timing.p99_ms, 2)} ms | – | ${c.chunk_delay.target} | ${verdict(c.chunk_delay)} |`);
  const kl = k.timing_loaded;
  const bl = b.timing_loaded;
  if (kl.chunks) {
    // Not one of the issue's targets: what the proxy's own pauses do to streams while it is busy.
    L.push(`| the same under a JSON load of ${f(settings.loadedRate)} req/s through the same proxy (sent: ${f(kl.background_rps)} / bare ${f(bl.background_rps)} req/s): max / p99 (no proxy, the load on the mock: ${f(summary.floor_loaded.max_ms, 2)} / ${f(summary.floor_loaded.p99_ms, 2)} ms) | ` +
      `${f(kl.max_ms, 2)} / ${f(kl.p99_ms, 2)} ms | ${f(bl.max_ms, 2)} / ${f(bl.p99_ms, 2)} ms | – | (shown, not a target) | – |`);
  }
  L.push(`| ${c.big_time.figure} | ${f(k.big.median_ms, 1)} ms | ${f(b.big.median_ms, 1)} ms | ${xCheck(c.big_time)} | ${c.big_time.target} | ${verdict(c.big_time)} |`);
  L.push(`| ${c.big_rss.figure} | ${f(k.big.peak_rss_mb)} MB | ${f(b.big.peak_rss_mb)} MB | ${xCheck(c.big_rss)} | ${c.big_rss.target} | ${verdict(c.big_rss)} |`);
  L.push(`| ${c.leak.figure} | ${f(c.leak.first_mb, 1)} → ${f(c.leak.keyward, 1)} MB | – | ${c.leak.growth >= 0 ? '+' : ''}${f(c.leak.growth * 100, 1)} % | ${c.leak.target} | ${verdict(c.leak)} |`);
  L.push('');
  const meteredOk = metering.rows >= metering.requests_with_valid_key;
  L.push(`**Metering:** Keyward's usage.sqlite holds **${f(metering.rows)} rows** (${f(metering.rows_with_tokens)} with token counts) for **${f(metering.requests_with_valid_key)} requests sent with a valid key** ` +
    `(${f(metering.responses_received)} answered in full; load runs that end by time cut their last requests in flight; plus 1 wrong-key request, not metered) — ` +
    `${meteredOk ? 'every request metered' : `${f(metering.requests_with_valid_key - metering.rows)} requests without a row`}. ` +
    `Rows by outcome/status: ${metering.by_outcome.map((r) => `${r.outcome} ${r.status ?? '–'}: ${f(r.n)}`).join(', ')}.`);
  L.push(`**Errors** (socket errors, timeouts, non-2xx) over all load runs and background loads: bare ${f(b.errors)}, Keyward ${f(k.errors)}.`);
  L.push(`**Disturbance:** ${summary.repeated} run(s) repeated because something else used more than ${settings.otherMax} % of a core during them; ` +
    `${summary.disturbed.length ? `disturbed and kept (the leak runs are never repeated; the others were, ${settings.retries} time(s) at most), read with care: ${summary.disturbed.join(', ')}` : 'none of the runs kept was disturbed'}.`);
  L.push('');
  L.push('## Raw figures');
  L.push('');
  L.push('| | bare | Keyward |');
  L.push('|---|--:|--:|');
  const rounds = (fig) => `${fig.rounds.map((r) => f(r)).join(' / ')}${fig.rounds.length > 1 ? ` (mean ${f(fig.rps)})` : ''}`;
  const cpuPcts = (fig) => [fig.cpu_pct, fig.mock_cpu_pct, fig.loadgen_cpu_pct, fig.other_cpu_pct].map((v) => f(v)).join(' / ');
  const row = (label, fn) => L.push(`| ${label} | ${fn(b)} | ${fn(k)} |`);
  row(`JSON c${settings.conc} req/s, per round`, (p) => rounds(p.json));
  row(`JSON c${settings.conc} p50 / p99 ms`, (p) => `${f(p.json.p50_ms, 2)} / ${f(p.json.p99_ms, 2)}`);
  row(`JSON c${settings.conc} CPU µs/req (CPU % of one core: proxy / mock / load gen / other)`, (p) => `${f(p.json.cpu_us_per_req)} (${cpuPcts(p.json)})`);
  // The rounds side by side: how far one round's ratio strays from the run's (a slow phase of the VM
  // shows here as one or two rounds far from the others).
  const paired = k.json.cpu_rounds.map((v, i) => v / b.json.cpu_rounds[i]);
  L.push(`| JSON c${settings.conc} CPU µs/req per round; Keyward ÷ bare per round (median) | ${b.json.cpu_rounds.map((v) => f(v)).join(' / ')} | ` +
    `${k.json.cpu_rounds.map((v) => f(v)).join(' / ')}; ${paired.map((r) => x(r)).join(' / ')} (${x(median(paired))}) |`);
  row(`SSE c${settings.conc} req/s, per round`, (p) => rounds(p.sse));
  row(`SSE c${settings.conc} p50 / p99 ms (whole stream)`, (p) => `${f(p.sse.p50_ms, 2)} / ${f(p.sse.p99_ms, 2)}`);
  row(`SSE c${settings.conc} CPU µs/req (CPU % of one core: proxy / mock / load gen / other)`, (p) => `${f(p.sse.cpu_us_per_req)} (${cpuPcts(p.sse)})`);
  row('JSON c1 req/s, per round', (p) => rounds(p.c1));
  row('JSON c1 p50 / p99 ms', (p) => `${f(p.c1.p50_ms, 3)} / ${f(p.c1.p99_ms, 3)}`);
  row('JSON c1 CPU µs/req (CPU % of one core: proxy / mock / load gen / other)', (p) => `${f(p.c1.cpu_us_per_req)} (${cpuPcts(p.c1)})`);
  const timingRow = (p) => `${f(p.p50_ms, 3)} / ${f(p.p99_ms, 3)} / ${f(p.max_ms, 3)}, ${f(p.over_2ms)} of ${f(p.chunks)}${p.problems.length ? ` (${p.problems.join('; ')})` : ''}`;
  row(`SSE, ${settings.chunkDelayMs} ms chunk gaps: chunk delay p50 / p99 / max ms, chunks over 2 ms (no proxy: ${timingRow(summary.floor)})`, (p) => timingRow(p.timing));
  if (k.timing_loaded.chunks) {
    row(`the same under ${f(settings.loadedRate)} req/s of JSON (no proxy: ${timingRow(summary.floor_loaded)}); background req/s sent, skipped, errors`,
      (p) => `${timingRow(p.timing_loaded)}; ${f(p.timing_loaded.background_rps)}, ${f(p.timing_loaded.background_skipped)}, ${f(p.timing_loaded.background_errors)}`);
  }
  row(`${settings.bigMb} MB POST ms: median (min – max), ok, other CPU %`, (p) => `${f(p.big.median_ms, 1)} (${f(p.big.min_ms, 1)} – ${f(p.big.max_ms, 1)}), ${p.big.ok ?? `statuses ${p.big.statuses.join(',')}`}/${p.big.n}, ${f(p.big.other_cpu_pct)} %`);
  row(`${settings.bigMb} MB POSTs: RSS before → peak (added)`, (p) => `${f(p.big.rss_before_mb)} → ${f(p.big.peak_rss_mb)} MB (+${f(p.big.peak_rss_mb - p.big.rss_before_mb)})`);
  row(`${settings.bigMb} MB POST: bytes the upstream got (of ${f(b.big.sent_bytes)})`, (p) => p.big.upstream_got.map((n) => f(n)).join(', '));
  row('RSS MB: idle after start / peak in the load tests / at the end', (p) => `${f(p.rss_idle_mb)} / ${f(p.peak_rss_load_mb)} / ${f(p.rss_end_mb)}`);
  row('JSON c50 / SSE c50 / c1: other CPU % (runs kept)', (p) => [p.json, p.sse, p.c1].map((x) => f(x.other_cpu_pct)).join(' / '));
  row('warm-up req/s: JSON / SSE', (p) => `${f(p.warm.json_rps)} / ${f(p.warm.sse_rps)}`);
  const leakRuns = results.leak.runs;
  L.push(`| leak run (Keyward only): req/s, CPU µs/req, first ${f(results.leak.first)} / rest | – | ${leakRuns.map((r) => `${f(r.rps)}, ${f(r.cpu_us_per_req)}`).join(' / ')} |`);
  L.push('');
  L.push('Ratios compare Keyward with the bare proxy measured in this same run. Requests/s is the mean over the rounds; CPU µs per request ' +
    'is the proxy process\'s utime + stime (/proc/<pid>/stat, all threads) over its measured runs divided by the responses it gave; ' +
    'p50 at concurrency 1 is the mean of the rounds\' medians (per-response times in µs, not autocannon\'s whole-ms histogram). ' +
    'Chunk delay is arrival at the client minus the send time the mock stamped on the chunk, both performance.timeOrigin + performance.now(). ' +
    '"Other" CPU is busy time on the machine (/proc/stat) spent by none of the proxy, the mock and the load generator: ' +
    'kernel network work not charged to them, and anything else running, which disturbs the figures. ' +
    'Peak RSS is VmHWM (/proc/<pid>/status), reset with clear_refs 5 just before the big POSTs. See bench/README.md.');
  return L.join('\n');
}
